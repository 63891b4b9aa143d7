"""The read-only commands end to end: validate, plan, render, schema, init, help, colour."""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import jsonschema  # type: ignore[import-untyped,unused-ignore]
import pytest
import yaml

from avatarflow.cli import cli, main

from .helpers import MANIFEST, Result, copy_example, course, record_all, run_cli

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "manifests" / "git-course.yaml"
EXAMPLE_IDS = ["01-welcome", "02-commits", "03-branches", "04-merging", "05-recap", "06-outro"]
ANSI = "\x1b["


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A copy of the example course (manifest, scripts, templates) without any state."""
    return copy_example(tmp_path) / "git-course.yaml"


def run_raw(*args: str) -> Result:
    """Like ``run_cli`` but without ``--color never``: the colour choice is the test's."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return Result(code, out.getvalue(), err.getvalue())


def one_error(result: Result) -> str:
    assert result.code == 1, result
    assert "Traceback" not in result.out + result.err
    lines = result.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.err
    return lines[0]


# -- validate and plan -------------------------------------------------------------------


def test_example_course_validates() -> None:
    assert EXAMPLE.read_text("utf-8").splitlines()[0].startswith("# yaml-language-server:")
    result = run_cli("validate", str(EXAMPLE))
    assert (result.code, result.err) == (0, "")
    assert result.out == f"{EXAMPLE}: 6 video(s) valid.\n"
    assert yaml.safe_load(EXAMPLE.read_text("utf-8"))["videos"][0]["id"] == EXAMPLE_IDS[0]


def test_plan_of_the_example_creates_every_video(example: Path) -> None:
    result = run_cli("plan", str(example))
    assert (result.code, result.err) == (0, "")
    lines = result.out.splitlines()
    assert "  + create (render a new video)" in lines  # the legend
    row = re.compile(r"  \+ (\S+) +new video  → …([0-9a-f]{12})")
    rows = [m.groups() for m in map(row.fullmatch, lines) if m]
    assert [video for video, _ in rows] == EXAMPLE_IDS
    assert all(len(line) <= 100 for line in lines)
    assert lines[-1] == (
        "Plan: 6 to create, 0 to re-render, 0 to resume, 0 to fetch, 0 to reuse, 0 to forget."
    )
    assert any(line.startswith("Estimated render: 6 job(s), ") for line in lines)
    assert not (example.parent / ".avatarflow").exists()  # plan never writes


def test_detailed_exitcode_is_2_with_changes_and_0_without(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    manifest = course(tmp_path)
    assert run_cli("plan", "--detailed-exitcode", str(manifest)).code == 2
    assert run_cli("plan", str(manifest)).code == 0  # without the flag changes are not an error
    record_all(manifest)
    result = run_cli("plan", "--detailed-exitcode", str(manifest))
    assert (result.code, result.out) == (0, "No changes. Every video is up to date.\n")
    manifest.write_text(MANIFEST.replace("video b.", "video b, edited."), "utf-8")
    result = run_cli("plan", "--detailed-exitcode", str(manifest))
    assert result.code == 2
    assert "  ~ b  script changed" in result.out
    assert result.out.splitlines()[-1].startswith("Plan: 0 to create, 1 to re-render, ")
    manifest.write_text(MANIFEST.replace("id: b", "id: b/"), "utf-8")
    assert one_error(run_cli("plan", "--detailed-exitcode", str(manifest)))


def test_plan_json_is_valid_json_with_actions_and_summary(example: Path) -> None:
    result = run_cli("plan", "--json", str(example))
    assert (result.code, result.err) == (0, "")
    data = json.loads(result.out)
    assert data["summary"] == {
        "create": 6,
        "rerender": 0,
        "resume": 0,
        "download": 0,
        "reuse": 0,
        "forget": 0,
        "paid": 6,
    }
    assert [a["video"] for a in data["actions"]] == EXAMPLE_IDS
    for action in data["actions"]:
        assert action["action"] == "create" and action["symbol"] == "+"
        assert action["synthesis_id"].startswith(f"git-course-{action['video']}-")
        assert len(action["input_hash"]) == 64
        assert action["paid"] is True
    assert data["estimate"]["characters"] > 0


# -- render --------------------------------------------------------------------------------


def test_render_prints_ssml_and_the_request_body() -> None:
    result = run_cli("render", str(EXAMPLE), "02-commits")
    assert (result.code, result.err) == (0, "")
    head, body_text = result.out.split("# request body:\n")
    assert head.startswith("# video 02-commits → job git-course-02-commits-")
    assert "<speak " in head and "</speak>" in head
    assert "<s>Commits &amp; history &lt;basics&gt;.</s>" in head  # vars are XML-escaped
    body = json.loads(body_text)
    assert body["inputKind"] == "SSML"
    assert body["inputs"][0]["content"] in head
    assert body["avatarConfig"]["talkingAvatarStyle"] == "graceful-sitting"
    assert body["properties"] == {"timeToLiveInHours": 168}

    as_json = json.loads(run_cli("render", "--json", str(EXAMPLE), "05-recap").out)
    assert as_json["body"]["inputKind"] == "PlainText"
    assert as_json["body"]["synthesisConfig"] == {"voice": "en-US-JennyNeural", "rate": "+5%"}


def test_render_of_an_unknown_id_lists_the_ids() -> None:
    result = run_cli("render", str(EXAMPLE), "07-nope")
    line = one_error(result)
    assert line.startswith("Error: git-course.yaml:18: videos: no video '07-nope' in the manifest")
    assert line.endswith("videos: " + ", ".join(EXAMPLE_IDS))
    assert result.out == ""


# -- schema --------------------------------------------------------------------------------


def schema_from_cli() -> dict[str, Any]:
    result = run_cli("schema")
    assert (result.code, result.err) == (0, "")
    data: dict[str, Any] = json.loads(result.out)
    return data


def all_errors(
    errors: Iterator[jsonschema.ValidationError],
) -> Iterator[jsonschema.ValidationError]:
    """Every error, including those nested in anyOf/oneOf contexts."""
    for error in errors:
        yield error
        yield from all_errors(iter(error.context or ()))


def test_schema_is_a_valid_draft_2020_12_schema_that_accepts_the_example() -> None:
    schema = schema_from_cli()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    example = yaml.safe_load(EXAMPLE.read_text("utf-8"))
    assert list(validator.iter_errors(example)) == []


def test_schema_rejects_a_typo_with_additional_properties() -> None:
    validator = jsonschema.Draft202012Validator(schema_from_cli())
    example = yaml.safe_load(EXAMPLE.read_text("utf-8"))
    example["videos"][2]["avatar"] = {"stlye": "technical-sitting"}
    errors = list(all_errors(validator.iter_errors(example)))
    typos = [e for e in errors if e.validator == "additionalProperties"]
    assert typos, errors
    assert "'stlye'" in typos[0].message
    assert list(typos[0].absolute_path) == ["videos", 2, "avatar"]
    example["videos"][2]["avatar"] = {"style": "technical-sitting"}
    assert list(validator.iter_errors(example)) == []


def test_committed_schema_matches_the_schema_command() -> None:
    committed = REPO / "docs" / "manifest.schema.json"
    assert run_cli("schema").out == committed.read_text("utf-8")
    # and the example manifest's editor hint points at it
    first = EXAMPLE.read_text("utf-8").splitlines()[0]
    target = first.split("$schema=", 1)[1].strip()
    assert (EXAMPLE.parent / target).resolve() == committed


# -- help, init, colour ----------------------------------------------------------------


def test_every_command_has_help() -> None:
    assert isinstance(cli, click.Group)
    assert {"validate", "render", "plan", "schema", "init"} <= set(cli.commands)
    top = run_cli("--help")
    assert top.code == 0 and "Usage: avatarflow" in top.out
    for name, command in cli.commands.items():
        assert command.help and command.help.strip(), f"{name} has no docstring"
        result = run_cli(name, "--help")
        assert (result.code, result.err) == (0, ""), name
        assert result.out.startswith(f"Usage: avatarflow {name}"), name
        assert command.help.strip().splitlines()[0] in result.out, name
        assert name in top.out


def test_init_scaffolds_a_course_that_validates_and_never_overwrites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "new-course"
    result = run_cli("init", str(target), "--name", "intro")
    assert result.code == 0, result
    manifest = target / "course.yaml"
    assert manifest.is_file() and (target / "templates" / "narration.ssml.j2").is_file()
    assert "build/" in (target / ".gitignore").read_text("utf-8").splitlines()
    validated = run_cli("validate", str(manifest))
    assert (validated.code, validated.err) == (0, "")
    assert "1 video(s) valid" in validated.out
    planned = run_cli("plan", "--json", str(manifest))
    assert json.loads(planned.out)["actions"][0]["synthesis_id"].startswith("intro-01-hello-")

    manifest.write_text(manifest.read_text("utf-8") + "# my edits\n", "utf-8")
    before = {p: p.read_bytes() for p in target.rglob("*") if p.is_file()}
    again = run_cli("init", str(target))
    line = one_error(again)
    assert "course.yaml already exists; init does not overwrite files" in line
    assert {p: p.read_bytes() for p in target.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["plan"], {"NO_COLOR": "1"}),
        (["--color", "never", "plan"], {}),
        (["plan"], {"TERM": "dumb"}),
    ],
    ids=["NO_COLOR", "--color-never", "TERM-dumb"],
)
def test_no_colour_means_no_ansi_escapes(
    example: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str]
) -> None:
    # FORCE_COLOR makes rich colour even into a pipe, so the control run below has escapes.
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("NO_COLOR", raising=False)
    control = run_raw("plan", str(example))
    assert ANSI in control.out, "the control run should be coloured"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = run_raw(*args, str(example))
    assert result.code == 0
    assert "Plan: 6 to create" in result.out
    assert ANSI not in result.out + result.err
    broken = run_raw(*args, str(example.parent / "missing.yaml"))
    assert broken.code == 1 and ANSI not in broken.out + broken.err
    assert broken.err == "Error: missing.yaml: manifest file not found\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["plan"], "Error: Missing argument 'MANIFEST'. (see 'avatarflow plan --help')"),
        (
            ["plan", "--nope", "x.yaml"],
            "Error: No such option '--nope'. (see 'avatarflow plan --help')",
        ),
        (["--color", "sometimes", "plan", "x.yaml"], "Error: Invalid value for '--color': "),
    ],
    ids=["missing-argument", "unknown-option", "bad-choice"],
)
def test_usage_errors_are_one_line(args: list[str], message: str) -> None:
    line = one_error(run_cli(*args))
    assert line.startswith(message), line


def test_status_in_a_pipe_prints_plain_aligned_columns(tmp_path: Path) -> None:
    manifest = course(tmp_path)
    record_all(manifest)
    (tmp_path / "build/videos/b.mp4").write_bytes(b"edited")
    result = run_cli("status", str(manifest))
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert [line.split()[:3] for line in lines] == [
        ["video", "status", "output"],
        ["a", "downloaded", "ok"],
        ["b", "downloaded", "modified"],
        ["c", "downloaded", "ok"],
    ]
    assert len({line.index(line.split()[1]) for line in lines}) == 1  # one column
    assert "│" not in result.out

"""A repeated ``validate`` of the same files is answered from its memo, and only then."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from avatarflow import entry, incremental, planmemo, validatememo

from .helpers import MANIFEST, course, record_all, run_cli

CUSTOM = MANIFEST.replace(
    "  vars: {title: Intro}\n",
    "  vars: {title: Intro}\n  voice: MyBrandVoice\n"
    "  custom_voices: {MyBrandVoice: 6f1c2b9e-1d2a-4b5c-8d9e-0a1b2c3d4e5f}\n",
).replace("  voice: en-US-AvaMultilingualNeural\n", "")
SCRIPT = "Hello from a file, and a few more words.\n"
FILED = MANIFEST.replace("    text: Hello from video b.\n", "    text_file: scripts/b.txt\n")


def validate(manifest: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``avatarflow validate MANIFEST`` as the console script runs it."""
    try:
        code = entry.main(["validate", str(manifest)])
    except SystemExit as exc:  # click's exit
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def recalled(manifest: Path) -> bool:
    return validatememo.recall(manifest) is not None


def test_a_second_validate_prints_the_same_lines_from_the_memo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = course(tmp_path, CUSTOM)
    assert not recalled(manifest)
    first = validate(manifest, capsys)
    assert first[0] == 0 and first[1] == f"{manifest}: 3 video(s) valid.\n"
    assert first[2].startswith("warning: custom voice MyBrandVoice")  # warnings replayed too
    assert recalled(manifest)
    assert validate(manifest, capsys) == first


@pytest.mark.parametrize(
    ("options", "loaded"),
    [((), "[]"), (("--color", "never"), "['click']")],  # the entry's answer, or click's
)
def test_an_answer_from_the_memo_loads_no_parser(
    tmp_path: Path, options: tuple[str, ...], loaded: str
) -> None:
    manifest = course(tmp_path, MANIFEST)
    probe = (
        "import sys; from avatarflow.entry import main; code = main(sys.argv[1:]); "
        "print(code, sorted(m for m in ('pydantic', 'yaml', 'jinja2', 'click', 'rich') "
        "if m in sys.modules), file=sys.stderr)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(entry.__file__).parents[1])}
    runs = [
        subprocess.run(
            [sys.executable, "-c", probe, *options, "validate", str(manifest)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        for _ in range(2)
    ]
    assert runs[0].stdout == runs[1].stdout == f"{manifest}: 3 video(s) valid.\n"
    assert "pydantic" in runs[0].stderr  # the first one validated in full
    assert runs[1].stderr.strip() == f"0 {loaded}"


@pytest.mark.parametrize("edit", ["manifest", "template", "narration", "narration, same stat"])
def test_any_file_validate_read_changed_is_validated_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, edit: str
) -> None:
    monkeypatch.setattr(planmemo, "RACY_NS", 0)  # stats kept at once: the ctime must tell
    manifest = course(tmp_path, FILED, **{"scripts__b.txt": SCRIPT})
    assert validate(manifest, capsys)[0] == 0 and recalled(manifest)
    broken = "Hello {{ nowhere_defined }}.\n"  # a template error, found only by rendering
    if edit == "manifest":
        manifest.write_text(FILED.replace("Hello from video c.", "Hi {{ nowhere_defined }}."))
    elif edit == "template":
        template = tmp_path / "templates" / "narration.ssml.j2"
        template.write_text(template.read_text().replace("{{ text }}", "{{ nowhere_defined }}"))
    else:
        script = tmp_path / "scripts" / "b.txt"
        before = script.stat()
        script.write_text(broken.rstrip("\n").ljust(len(SCRIPT) - 1) + "\n")
        if edit == "narration, same stat":  # only the ctime tells
            assert script.stat().st_size == before.st_size
            os.utime(script, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert not recalled(manifest)
    code, out, err = validate(manifest, capsys)
    assert (code, out) == (1, "") and "nowhere_defined" in err


def test_a_manifest_that_fails_leaves_no_memo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = course(tmp_path, MANIFEST.replace("Hello from video a.", "Hi {{ nope }}."))
    for _ in range(2):
        code, _, err = validate(manifest, capsys)
        assert code == 1 and "nope" in err
    assert not recalled(manifest)


def test_a_torn_memo_is_a_miss(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = course(tmp_path, MANIFEST)
    validate(manifest, capsys)
    memo = validatememo.memo_path(manifest)
    memo.write_bytes(memo.read_bytes()[:-9])
    assert not recalled(manifest)
    assert validate(manifest, capsys)[:2] == (0, f"{manifest}: 3 video(s) valid.\n")
    assert recalled(manifest)  # and written again whole


def test_a_refreshed_voice_catalogue_is_seen_by_every_memo_and_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``catalog refresh`` may refuse a style the shipped catalogue let through: the
    validate memo, the plan memo and the request cache must all notice."""
    for module in (planmemo, incremental):
        monkeypatch.setattr(module, "RACY_NS", 0)  # stats trusted at once
    styled = "  - id: b\n    input_kind: plain_text\n    synthesis: {style: cheerful}\n"
    manifest = course(tmp_path, MANIFEST.replace("  - id: b\n", styled))
    record_all(manifest)
    assert validate(manifest, capsys)[0] == 0
    for _ in range(2):  # in full, then from the memo
        assert run_cli("plan", str(manifest)).code == 0
    assert planmemo.recall(manifest, "azure") is not None
    listed = [{"name": "en-US-AvaMultilingualNeural", "locale": "en-US", "styles": []}]
    catalogue = Path(os.environ["AVATARFLOW_CACHE_DIR"]) / "voices.json"
    catalogue.write_text(json.dumps({"source": "s", "as_of": "2026-01-01", "voices": listed}))
    refused = "has no speaking styles (style 'cheerful')"
    code, out, err = validate(manifest, capsys)
    assert (code, out) == (1, "") and refused in err
    assert planmemo.recall(manifest, "azure") is None
    planned = run_cli("plan", str(manifest))
    assert planned.code == 1 and refused in planned.err
    # The request cache too: with one other video edited, the plan is not made from it.
    manifest.write_text(manifest.read_text().replace("video c.", "video c, edited."))
    planned = run_cli("plan", str(manifest))
    assert planned.code == 1 and refused in planned.err

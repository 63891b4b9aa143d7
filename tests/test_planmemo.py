"""The plan memo: an unchanged catalogue is planned without parsing, rendering or reading
state records, and anything that could change the plan makes the next plan a full one."""

from __future__ import annotations

import json
import marshal
import os
import shutil
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import avatarflow.incremental as incremental
import avatarflow.manifest as manifest_module
import avatarflow.planmemo as planmemo
from avatarflow.atomicfile import TEMP_MARK
from avatarflow.planner import Action, ActionKind

from .helpers import MANIFEST, course, open_course, record_all, render_file, run_cli

SCRIPTED = MANIFEST + "  - id: d\n    text_file: scripts/d.txt\n"


class Parses:
    """Counts plans not recalled from the memo: a full plan loads the manifest, an
    incremental one plans from the per-video cache; a recalled plan does neither."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        load, plan_incremental = manifest_module.load_manifest, incremental.plan_incremental

        def loading(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return load(*args, **kwargs)

        def planning(*args: Any, **kwargs: Any) -> Any:
            made = plan_incremental(*args, **kwargs)
            self.count += made[0] is not None  # else a full plan follows and is counted
            return made

        monkeypatch.setattr(manifest_module, "load_manifest", loading)
        monkeypatch.setattr(incremental, "plan_incremental", planning)


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> Parses:
    return Parses(monkeypatch)


@pytest.fixture
def no_racy_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files written a moment before a plan count as settled (the default is 2 s, which
    only a slow test could wait out). Every change a test makes comes later than the
    plan's stats, by far more than a clock tick."""
    monkeypatch.setattr(planmemo, "RACY_NS", 0)


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    """A course of four videos, one narrated from a file, all rendered and recorded."""
    path = course(tmp_path, SCRIPTED, **{"scripts__d.txt": "Hello from the script of d.\n"})
    record_all(path)
    return path


def plan(manifest: Path, *extra: str) -> tuple[int, str, str]:
    result = run_cli("plan", str(manifest), *extra)
    return result.code, result.out, result.err


def memoised(manifest: Path, parses: Parses) -> None:
    """Plan once in full (writing the memo), then check the next plan is recalled."""
    assert plan(manifest)[:2] == (0, "No changes. Every video is up to date.\n")
    before = parses.count
    assert plan(manifest)[:2] == (0, "No changes. Every video is up to date.\n")
    assert parses.count == before, "the second plan should come from the memo"


@pytest.mark.usefixtures("no_racy_window")
def test_an_unchanged_catalogue_is_planned_from_the_memo(manifest: Path, parses: Parses) -> None:
    assert plan(manifest)[0] == 0
    assert parses.count == 1
    assert planmemo.memo_path(manifest, "azure").exists()
    for _ in range(2):
        assert plan(manifest) == (0, "No changes. Every video is up to date.\n", "")
    assert plan(manifest, "--detailed-exitcode")[0] == 0
    assert parses.count == 1


@pytest.mark.usefixtures("no_racy_window")
def test_a_recalled_plan_prints_the_same_json_as_a_full_one(manifest: Path, parses: Parses) -> None:
    full = plan(manifest, "--json")
    recalled = plan(manifest, "--json")
    assert parses.count == 1
    assert recalled == full
    data = json.loads(recalled[1])
    assert [a["video"] for a in data["actions"]] == ["a", "b", "c", "d"]
    assert all(a["action"] == "noop" and len(a["input_hash"]) == 64 for a in data["actions"])
    assert sorted(data["serials"]) == ["a", "b", "c", "d"]
    assert all(isinstance(v, int) and v > 0 for v in data["serials"].values())


@pytest.mark.usefixtures("no_racy_window")
def test_warnings_are_kept_with_the_memo(tmp_path: Path, parses: Parses) -> None:
    custom = MANIFEST + (
        "  - id: e\n"
        "    avatar: {character: my-own-avatar, customized: true}\n"
        "    ssml: \"<speak version='1.0' xml:lang='en-US' "
        "xmlns='http://www.w3.org/2001/10/synthesis'><voice name='en-US-AvaMultilingualNeural'>"
        "Hi <bookmark mark='gesture.wave-left-1'/> there.</voice></speak>\"\n"
    )
    path = course(tmp_path, custom)
    record_all(path)
    before = parses.count
    full, recalled = plan(path), plan(path)
    assert parses.count == before + 1
    assert "warning: video e: gestures wave-left-1 not checked for my-own-avatar" in full[2]
    assert recalled == full


def _edit_manifest_narration(m: Path) -> None:
    m.write_text(m.read_text().replace("Hello from video b.", "Hello again from b."))


def _edit_script(m: Path) -> None:
    (m.parent / "scripts/d.txt").write_text("A new script for d.\n")


def _edit_template(m: Path) -> None:
    template = m.parent / "templates/narration.ssml.j2"
    template.write_text(template.read_text().replace("<s>{{ title }}.</s>", "<s>{{ title }}!</s>"))


def _remove_output(m: Path) -> None:
    (m.parent / "build/videos/c.mp4").unlink()


def _overwrite_output_same_size(m: Path) -> None:
    video = m.parent / "build/videos/c.mp4"
    video.write_bytes(b"X" * video.stat().st_size)


def _fail_a_record(m: Path) -> None:
    record = render_file(m, "a")
    data = json.loads(record.read_text())
    data.update(status="failed", error={"code": "Boom", "message": "it broke"})
    del data["output"]
    record.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _remove_a_record(m: Path) -> None:
    render_file(m, "b").unlink()


def _record_an_unused_render(m: Path) -> None:
    source = render_file(m, "a")
    data = json.loads(source.read_text())
    data["request_hash"] = "f" * 64
    (source.parent / f"{'f' * 64}.json").write_text(json.dumps(data, indent=2) + "\n")


CHANGES: dict[str, tuple[Callable[[Path], None], str]] = {
    "narration in the manifest": (_edit_manifest_narration, "~ b"),
    "narration file": (_edit_script, "~ d"),
    "template": (_edit_template, "~ a"),
    "output removed": (_remove_output, "↓ c"),
    "output overwritten, same size": (_overwrite_output_same_size, "↓ c"),
    "record edited": (_fail_a_record, "~ a"),
    "record removed": (_remove_a_record, "+ b"),
}


@pytest.mark.usefixtures("no_racy_window")
@pytest.mark.parametrize("change", list(CHANGES))
def test_every_change_is_seen_after_a_memo(manifest: Path, parses: Parses, change: str) -> None:
    memoised(manifest, parses)
    edit, expected = CHANGES[change]
    edit(manifest)
    code, out, _ = plan(manifest)
    assert code == 0
    assert expected in out, out
    assert "No changes" not in out


@pytest.mark.usefixtures("no_racy_window")
def test_a_render_added_by_a_pull_means_a_full_plan(manifest: Path, parses: Parses) -> None:
    memoised(manifest, parses)
    _record_an_unused_render(manifest)
    before = parses.count
    assert plan(manifest)[1] == "No changes. Every video is up to date.\n"
    assert parses.count == before + 1


@pytest.mark.usefixtures("no_racy_window")
def test_a_comment_in_the_manifest_means_a_full_plan_with_the_same_answer(
    manifest: Path, parses: Parses
) -> None:
    memoised(manifest, parses)
    manifest.write_text("# reformatted\n" + manifest.read_text())
    before = parses.count
    assert plan(manifest)[1] == "No changes. Every video is up to date.\n"
    assert parses.count == before + 1


@pytest.mark.usefixtures("no_racy_window")
def test_a_template_added_to_the_folder_means_a_full_plan(manifest: Path, parses: Parses) -> None:
    """``{% include 'x' ignore missing %}`` picks a new file up: the folder is the input."""
    memoised(manifest, parses)
    (manifest.parent / "templates/extra.ssml.j2").write_text("<speak/>")
    before = parses.count
    assert plan(manifest)[0] == 0
    assert parses.count == before + 1


@pytest.mark.usefixtures("no_racy_window")
def test_a_narration_file_turned_into_a_fifo_is_refused_not_waited_on(
    manifest: Path, parses: Parses
) -> None:
    memoised(manifest, parses)
    script = manifest.parent / "scripts/d.txt"
    script.unlink()
    os.mkfifo(script)
    code, out, err = plan(manifest)
    assert code == 1 and out == ""
    assert "scripts/d.txt" in err and "not a regular file" in err
    assert "Traceback" not in err


@pytest.mark.usefixtures("no_racy_window")
def test_a_new_avatarflow_means_a_full_plan(
    manifest: Path, parses: Parses, monkeypatch: pytest.MonkeyPatch
) -> None:
    memoised(manifest, parses)
    monkeypatch.setattr(planmemo, "code_fingerprint", lambda: "another version")
    before = parses.count
    assert plan(manifest)[0] == 0
    assert parses.count == before + 1


@pytest.mark.usefixtures("no_racy_window")
def test_verify_always_plans_in_full(manifest: Path, parses: Parses) -> None:
    memoised(manifest, parses)
    before = parses.count
    assert plan(manifest, "--verify")[:2] == (0, "No changes. Every video is up to date.\n")
    assert parses.count == before + 1


@pytest.mark.usefixtures("no_racy_window")
def test_the_draft_target_has_its_own_memo(manifest: Path, parses: Parses) -> None:
    memoised(manifest, parses)
    code, out, _ = plan(manifest, "--emulator")
    assert code == 0
    assert "Plan: 4 to create" in out


@pytest.mark.usefixtures("no_racy_window")
def test_a_corrupt_memo_is_a_miss_and_is_rewritten(manifest: Path, parses: Parses) -> None:
    memoised(manifest, parses)
    memo = planmemo.memo_path(manifest, "azure")
    memo.write_text('{"version": 1, "code": ')
    before = parses.count
    assert plan(manifest)[:2] == (0, "No changes. Every video is up to date.\n")
    assert parses.count == before + 1
    assert planmemo.recall(manifest, "azure") is not None


@pytest.mark.usefixtures("no_racy_window")
def test_an_unwritable_cache_folder_only_costs_speed(
    manifest: Path, parses: Parses, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    monkeypatch.setenv("AVATARFLOW_CACHE_DIR", str(blocked))
    for _ in range(2):
        assert plan(manifest)[:2] == (0, "No changes. Every video is up to date.\n")
    assert parses.count == 2


def test_files_written_just_before_a_plan_are_not_trusted_by_stat(
    manifest: Path, parses: Parses
) -> None:
    """The default racy window: state and outputs were written a moment ago, so their
    stat vouches for nothing yet and both plans are full ones."""
    assert plan(manifest)[0] == 0
    assert plan(manifest)[0] == 0
    assert parses.count == 2


@pytest.mark.usefixtures("no_racy_window")
def test_a_plan_with_changes_leaves_no_memo(tmp_path: Path, parses: Parses) -> None:
    path = course(tmp_path)  # nothing recorded: every video is new
    for _ in range(2):
        code, out, _ = plan(path)
        assert code == 0 and "3 to create" in out
    assert parses.count == 2
    assert not planmemo.memo_path(path, "azure").exists()


@pytest.mark.usefixtures("no_racy_window")
def test_the_memo_holds_hashes_and_paths_only(manifest: Path, parses: Parses) -> None:
    memoised(manifest, parses)
    memo = planmemo.memo_path(manifest, "azure")
    assert stat.S_IMODE(memo.stat().st_mode) & 0o077 == 0  # private to the user
    head, narrations, _ = _decoded(manifest)
    assert [(folder, names) for folder, names, _, _ in narrations] == [("scripts", ["d.txt"])]
    assert set(head["templates"]) == {"narration.ssml.j2"}
    assert b"Hello" not in memo.read_bytes()


@pytest.mark.usefixtures("no_racy_window")
def test_a_no_op_apply_leaves_a_memo_and_the_next_one_uses_it(
    manifest: Path, parses: Parses, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AZURE_SPEECH_KEY", raising=False)
    first = run_cli("apply", str(manifest), "--yes")
    assert (first.code, first.out) == (0, "No changes. Every video is up to date.\n"), first.err
    assert parses.count == 1
    again = run_cli("apply", str(manifest), "--yes")
    assert (again.code, again.out) == (0, first.out)
    assert parses.count == 1
    assert plan(manifest)[1] == first.out and parses.count == 1


@pytest.mark.usefixtures("no_racy_window")
def test_a_no_op_apply_from_the_memo_still_respects_the_lock(
    manifest: Path, parses: Parses
) -> None:
    assert run_cli("apply", str(manifest), "--yes").code == 0
    holder = open_course(manifest).local_store()
    with holder.lock("avatarflow apply elsewhere"):
        before = parses.count
        blocked = run_cli("apply", str(manifest), "--yes")
    assert blocked.code == 1 and "avatarflow apply elsewhere" in blocked.err, blocked
    assert parses.count == before  # refused on the memo's path, not after a full plan
    assert run_cli("apply", str(manifest), "--yes").code == 0


@pytest.mark.usefixtures("no_racy_window")
@pytest.mark.parametrize("selection", [["--only", "a"], ["--exclude", "b"]])
def test_a_selective_apply_never_uses_nor_leaves_a_memo(
    tmp_path: Path, parses: Parses, selection: list[str]
) -> None:
    """``--only a`` with nothing to do for a says nothing of b, which is new."""
    path = course(tmp_path)
    record_all(path)
    render_file(path, "b").unlink()
    before = parses.count
    result = run_cli("apply", str(path), "--yes", *selection)
    assert (result.code, result.out) == (0, "No changes. Every video is up to date.\n")
    assert not planmemo.memo_path(path, "azure").exists()
    code, out, _ = plan(path)
    assert code == 0 and "+ b" in out
    assert parses.count == before + 2


@pytest.mark.usefixtures("no_racy_window")
def test_memos_unused_for_a_month_are_pruned(manifest: Path, parses: Parses) -> None:
    folder = Path(os.environ["AVATARFLOW_CACHE_DIR"]) / "plans"
    folder.mkdir(parents=True)
    old, recent = folder / ("0" * 32 + ".memo"), folder / ("1" * 32 + ".memo")
    older_version = folder / ("4" * 32 + ".json")  # the format before this one
    # Temp files of memo writes cut short: gone after an hour, kept while one may be live.
    torn = folder / f".{'2' * 32}.json{TEMP_MARK}abc"
    writing = folder / f".{'3' * 32}.json{TEMP_MARK}def"
    aged = ((old, 31), (recent, 29), (older_version, 31), (torn, 2 / 24), (writing, 0.5 / 24))
    for memo, days in aged:
        memo.write_text("{}")
        moment = time.time() - days * 24 * 3600
        os.utime(memo, (moment, moment))
    memoised(manifest, parses)
    assert not old.exists() and recent.exists() and not older_version.exists()
    assert not torn.exists() and writing.exists()
    assert planmemo.memo_path(manifest, "azure").exists()


def _retarget(link: Path, target: str) -> None:
    link.unlink()
    link.symlink_to(target)


@pytest.mark.usefixtures("no_racy_window")
def test_a_state_folder_symlink_pointed_elsewhere_is_followed(
    tmp_path: Path, parses: Parses
) -> None:
    path = course(tmp_path)
    record_all(path)
    (tmp_path / ".avatarflow").rename(tmp_path / "state-a")
    (tmp_path / ".avatarflow").symlink_to("state-a")
    memoised(path, parses)
    shutil.copytree(tmp_path / "state-a", tmp_path / "state-b")
    (tmp_path / "state-b/demo/renders" / render_file(path, "c").name).unlink()
    _retarget(tmp_path / ".avatarflow", "state-b")
    assert "+ c" in plan(path)[1]


@pytest.mark.usefixtures("no_racy_window")
def test_a_templates_folder_symlink_pointed_elsewhere_is_followed(
    tmp_path: Path, parses: Parses
) -> None:
    path = course(tmp_path)
    (tmp_path / "templates").rename(tmp_path / "templates-a")
    (tmp_path / "templates").symlink_to("templates-a")
    record_all(path)
    memoised(path, parses)
    shutil.copytree(tmp_path / "templates-a", tmp_path / "templates-b")
    _retarget(tmp_path / "templates", "templates-b")
    _edit_template(path)  # through the link: templates-b only
    assert plan(path)[1].count("template changed") == 3


@pytest.mark.usefixtures("no_racy_window")
def test_a_symlinked_folder_inside_the_templates_folder_pointed_elsewhere_is_seen(
    tmp_path: Path, parses: Parses
) -> None:
    including = MANIFEST.replace("template: narration.ssml.j2", "template: main.ssml.j2")
    main = (
        '<speak version="1.0" xml:lang="en-US" xmlns="http://www.w3.org/2001/10/synthesis">'
        '<voice name="{{ video.voice }}">{% include "parts/intro.j2" %} {{ text }}</voice></speak>'
    )
    path = course(
        tmp_path,
        including,
        **{
            "templates__main.ssml.j2": main,
            "templates__one__intro.j2": "Welcome.",
            "templates__two__intro.j2": "Hello there.",
        },
    )
    (tmp_path / "templates/parts").symlink_to("one")
    record_all(path)
    memoised(path, parses)
    _retarget(tmp_path / "templates/parts", "two")
    code, out, _ = plan(path)
    assert code == 0 and out.count("template changed") == 3, out  # the partial is named


# -- the memo's file and what it trusts --------------------------------------------------
def _decoded(manifest: Path) -> tuple[dict[str, Any], Any, bytes]:
    """The memo's first line, its narration section, and the bytes after the first line."""
    raw = planmemo.memo_path(manifest, "azure").read_bytes()
    end = raw.index(b"\n")
    head, payload = json.loads(raw[:end]), raw[end + 1 :]
    return head, marshal.loads(payload[: head["sections"][0]]), payload


def _rewrite(manifest: Path, head: dict[str, Any], payload: bytes) -> None:
    memo = planmemo.memo_path(manifest, "azure")
    memo.write_bytes(json.dumps(head).encode() + b"\n" + payload)


class Reads:
    """The files the memo reads (and hashes) while it checks itself."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.paths: list[str] = []
        read = planmemo.read_regular_file

        def reading(path: str | os.PathLike[str], limit: int) -> bytes:
            self.paths.append(os.fspath(path))
            return read(path, limit)

        monkeypatch.setattr(planmemo, "read_regular_file", reading)

    def of(self, name: str) -> int:
        return sum(path.endswith(name) for path in self.paths)


@pytest.mark.usefixtures("no_racy_window")
def test_a_settled_narration_file_is_trusted_by_its_stat(
    manifest: Path, parses: Parses, monkeypatch: pytest.MonkeyPatch
) -> None:
    memoised(manifest, parses)
    reads = Reads(monkeypatch)
    assert plan(manifest)[:2] == (0, "No changes. Every video is up to date.\n")
    assert reads.of("course.yaml") == 1  # the manifest is hashed on every recall
    assert reads.of("scripts/d.txt") == 0  # its stat is what the memo saw


@pytest.mark.usefixtures("no_racy_window")
def test_a_narration_file_written_again_with_the_same_words_is_read_once(
    manifest: Path, parses: Parses, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a checkout leaves it: a new stat, the same bytes. The recall that read it keeps
    its new stat, so the next one trusts it again."""
    memoised(manifest, parses)
    script = manifest.parent / "scripts/d.txt"
    script.write_bytes(script.read_bytes())
    reads = Reads(monkeypatch)
    for _ in range(3):
        assert plan(manifest)[:2] == (0, "No changes. Every video is up to date.\n")
    assert parses.count == 1
    assert reads.of("scripts/d.txt") == 1
    _edit_script(manifest)
    assert "~ d" in plan(manifest)[1]


@pytest.mark.usefixtures("no_racy_window")
def test_a_narration_edit_that_keeps_size_and_mtime_is_seen(
    manifest: Path, parses: Parses, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``touch -r``-style: the size and mtime are put back; the ctime still moves."""
    memoised(manifest, parses)
    script = manifest.parent / "scripts/d.txt"
    before = script.stat()
    script.write_text("Howdy from the script of d.\n")
    os.utime(script, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = script.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    reads = Reads(monkeypatch)
    code, out, _ = plan(manifest)
    assert code == 0 and "~ d" in out, out
    assert reads.of("scripts/d.txt") == 1  # the memo read it, found it changed: a miss


def test_a_narration_file_changed_within_the_racy_window_is_read_by_every_recall(
    manifest: Path, parses: Parses, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file written a moment before the plan that remembered it could be written
    again within the same clock tick, its stat unchanged: that stat vouches for nothing."""
    monkeypatch.setattr(planmemo, "RACY_NS", 1_500_000_000)
    time.sleep(1.6)  # the state and outputs settle; the narration file written now won't
    script = manifest.parent / "scripts/d.txt"
    script.write_bytes(script.read_bytes())  # the same words, written again
    written = script.stat().st_ctime_ns
    assert plan(manifest)[:2] == (0, "No changes. Every video is up to date.\n")
    ((_, _, _, keys),) = _decoded(manifest)[1]
    assert keys == [None]
    reads = Reads(monkeypatch)
    before = parses.count
    for _ in range(2):
        # However slow the machine, the file stays within the window and the state
        # (settled 1.6 s before it was written) outside: read again by each recall.
        monkeypatch.setattr(planmemo, "RACY_NS", time.time_ns() - written + 1_000_000_000)
        assert plan(manifest)[:2] == (0, "No changes. Every video is up to date.\n")
    assert parses.count == before  # recalled, ...
    assert reads.of("scripts/d.txt") == 2  # ... each time after reading the file again
    _edit_script(manifest)
    assert "~ d" in plan(manifest)[1]


def _torn(head: dict[str, Any], payload: bytes) -> tuple[dict[str, Any], bytes]:
    return head, payload[: len(payload) // 2]


def _a_byte_changed(head: dict[str, Any], payload: bytes) -> tuple[dict[str, Any], bytes]:
    middle = len(payload) // 2
    return head, payload[:middle] + bytes([payload[middle] ^ 1]) + payload[middle + 1 :]


def _other_format_version(head: dict[str, Any], payload: bytes) -> tuple[dict[str, Any], bytes]:
    return {**head, "format": f"avatarflow plan memo {planmemo.VERSION + 1}"}, payload


def _other_python(head: dict[str, Any], payload: bytes) -> tuple[dict[str, Any], bytes]:
    return {**head, "python": "cpython-399 marshal 99"}, payload


def _sections_of_another_shape(
    head: dict[str, Any], payload: bytes
) -> tuple[dict[str, Any], bytes]:
    """Sized and hashed right, but holding what no version of this one writes."""
    sections = [marshal.dumps(value) for value in ("inputs", {"a": 1}, [None])]
    body = b"".join(sections)
    sized = {**head, "sections": [len(s) for s in sections]}
    return {**sized, "sha256": planmemo.sha256_bytes(body)}, body


def _an_older_json_memo(head: dict[str, Any], payload: bytes) -> tuple[dict[str, Any], bytes]:
    return {"version": 2, "code": head["code"], "inputs": {}}, b""


BROKEN: dict[str, Callable[[dict[str, Any], bytes], tuple[dict[str, Any], bytes]]] = {
    "torn": _torn,
    "a byte changed": _a_byte_changed,
    "another format version": _other_format_version,
    "another Python": _other_python,
    "sections of another shape": _sections_of_another_shape,
    "an older JSON memo": _an_older_json_memo,
}


@pytest.mark.usefixtures("no_racy_window")
@pytest.mark.parametrize("broken", list(BROKEN))
def test_a_memo_it_cannot_vouch_for_is_a_miss_never_an_error(
    manifest: Path, parses: Parses, broken: str
) -> None:
    memoised(manifest, parses)
    head, _, payload = _decoded(manifest)
    _rewrite(manifest, *BROKEN[broken](head, payload))
    assert planmemo.recall(manifest, "azure") is None
    before = parses.count
    assert plan(manifest) == (0, "No changes. Every video is up to date.\n", "")
    assert parses.count == before + 1
    assert planmemo.recall(manifest, "azure") is not None  # written again, whole


@pytest.mark.usefixtures("no_racy_window")
def test_recalled_actions_are_those_the_constructor_makes(manifest: Path, parses: Parses) -> None:
    memoised(manifest, parses)
    recalled = planmemo.recall(manifest, "azure")
    assert recalled is not None
    actions = recalled.plan.actions
    assert [a.video_id for a in actions] == ["a", "b", "c", "d"]
    made = [
        Action(ActionKind.NOOP, a.video_id, synthesis_id=a.synthesis_id, input_hash=a.input_hash)
        for a in actions
    ]
    assert list(actions) == made and [hash(a) for a in actions] == [hash(a) for a in made]
    assert all(a.synthesis_id and a.input_hash and len(a.input_hash) == 64 for a in actions)

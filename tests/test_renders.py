"""Render records: keyed by request hash, churn-free, migrated losslessly, merged by driver."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from avatarflow.backends.local import RENDERS_FORMAT
from avatarflow.renders import RenderOutput, RenderRecord, dump, merge, to_render
from avatarflow.state import JobError, OutputFile, StateRecord

from .helpers import MANIFEST, course, record_all, render_file, run_cli

REPO = Path(__file__).resolve().parent.parent
V1_STATE = Path(__file__).resolve().parent / "data" / "v1-git-course"


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".cache" not in p.parts
    }


@pytest.fixture
def v1_course(tmp_path: Path) -> Path:
    """The example course with the state and videos today's format 1 recorded for it."""
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    shutil.copytree(V1_STATE, tmp_path / "manifests", dirs_exist_ok=True)
    return tmp_path / "manifests" / "git-course.yaml"


def v1_records() -> dict[str, dict[str, object]]:
    folder = V1_STATE / ".avatarflow" / "git-course" / "videos"
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def test_a_format_1_state_plans_no_changes_and_plan_writes_nothing(v1_course: Path) -> None:
    before = snapshot(v1_course.parent)
    result = run_cli("plan", str(v1_course), "--detailed-exitcode")
    assert (result.code, result.out) == (0, "No changes. Every video is up to date.\n"), result
    assert snapshot(v1_course.parent) == before


def test_the_first_apply_migrates_losslessly_and_still_plans_no_changes(v1_course: Path) -> None:
    result = run_cli("apply", str(v1_course), "--yes")
    assert result.code == 0, result
    state_dir = v1_course.parent / ".avatarflow" / "git-course"
    assert not (state_dir / "videos").exists()
    assert json.loads((state_dir / "state.json").read_text())["format"] == RENDERS_FORMAT
    old_meta = json.loads((V1_STATE / ".avatarflow/git-course/state.json").read_text())
    new_meta = json.loads((state_dir / "state.json").read_text())
    assert {k: v for k, v in new_meta.items() if k != "format"} == {
        k: v for k, v in old_meta.items() if k != "format"
    }
    renders = {p.stem: json.loads(p.read_text()) for p in (state_dir / "renders").glob("*.json")}
    old = v1_records()
    assert sorted(renders) == sorted(r["input_hash"] for r in old.values())  # type: ignore[misc]
    for record in old.values():
        render = renders[str(record["input_hash"])]
        # Every paid fact survives: the job, its bill, its duration, its output.
        assert render["job_id"] == record["remote_id"]
        assert render["billing"] == record["billing"]
        assert render["duration_ms"] == record["duration_ms"]
        output = record["output"]
        assert isinstance(output, dict)
        assert render["output"] == {"size": output["size"], "sha256": output["sha256"]}
        assert render["request"] == record["request"]
        assert render["status"] == "succeeded"
        assert "expires_at" in render
    plan = run_cli("plan", str(v1_course), "--detailed-exitcode")
    assert (plan.code, plan.out) == (0, "No changes. Every video is up to date.\n")


def test_an_edit_after_migration_is_explained_from_the_migrated_sources(v1_course: Path) -> None:
    assert run_cli("apply", str(v1_course), "--yes").code == 0
    script = v1_course.parent / "scripts" / "03-branches.txt"
    script.write_text(script.read_text() + "One more sentence.\n")
    plan = run_cli("plan", str(v1_course))
    assert "~ 03-branches  script changed" in plan.out, plan.out


def _record(**update: object) -> StateRecord:
    base = StateRecord(
        video_id="a",
        status="downloaded",
        input_hash="h" * 64,
        synthesis_id="demo-a-hhhhhhhhhhhh",
        surface="ga",
        remote_id="demo-a-hhhhhhhhhhhh",
        request={"properties": {"timeToLiveInHours": 48}},
        submitted_at="2026-01-01T10:00:00Z",
        completed_at="2026-01-01T10:01:00Z",
        updated_at="2026-01-05T00:00:00.123Z",
        serial=9,
        output=OutputFile(path="build/a.mp4", size=10, sha256="s" * 64),
    )
    return base.model_copy(update=update)


def test_a_render_holds_only_the_request_and_the_services_answers() -> None:
    render = to_render(_record(), None)
    assert render is not None
    text = dump(render).decode()
    for local in ("updated_at", "serial", "build/a.mp4", "video_id", "remote_status"):
        assert local not in text
    assert render.expires_at == "2026-01-03T10:01:00Z"  # last action + 48 h
    # The same render recorded by another clone, at another time, with another serial:
    again = to_render(_record(updated_at="2026-02-01T00:00:00Z", serial=1, video_id="b"), None)
    assert again is not None and dump(again) == dump(render)


def test_a_final_record_never_changes() -> None:
    render = to_render(_record(), None)
    assert to_render(_record(updated_at="2027-01-01T00:00:00Z"), render) is None
    gone = _record(status="failed", output=None, error=JobError(code="JobGone", message="gone"))
    assert to_render(gone, render) is None  # a later loss is this machine's business
    local = _record(
        status="succeeded", output=None, error=JobError(code="DownloadFailed", message="x")
    )
    kept = to_render(local, None)
    assert kept is not None and kept.error is None


def test_a_new_attempt_keeps_the_old_job_as_history() -> None:
    failed = to_render(
        _record(status="failed", output=None, error=JobError(code="Boom", message="no")), None
    )
    retry = to_render(_record(attempt=1, remote_id="demo-a-hhhhhhhhhhhh-r1"), failed)
    assert retry is not None and retry.job_id == "demo-a-hhhhhhhhhhhh-r1"
    assert [p.job_id for p in retry.history] == ["demo-a-hhhhhhhhhhhh"]


def _preview(job: str, created: str, output: bool) -> RenderRecord:
    return RenderRecord(
        request_hash="h" * 64,
        surface="preview",
        synthesis_id="x",
        request={},
        status="succeeded",
        job_id=job,
        submitted_at=created,
        output=RenderOutput(size=1, sha256=job[0] * 64) if output else None,
    )


def test_merging_two_paid_jobs_of_one_request_keeps_both_and_is_symmetric() -> None:
    ours, theirs = (
        _preview("a-job", "2026-01-01T00:00:00Z", True),
        _preview("b-job", "2026-01-02T00:00:00Z", True),
    )
    merged = merge(ours, theirs)
    assert dump(merged) == dump(merge(theirs, ours))
    assert merged.job_id == "b-job" and [p.job_id for p in merged.history] == ["a-job"]
    # A delivered video wins over a later job that delivered nothing.
    pending = _preview("c-job", "2026-01-03T00:00:00Z", False)
    assert merge(ours, pending).job_id == "a-job"
    assert merge(merged, merged) == merged


def test_prune_removes_renders_unused_beyond_the_keep_window(tmp_path: Path) -> None:
    manifest = course(tmp_path)
    record_all(manifest)
    old = render_file(manifest, "b")
    manifest.write_text(MANIFEST.replace("video b.", "video b, edited."))
    assert old.exists()
    kept = run_cli("prune", str(manifest), "--yes")
    assert (kept.code, kept.out) == (0, "Nothing to prune.\n")
    assert old.exists()  # ended moments ago: a branch may still need it
    synthesis_id = json.loads(old.read_text())["synthesis_id"]
    pruned = run_cli("prune", str(manifest), "--yes", "--keep-days", "0")
    assert pruned.code == 0, pruned
    lines = pruned.out.splitlines()
    assert lines[0] == (
        "Remove 1 render(s) no video uses, ended over 0 day(s) ago "
        "(a video that needs one again is paid again):"
    )
    assert lines[1].startswith(f"  - {synthesis_id} (job ") and ", ended 20" in lines[1]
    assert lines[2:] == ["Pruned 1 unused render(s)."]
    assert not old.exists()
    assert render_file(manifest, "a").exists() and render_file(manifest, "c").exists()


def _prune_on_a_terminal(manifest: Path, answer: bytes) -> subprocess.CompletedProcess[bytes]:
    """``prune --keep-days 0`` with its stdin on a terminal that has ``answer`` typed."""
    master, slave = pty.openpty()
    try:
        os.write(master, answer)
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "avatarflow",
                "--color",
                "never",
                "prune",
                str(manifest),
                "--keep-days",
                "0",
            ],
            stdin=slave,
            capture_output=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(master)
        os.close(slave)


def test_a_prune_of_unused_renders_alone_lists_them_and_asks_first(tmp_path: Path) -> None:
    manifest = course(tmp_path)
    record_all(manifest)
    old = render_file(manifest, "b")
    manifest.write_text(MANIFEST.replace("video b.", "video b, edited."))
    synthesis_id = json.loads(old.read_text())["synthesis_id"]
    before = snapshot(tmp_path)
    # No terminal and no --yes: refused, and nothing goes.
    refused = run_cli("prune", str(manifest), "--keep-days", "0")
    assert refused.code == 1
    assert refused.err == "Error: prune needs confirmation: run it on a terminal or pass --yes\n"
    assert f"  - {synthesis_id} (job " in refused.out
    assert snapshot(tmp_path) == before
    # Asked on a terminal, "no" keeps it: the question names renders, not only videos.
    kept = _prune_on_a_terminal(manifest, b"n\n")
    assert kept.returncode == 130, kept.stderr
    assert f"  - {synthesis_id} (job ".encode() in kept.stdout
    assert b"Prune these? [y/N]" in kept.stdout and b"videos?" not in kept.stdout
    assert snapshot(tmp_path) == before
    gone = _prune_on_a_terminal(manifest, b"y\n")
    assert gone.returncode == 0, gone.stderr
    assert gone.stdout.endswith(b"Pruned 1 unused render(s).\n")
    assert not old.exists() and render_file(manifest, "a").exists()


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@e",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@e",
    }
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)


def test_the_merge_driver_resolves_two_paid_jobs_of_one_request(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    assert _git(tmp_path, "init", "-q", "-b", "main").returncode == 0
    assert run_cli("git-setup", str(tmp_path)).code == 0
    record = tmp_path / ".avatarflow" / "demo" / "renders" / f"{'h' * 64}.json"
    record.parent.mkdir(parents=True)
    record.write_bytes(dump(_preview("base-job", "2026-01-01T00:00:00Z", False)))
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "submitted")
    ours = _preview("a-job", "2026-01-02T00:00:00Z", True)
    theirs = _preview("b-job", "2026-01-03T00:00:00Z", True)
    for branch, render in (("one", ours), ("two", theirs)):
        _git(tmp_path, "checkout", "-q", "-b", branch, "main")
        record.write_bytes(dump(render))
        _git(tmp_path, "commit", "-qam", branch)
    _git(tmp_path, "checkout", "-q", "one")
    merged = _git(tmp_path, "merge", "--no-edit", "two")
    assert merged.returncode == 0, merged.stdout + merged.stderr
    assert record.read_bytes() == dump(merge(ours, theirs))
    assert "<<<<<<<" not in record.read_text()
    assert _git(tmp_path, "status", "--porcelain").stdout == ""

"""The planner: one action per video with the reasons a user needs."""

from __future__ import annotations

import json
from pathlib import Path

from avatarflow.planner import ActionKind, Plan
from avatarflow.state import JobError

from .helpers import (
    MANIFEST,
    TEMPLATE,
    course,
    open_course,
    record_all,
    record_rendered,
    run_cli,
)


def plan_of(manifest: Path, **kw: object) -> Plan:
    return open_course(manifest).plan(**kw)  # type: ignore[arg-type]


def kinds(plan: Plan) -> dict[str, ActionKind]:
    return {a.video_id: a.kind for a in plan.actions}


def test_fresh_course_creates_everything(tmp_path: Path) -> None:
    plan = plan_of(course(tmp_path))
    assert set(kinds(plan).values()) == {ActionKind.CREATE}
    assert (
        plan.footer()
        == "Plan: 3 to create, 0 to re-render, 0 to resume, 0 to download, 0 to forget."
    )


def test_recorded_course_has_no_changes(tmp_path: Path) -> None:
    manifest = course(tmp_path)
    record_all(manifest)
    plan = plan_of(manifest)
    assert not plan.has_changes
    assert plan.footer().startswith("No changes.")


def test_edited_script_is_one_rerender_with_reason(tmp_path: Path) -> None:
    manifest = course(tmp_path)
    record_all(manifest)
    manifest.write_text(MANIFEST.replace("video b.", "video b, edited."))
    plan = plan_of(manifest)
    changes = plan.changes
    assert [(a.kind, a.video_id) for a in changes] == [(ActionKind.RERENDER, "b")]
    assert changes[0].reasons == ("script changed",)


def test_reasons_name_voice_avatar_video_and_template(tmp_path: Path) -> None:
    manifest = course(tmp_path)
    record_all(manifest)
    changed = (
        MANIFEST.replace("AvaMultilingualNeural", "AndrewNeural")
        .replace("graceful-sitting", "casual-sitting")
        .replace("h264", "hevc")
    )
    manifest.write_text(changed)
    (tmp_path / "templates/narration.ssml.j2").write_text(
        TEMPLATE.replace("<s>", "<p><s>").replace("</s>", "</s></p>")
    )
    reasons = plan_of(manifest).changes[0].reasons
    assert "template changed" in reasons
    assert "voice en-US-AvaMultilingualNeural → en-US-AndrewNeural" in reasons
    assert "avatar (talkingAvatarStyle)" in reasons
    assert "video settings (videoCodec)" in reasons


def test_missing_output_is_redownloaded_or_rerendered_when_job_is_gone(tmp_path: Path) -> None:
    manifest = course(tmp_path)
    record_all(manifest)
    (tmp_path / "build/videos/a.mp4").unlink()
    (tmp_path / "build/videos/b.mp4").write_bytes(b"tampered")
    plan = plan_of(manifest)
    assert kinds(plan) == {"a": ActionKind.DOWNLOAD, "b": ActionKind.DOWNLOAD, "c": ActionKind.NOOP}
    assert plan.changes[1].reasons == ("output file modified (sha256 differs)",)
    gone = plan_of(manifest, remote_gone=frozenset({"a"}))
    assert kinds(gone)["a"] is ActionKind.RERENDER
    assert "remote job has expired" in gone.changes[0].reasons[0]


def test_removed_video_is_forgotten_and_in_flight_is_resumed(tmp_path: Path) -> None:
    manifest = course(tmp_path)
    project = open_course(manifest)
    state = project.load_state()
    for request in project.requests:
        record = record_rendered(project, state, request)
    state.put(record.model_copy(update={"status": "running"}))  # c is in flight
    manifest.write_text(MANIFEST.replace("  - id: a\n    text: Hello from video a.\n", ""))
    plan = plan_of(manifest)
    assert kinds(plan) == {"b": ActionKind.NOOP, "c": ActionKind.RESUME, "a": ActionKind.FORGET}


def test_failed_render_is_retried_with_the_service_error_as_reason(tmp_path: Path) -> None:
    manifest = course(tmp_path)
    project = open_course(manifest)
    state = project.load_state()
    record = record_rendered(project, state, project.requests[0])
    state.put(
        record.model_copy(
            update={
                "status": "failed",
                "output": None,
                "error": JobError(code="InvalidSsml", message="bad"),
            }
        )
    )
    action = plan_of(manifest).actions[0]
    assert action.kind is ActionKind.RERENDER
    assert action.reasons == ("last render failed (InvalidSsml: bad)",)


def test_status_says_which_renders_the_manifest_no_longer_asks_for(tmp_path: Path) -> None:
    manifest = course(tmp_path)
    record_all(manifest)
    manifest.write_text(MANIFEST.replace("video b.", "video b, edited."))
    result = run_cli("status", str(manifest), "--json")
    assert result.code == 0, result.err
    rows = {row["video"]: row for row in json.loads(result.out)}
    assert {video: row["current"] for video, row in rows.items()} == {
        "a": True,
        "b": False,
        "c": True,
    }
    table = run_cli("status", str(manifest)).out
    changed = [line for line in table.splitlines() if "changed: see plan" in line]
    assert len(changed) == 1 and changed[0].split()[0] == "b"

"""The planner: one action per video with the reasons a user needs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from avatarflow.backends.local import LocalStore
from avatarflow.display import footer
from avatarflow.errors import Location, SelectionError
from avatarflow.manifest import (
    AvatarSettings,
    ResolvedVideo,
    SynthesisSettings,
    VideoEntry,
    VideoSettings,
)
from avatarflow.payload import VideoRequest, build_request
from avatarflow.planner import ActionKind, OutputCheck, Plan, make_plan, select
from avatarflow.render import RenderedVideo
from avatarflow.state import JobError, OutputFile, State, StateRecord

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
        footer(plan)
        == "Plan: 3 to create, 0 to re-render, 0 to resume, 0 to fetch, 0 to reuse, 0 to forget."
    )


def test_recorded_course_has_no_changes(tmp_path: Path) -> None:
    manifest = course(tmp_path)
    record_all(manifest)
    plan = plan_of(manifest)
    assert not plan.has_changes
    assert footer(plan).startswith("No changes.")


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
    assert plan.changes[1].reasons == ("output file modified (sha256 differs)", "from the service")
    gone = plan_of(manifest, remote_gone=frozenset({"a"}))
    assert kinds(gone)["a"] is ActionKind.RERENDER
    assert "in no video store, and its job" in gone.changes[0].reasons[0]


def test_removed_video_is_forgotten_and_in_flight_is_resumed(tmp_path: Path) -> None:
    manifest = course(tmp_path)
    project = open_course(manifest)
    state = project.load_state()
    *done, running = project.requests
    for request in done:
        record_rendered(project, state, request)
    record = record_rendered(project, state, running, keep=False)
    state.put(record.model_copy(update={"status": "running", "output": None}))  # in flight
    manifest.write_text(MANIFEST.replace("  - id: a\n    text: Hello from video a.\n", ""))
    plan = plan_of(manifest)
    assert kinds(plan) == {"b": ActionKind.NOOP, "c": ActionKind.RESUME, "a": ActionKind.FORGET}


def test_failed_render_is_retried_with_the_service_error_as_reason(tmp_path: Path) -> None:
    manifest = course(tmp_path)
    project = open_course(manifest)
    state = project.load_state()
    record = record_rendered(project, state, project.requests[0], keep=False)
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


# -- the pure planner, inline: no file is read or written below --------------------------
GA, PREVIEW = "2024-08-01", "3.1-preview1"
LISA = AvatarSettings(character="lisa", style="graceful-sitting")
SAVED = OutputFile(path="build/videos/a.mp4", size=8, sha256="0" * 64)
NO_STORE = LocalStore(Path("never-read"), "never-read")  # the planner never touches a store


def request(
    video_id: str = "a",
    *,
    api: str = GA,
    text: str = "Hello.",
    sources: dict[str, str] | None = None,
    ssml: bool = False,
    **fields: Any,
) -> VideoRequest:
    """A request built by the payload step from a video given inline."""
    fields = {"voice": "en-US-AvaMultilingualNeural", "avatar": LISA, **fields}
    entry = VideoEntry(id=video_id, text=text, **fields)
    video = ResolvedVideo(video_id, 0, entry, Location("course.yaml", 1))
    content = f"<speak>{text}</speak>" if ssml else text
    kind = "SSML" if ssml else "PlainText"
    rendered = RenderedVideo(video, content, kind, sources or {"script": text, "vars": "-"})
    return build_request(rendered, "demo", api)


def recorded(req: VideoRequest, status: str = "downloaded", **update: Any) -> StateRecord:
    """The record apply keeps of ``req`` once it reached ``status``."""
    return StateRecord(
        video_id=req.video_id,
        serial=1,
        status=status,  # type: ignore[arg-type]
        input_hash=req.content_hash,
        synthesis_id=req.synthesis_id,
        surface=req.surface,
        remote_id=req.synthesis_id,
        request=req.recorded_body(),
        sources=dict(req.rendered.sources),
        updated_at="2026-01-01T00:00:00Z",
        output=SAVED if status == "downloaded" else None,
        **update,
    )


def decide(
    requests: list[VideoRequest],
    records: list[StateRecord],
    outputs: dict[str, OutputCheck] | None = None,
    **kw: Any,
) -> Plan:
    state = State(NO_STORE, records={r.video_id: r for r in records})
    checks = outputs or {}
    return make_plan(requests, state, lambda r: checks.get(r.video_id, "ok"), **kw)


def only_action(plan: Plan) -> tuple[ActionKind, tuple[str, ...]]:
    (action,) = plan.actions
    return action.kind, action.reasons


def rerender_reasons(before: VideoRequest, after: VideoRequest) -> tuple[str, ...]:
    kind, reasons = only_action(decide([after], [recorded(before)]))
    assert kind is ActionKind.RERENDER
    return reasons


def test_pure_new_unchanged_and_removed_videos() -> None:
    a, b = request("a"), request("b")
    plan = decide([a, b], [recorded(b), recorded(request("gone"))])
    assert [(x.video_id, x.kind, x.reasons) for x in plan.actions] == [
        ("a", ActionKind.CREATE, ("new video",)),
        ("b", ActionKind.NOOP, ()),
        ("gone", ActionKind.FORGET, ("removed from the manifest",)),
    ]
    assert plan.actions[0].synthesis_id == a.synthesis_id
    assert plan.actions[0].input_hash == a.content_hash
    assert (
        footer(plan)
        == "Plan: 1 to create, 0 to re-render, 0 to resume, 0 to fetch, 0 to reuse, 1 to forget."
    )
    assert footer(decide([b], [recorded(b)])) == "No changes. Every video is up to date."


def test_pure_replace_failure_and_expired_jobs_rerender() -> None:
    a = request()
    assert only_action(decide([a], [recorded(a)], replace=frozenset({"a"}))) == (
        ActionKind.RERENDER,
        ("replacement requested (--replace)",),
    )
    failed = recorded(a, "failed", error=JobError(code="InvalidSsml", message="bad tag"))
    assert only_action(decide([a], [failed])) == (
        ActionKind.RERENDER,
        ("last render failed (InvalidSsml: bad tag)",),
    )
    assert only_action(decide([a], [recorded(a, "failed")]))[1] == (
        "last render failed (unknown error)",
    )
    running = recorded(a, "running")
    assert only_action(decide([a], [running], remote_gone=frozenset({"a"}))) == (
        ActionKind.RERENDER,
        ("remote job expired or was deleted before download",),
    )
    assert only_action(decide([a], [recorded(a)], {"a": "missing"}, remote_gone=frozenset({"a"})))[
        1
    ] == ("output file missing and the remote job has expired",)


def test_pure_in_flight_jobs_resume_and_lost_outputs_download() -> None:
    a = request()
    assert only_action(decide([a], [recorded(a, "running")])) == (
        ActionKind.RESUME,
        (f"job {a.synthesis_id} is running",),
    )
    saved = recorded(a, "running", pending_output=SAVED)
    assert only_action(decide([a], [saved])) == (
        ActionKind.RESUME,
        ("output saved by the last run, to be recorded",),
    )
    # The pending file is not there after all: the job is followed as it is.
    assert only_action(decide([a], [saved], {"a": "missing"}))[0] is ActionKind.RESUME
    assert only_action(decide([a], [recorded(a)], {"a": "missing"})) == (
        ActionKind.DOWNLOAD,
        ("output file missing",),
    )
    assert only_action(decide([a], [recorded(a)], {"a": "modified"})) == (
        ActionKind.DOWNLOAD,
        ("output file modified (sha256 differs)",),
    )


def test_pure_reasons_name_what_changed_in_the_request() -> None:
    base = request()
    script = {"script": "s2", "vars": "-"}
    assert rerender_reasons(base, request(text="Hi.", sources=script)) == ("script changed",)
    cases: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
        "voice": (
            {"voice": "en-US-AndrewNeural"},
            ("voice en-US-AvaMultilingualNeural → en-US-AndrewNeural",),
        ),
        "avatar": (
            {"avatar": AvatarSettings(character="lisa", style="casual-sitting")},
            ("avatar (talkingAvatarStyle)",),
        ),
        "video": ({"video": VideoSettings(codec="hevc")}, ("video settings (videoCodec)",)),
        "synthesis": ({"synthesis": SynthesisSettings(rate="+10%")}, ("synthesis (rate)",)),
        "ttl": ({"ttl_hours": 24}, ("properties changed",)),
        "description": ({"description": "a new one"}, ("description changed",)),
        "custom voices": ({"custom_voices": {"Mine": "deploy-1"}}, ("customVoices changed",)),
    }
    for name, (fields, reasons) in cases.items():
        assert rerender_reasons(base, request(**fields)) == reasons, name
    both = request(voice="en-US-AndrewNeural", video=VideoSettings(codec="hevc"))
    assert rerender_reasons(base, both) == (
        "voice en-US-AvaMultilingualNeural → en-US-AndrewNeural",
        "video settings (videoCodec)",
    )


def test_pure_reasons_of_templates_ssml_and_the_api_surface() -> None:
    templated = {"script": "s", "vars": "v1", "template": "t.j2@1", "voice": "en-US-AvaNeural"}

    def ssml(**sources: str) -> VideoRequest:
        return request(ssml=True, sources={**templated, **sources}, text=str(sources))

    assert rerender_reasons(ssml(), ssml(template="t.j2@2")) == ("template changed",)
    assert rerender_reasons(ssml(), ssml(vars="v2")) == ("template vars changed",)
    # The voice is rendered into the SSML: the input changed, though no source of it did.
    assert rerender_reasons(ssml(), ssml(voice="en-US-AndrewNeural")) == (
        "input changed",
        "voice en-US-AvaNeural → en-US-AndrewNeural",
    )
    own = request(ssml=True, sources={"ssml": "x1"}, text="one")
    assert rerender_reasons(own, request(ssml=True, sources={"ssml": "x2"}, text="two")) == (
        "ssml changed",
    )
    assert rerender_reasons(ssml(), request(ssml=True, sources={"ssml": "x"}, text="x")) == (
        "input kind changed",
    )
    assert rerender_reasons(
        request(sources={"script": "s"}), request(text="Other.", sources={"script": "s"})
    ) == ("input changed",)
    assert rerender_reasons(request(), request(api=PREVIEW)) == (
        "api surface changed (ga → preview)",
    )
    assert rerender_reasons(request(api=PREVIEW), request(api=PREVIEW, ttl_hours=24)) == (
        "properties (timeToLive)",
    )
    assert rerender_reasons(
        request(api=PREVIEW),
        request(api=PREVIEW, avatar=AvatarSettings(character="harry", style="business")),
    ) == ("avatar (talkingAvatarCharacter, talkingAvatarStyle)",)


def test_pure_an_unexplained_change_still_has_a_reason() -> None:
    a = request()
    record = recorded(a).model_copy(update={"input_hash": "another-hash"})
    assert only_action(decide([a], [record])) == (ActionKind.RERENDER, ("request changed",))


def test_pure_selection_keeps_matching_videos_and_names_unknown_globs() -> None:
    a, b = request("a"), request("b")
    plan = decide([a, b], [recorded(request("gone"))])
    picked = select(plan, ["a"], [], ["a", "b"])
    assert [(x.video_id, x.kind) for x in picked.actions] == [
        ("a", ActionKind.CREATE),
        ("b", ActionKind.NOOP),
    ]
    kept = select(plan, [], ["a"], ["a", "b"])
    assert [(x.video_id, x.kind) for x in kept.changes] == [
        ("b", ActionKind.CREATE),
        ("gone", ActionKind.FORGET),
    ]
    with pytest.raises(SelectionError, match=r"no video matches 'z\*'; videos: a, b$"):
        select(plan, ["z*"], [], ["a", "b"])


def test_pure_estimate_counts_the_spoken_words_of_paid_renders() -> None:
    a = request(text="one two three", ssml=True, sources={"ssml": "x"})
    plan = decide([a, request("b")], [recorded(request("b"))])
    assert plan.estimate() == (len("one two three"), 3 / 150)
    assert [x.video_id for x in plan.paid()] == ["a"]

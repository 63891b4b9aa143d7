"""Crash suite: SIGKILL apply at every transition; the next apply pays nothing twice.

Each case runs ``avatarflow apply`` in a subprocess that kills itself at a named point
(``AVATARFLOW_KILL_AT``, see :mod:`avatarflow.killpoints`), together with its embedded
emulator, then applies again in-process on the same folders. The proof comes from the
emulator's own request log on disk: one create per video, under its first job id.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from avatarflow.emulator.requestlog import read_request_log
from avatarflow.statcache import sha256_file

from .helpers import (
    VIDEOS,
    apply,
    apply_faulty,
    assert_paid_once_and_complete,
    data_dir,
    delete_remote_job,
    download_temp_files,
    example,
    open_course,
    paid_creates,
    requests_by_kind,
    run_killed,
    state_temp_files,
)

pytestmark = pytest.mark.usefixtures("fast_emulator")


def resume(manifest: Path) -> str:
    code, out, err = apply(manifest)
    assert code == 0, err
    # Nothing expired: a job the killed run never got to create is resumed, not
    # planned as a re-render of an expired job.
    assert "~ " not in out and "expired" not in out, out
    return err


def outputs(manifest: Path) -> list[Path]:
    return sorted((manifest.parent / "build").rglob("*.mp4"))


def check_killed(manifest: Path, kill_at: str) -> None:
    """What the killed run must have left behind, so the case tests what it names."""
    state = open_course(manifest, "emulator").load_state()  # readable after any kill
    assert all(r.status != "failed" for r in state.records.values())
    assert set(paid_creates(data_dir(manifest)).values()) <= {1}
    point = kill_at.partition(":")[0]
    if point == "mid-download":
        assert download_temp_files(manifest), "no partial download"
        assert sum(r.output is not None for r in state.records.values()) == len(outputs(manifest))
    if point == "after-download":
        # Written ahead of the rename, the render already names the file just saved.
        recorded = {r.video_id: r for r in state.records.values() if r.output is not None}
        on_disk = outputs(manifest)
        assert on_disk and {p.stem for p in on_disk} <= set(recorded)
        for path in on_disk:
            assert sha256_file(path) == recorded[path.stem].output.sha256  # type: ignore[union-attr]
    if point == "mid-state-write":
        # Killed between the temp file's fsync and its rename: the temp file is there for
        # the next apply to clean up, and the record it was replacing is intact.
        assert state_temp_files(manifest), "no half-written state"
    if point == "after-create":
        # The last create reached the service, but its job id never reached the state.
        created = set(paid_creates(data_dir(manifest)))
        known = {r.remote_id for r in state.records.values() if r.status != "submitting"}
        assert created - known


KILL_POINTS = [
    "before-create",
    "before-create:3",
    "after-create",
    "after-create:3",
    "polling:2",
    "mid-download",
    "mid-download:3",
    "after-download",
    "after-download:3",
    "mid-store-put",  # copying a verified download into the local video store
    "mid-store-put:3",
    "mid-state-write",  # the state's meta file, the very first write
    "mid-state-write:2",  # the first "submitting" record, before any create
    "mid-state-write:9",
    "mid-state-write:20",
]


# Every kill point on the GA surface; on the preview surface (server-assigned ids) the
# points where a lost job must be found again by its hash.
SURFACE_KILLS = [(None, k) for k in KILL_POINTS] + [
    ("3.1-preview1", k) for k in ("before-create:2", "after-create:2", "mid-download:2")
]


@pytest.mark.parametrize(("api_version", "kill_at"), SURFACE_KILLS)
def test_kill_at_every_transition_then_apply_finishes_without_paying_twice(
    tmp_path: Path, api_version: str | None, kill_at: str
) -> None:
    manifest = example(tmp_path, api_version)
    run_killed(manifest, kill_at)
    check_killed(manifest, kill_at)

    err = resume(manifest)

    assert_paid_once_and_complete(manifest)
    if kill_at.startswith("after-create"):
        # The job the killed run created but never recorded is adopted, not paid again.
        assert "adopted existing job" in err


@pytest.mark.parametrize(
    "kill_at", ["mid-state-write", "mid-state-write:9", "mid-download:2", "polling:2"]
)
def test_sigterm_leaves_no_temp_file_in_the_state_folder(tmp_path: Path, kill_at: str) -> None:
    """A cancelled CI job sends SIGTERM and then commits what is there: no temp file may
    be left in the committed folder, even when the signal lands mid-write."""
    manifest = example(tmp_path)
    err = run_killed(manifest, kill_at, sigterm=True)
    assert err.splitlines()[-1] == "Terminated." and "Traceback" not in err, err
    assert state_temp_files(manifest) == []
    assert download_temp_files(manifest) == []
    open_course(manifest, "emulator").load_state()  # every record whole

    resume(manifest)
    assert_paid_once_and_complete(manifest)


def test_create_response_lost_is_adopted_not_repeated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, _, err = apply_faulty(tmp_path, monkeypatch, "lose_create=3")
    assert err.count("adopted existing job") == 3
    log = read_request_log(data_dir(manifest))
    assert sum(r.fault == "lose_create" and r.created for r in log) == 3
    assert_paid_once_and_complete(manifest)


@pytest.mark.parametrize("api_version", ["2024-08-01", "3.1-preview1"])
def test_kill_while_recording_a_lost_create_then_adopt_on_the_next_apply(
    tmp_path: Path, api_version: str
) -> None:
    manifest = example(tmp_path, api_version)
    # One job at a time makes the writes countable: 1 meta, 2 "submitting" of the first
    # video, then its create (made, answer lost), its lookup, and 3 the adoption record.
    run_killed(
        manifest,
        "mid-state-write:3",
        "--parallelism",
        "1",
        AVATARFLOW_EMULATOR_FAULTS="lose_create=1",
    )
    log = read_request_log(data_dir(manifest))
    lost = [r for r in log if r.fault == "lose_create"]
    assert len(lost) == 1 and lost[0].created
    state = open_course(manifest, "emulator").load_state()
    assert [r.status for r in state.records.values()] == ["submitting"]

    err = resume(manifest)
    assert "adopted existing job" in err
    assert_paid_once_and_complete(manifest)


def test_a_download_saved_before_the_kill_is_kept_when_its_job_is_gone(tmp_path: Path) -> None:
    manifest = example(tmp_path)
    run_killed(manifest, "after-download")  # the file is in place, "downloaded" is not
    check_killed(manifest, "after-download")
    state = open_course(manifest, "emulator").load_state()
    newest = max(outputs(manifest), key=lambda p: p.stat().st_mtime_ns)
    saved = state.records[newest.stem]
    before = newest.read_bytes()
    assert saved.output is not None and saved.remote_id is not None
    delete_remote_job(manifest, saved.remote_id)  # as its time-to-live would
    downloads_before = requests_by_kind(manifest)["download"]

    resume(manifest)

    assert_paid_once_and_complete(manifest)
    assert newest.read_bytes() == before
    # Five other videos were downloaded (06-outro with its external .vtt); the saved one
    # was not fetched again.
    sidecars = 0 if saved.video_id == "06-outro" else 1
    assert requests_by_kind(manifest)["download"] - downloads_before == len(VIDEOS) - 1 + sidecars

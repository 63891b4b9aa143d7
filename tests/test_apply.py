"""apply end to end: the CLI, the runner and the client against the real emulator."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

from avatarflow.emulator.requestlog import create_counts, read_request_log
from avatarflow.videostore import LocalVideoStore

from .helpers import (
    VIDEOS,
    apply,
    apply_faulty,
    assert_all_rendered,
    data_dir,
    delete_remote_job,
    example,
    open_course,
    requests_by_kind,
    run_cli,
)

pytestmark = pytest.mark.usefixtures("fast_emulator")


@pytest.mark.parametrize("api_version", ["2024-08-01", "3.1-preview1"])
def test_quickstart_renders_everything_once_then_nothing(tmp_path: Path, api_version: str) -> None:
    manifest = example(tmp_path, api_version)
    code, _, err = apply(manifest)
    assert code == 0, err
    assert_all_rendered(manifest)
    counts = create_counts(data_dir(manifest))
    assert len(counts) == 6 and set(counts.values()) == {1}
    before = len(read_request_log(data_dir(manifest)))

    code, out, err = apply(manifest)
    assert code == 0, err
    assert "No changes" in out
    assert len(read_request_log(data_dir(manifest))) == before  # zero HTTP requests


@pytest.mark.parametrize("api_version", ["2024-08-01", "3.1-preview1"])
def test_editing_one_narration_rerenders_exactly_that_video(
    tmp_path: Path, api_version: str
) -> None:
    manifest = example(tmp_path, api_version)
    assert apply(manifest)[0] == 0
    first = requests_by_kind(manifest)["create"]
    script = manifest.parent / "scripts" / "03-branches.txt"
    script.write_text(script.read_text() + "Delete merged branches to keep things tidy.\n")

    plan = run_cli("plan", str(manifest), "--emulator")
    assert "~ 03-branches" in plan.out and "script changed" in plan.out
    assert "Plan: 0 to create, 1 to re-render" in plan.out

    code, _, err = apply(manifest)
    assert code == 0, err
    assert requests_by_kind(manifest)["create"] == first + 1
    assert_all_rendered(manifest)


def test_a_video_added_first_and_others_moved_pay_for_that_video_alone(tmp_path: Path) -> None:
    manifest = example(tmp_path)
    assert apply(manifest)[0] == 0
    first = requests_by_kind(manifest)["create"]
    text = manifest.read_text("utf-8")
    added = "  - id: 00-intro\n    vars: {title: Intro}\n    text: A short intro.\n\n"
    text = text.replace("\nvideos:\n", f"\nvideos:\n{added}", 1)
    # ... and the last two videos swapped: every item has moved.
    body, _, last = text.rpartition("\n  - id: 06-outro")
    before, _, fifth = body.rpartition("\n  - id: 05-recap")
    manifest.write_text(
        f"{before}\n  - id: 06-outro{last.rstrip()}\n\n  - id: 05-recap{fifth.rstrip()}\n"
    )

    plan = run_cli("plan", str(manifest), "--emulator")
    assert "+ 00-intro" in plan.out
    assert "Plan: 1 to create, 0 to re-render" in plan.out, plan.out
    code, _, err = apply(manifest)
    assert code == 0, err
    assert requests_by_kind(manifest)["create"] == first + 1  # the plan's one create
    assert sorted(open_course(manifest, "emulator").load_state().records) == ["00-intro", *VIDEOS]
    assert_all_rendered(manifest, ["00-intro", *VIDEOS])
    assert "No changes" in run_cli("plan", str(manifest), "--emulator").out


def test_deleted_output_is_downloaded_again_without_a_new_render(tmp_path: Path) -> None:
    manifest = example(tmp_path)
    assert apply(manifest)[0] == 0
    creates = requests_by_kind(manifest)["create"]
    output = manifest.parent / "build" / "videos-drafts" / "02-commits.mp4"
    output.unlink()

    plan = run_cli("plan", str(manifest), "--emulator")
    assert "↓ 02-commits" in plan.out and "output file missing" in plan.out
    code, _, err = apply(manifest)
    assert code == 0, err
    assert output.exists()
    assert requests_by_kind(manifest)["create"] == creates
    assert_all_rendered(manifest)


def test_output_lost_after_the_job_expired_comes_back_from_the_video_store(
    tmp_path: Path,
) -> None:
    manifest = example(tmp_path)
    assert apply(manifest, "--only", "01-*")[0] == 0
    job_id = open_course(manifest).request("01-welcome").synthesis_id
    delete_remote_job(manifest, job_id)
    video = manifest.parent / "build" / "videos-drafts" / "01-welcome.mp4"
    before = video.read_bytes()
    video.unlink()

    code, out, err = apply(manifest, "--only", "01-*")
    assert code == 0, err
    assert "↓ 01-welcome" in out and "from the local store" in out
    assert video.read_bytes() == before
    assert create_counts(data_dir(manifest)) == {job_id: 1}


def test_output_lost_after_the_job_expired_is_rerendered_with_that_reason(tmp_path: Path) -> None:
    manifest = example(tmp_path)
    code, _, err = apply(manifest, "--only", "01-*")
    assert code == 0, err
    job_id = open_course(manifest).request("01-welcome").synthesis_id
    delete_remote_job(manifest, job_id)
    (manifest.parent / "build" / "videos-drafts" / "01-welcome.mp4").unlink()
    shutil.rmtree(LocalVideoStore().root)  # no store keeps it either

    code, out, err = apply(manifest, "--only", "01-*", "--refresh")
    assert code == 0, err
    assert "~ 01-welcome" in out
    assert "output file missing, in no video store, and its job" in out
    # The same request again needs a new job id: the old one may linger until its TTL.
    assert create_counts(data_dir(manifest)) == {job_id: 1, f"{job_id}-r1": 1}
    assert_all_rendered(manifest, ["01-welcome"])


def test_second_apply_is_refused_with_the_lock_holder(tmp_path: Path) -> None:
    manifest = example(tmp_path)
    project = open_course(manifest, "emulator")
    with project.local_store().lock("avatarflow apply (test)") as lock:
        result = run_cli("apply", str(manifest), "--emulator", "--yes")
    assert result.code == 1
    assert lock.info is not None
    assert f"pid {os.getpid()}" in result.err
    assert socket.gethostname() in result.err
    assert lock.info.created in result.err
    assert not data_dir(manifest).exists()  # nothing was sent


def test_only_and_exclude_select_videos_and_reject_unknown_ids(tmp_path: Path) -> None:
    manifest = example(tmp_path)
    code, _, err = apply(manifest, "--only", "0[12]-*", "--exclude", "02-*")
    assert code == 0, err
    assert sorted(open_course(manifest, "emulator").load_state().records) == ["01-welcome"]
    result = run_cli("apply", str(manifest), "--emulator", "--yes", "--only", "99-nope")
    assert result.code == 1 and "no video matches '99-nope'" in result.err


def test_apply_without_a_terminal_and_without_yes_is_an_error(tmp_path: Path) -> None:
    manifest = example(tmp_path)
    result = run_cli("apply", str(manifest), "--emulator")
    assert result.code == 1
    assert "--yes" in result.err
    assert not data_dir(manifest).exists()


def test_failed_job_is_recorded_and_others_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, _, _ = apply_faulty(tmp_path, monkeypatch, "fail=*04-merging*:InvalidSsml", expect=3)
    state = open_course(manifest, "emulator").load_state()
    failed = state.records["04-merging"]
    assert failed.status == "failed" and failed.error is not None
    assert failed.error.code == "InvalidSsml"
    assert all(r.status == "downloaded" for k, r in state.records.items() if k != "04-merging")

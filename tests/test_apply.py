"""apply end to end: the CLI, the runner and the client against the real emulator."""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections import Counter
from pathlib import Path

import httpx
import pytest

from avatarflow.emulator import Emulator, EmulatorConfig
from avatarflow.emulator.requestlog import create_counts, read_request_log
from avatarflow.lock import StateLock
from avatarflow.statcache import sha256_file

from .helpers import open_course, run_cli

REPO = Path(__file__).resolve().parent.parent
VIDEOS = ["01-welcome", "02-commits", "03-branches", "04-merging", "05-recap", "06-outro"]


@pytest.fixture(autouse=True)
def fast_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AVATARFLOW_EMULATOR_CONFIG", json.dumps({"width": 160, "height": 90}))
    monkeypatch.delenv("AVATARFLOW_EMULATOR_FAULTS", raising=False)


def example(tmp_path: Path, api_version: str | None = None) -> Path:
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    manifest = tmp_path / "manifests" / "git-course.yaml"
    if api_version:
        text = manifest.read_text().replace(
            "templates_dir: ../templates",
            f"templates_dir: ../templates\nservice: {{api_version: {api_version}}}",
        )
        manifest.write_text(text)
    return manifest


def data_dir(manifest: Path) -> Path:
    return manifest.parent / ".avatarflow" / "git-course" / "emulator" / "service"


def requests_by_kind(manifest: Path) -> Counter[str]:
    return Counter(r.kind for r in read_request_log(data_dir(manifest)))


def apply(manifest: Path, *args: str) -> tuple[int, str, str]:
    result = run_cli("apply", str(manifest), "--emulator", "--yes", *args)
    return result.code, result.out, result.err


def assert_all_rendered(manifest: Path) -> None:
    project = open_course(manifest, "emulator")
    state = project.load_state()
    assert sorted(state.records) == VIDEOS
    for record in state.records.values():
        assert record.status == "downloaded", record
        assert record.output is not None
        path = manifest.parent / record.output.path
        assert path.parent.name == "videos-drafts"
        assert sha256_file(path) == record.output.sha256
        assert path.stat().st_size == record.output.size > 1000
    leftovers = [p for p in (manifest.parent / "build").rglob("*") if p.name.endswith(".part")]
    assert leftovers == []


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


def delete_remote_job(manifest: Path, job_id: str) -> None:
    """What the service does when a job's time-to-live runs out."""
    with Emulator(data_dir(manifest), EmulatorConfig()) as emulator:
        url = f"{emulator.url}/avatar/batchsyntheses/{job_id}?api-version=2024-08-01"
        response = httpx.delete(url, headers={"Ocp-Apim-Subscription-Key": "k"})
        assert response.status_code == 204


def test_output_lost_after_the_job_expired_is_rerendered_with_that_reason(tmp_path: Path) -> None:
    manifest = example(tmp_path)
    code, _, err = apply(manifest, "--only", "01-*")
    assert code == 0, err
    job_id = open_course(manifest).request("01-welcome").synthesis_id
    delete_remote_job(manifest, job_id)
    (manifest.parent / "build" / "videos-drafts" / "01-welcome.mp4").unlink()

    code, out, err = apply(manifest, "--only", "01-*")
    assert code == 0, err
    assert "~ 01-welcome" in out
    assert "output file missing and the remote job has expired" in out
    # The same request again needs a new job id: the old one may linger until its TTL.
    assert create_counts(data_dir(manifest)) == {job_id: 1, f"{job_id}-r1": 1}
    assert_all_rendered_subset(manifest, ["01-welcome"])


def assert_all_rendered_subset(manifest: Path, videos: list[str]) -> None:
    state = open_course(manifest, "emulator").load_state()
    for video in videos:
        record = state.records[video]
        assert record.status == "downloaded" and record.output is not None
        assert sha256_file(manifest.parent / record.output.path) == record.output.sha256


def test_second_apply_is_refused_with_the_lock_holder(tmp_path: Path) -> None:
    manifest = example(tmp_path)
    project = open_course(manifest, "emulator")
    with StateLock(project.workspace.state_dir, "avatarflow apply (test)") as lock:
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
    manifest = example(tmp_path)
    monkeypatch.setenv("AVATARFLOW_EMULATOR_FAULTS", "fail=*04-merging*:InvalidSsml")
    code, _, err = apply(manifest)
    assert code == 3, err
    state = open_course(manifest, "emulator").load_state()
    failed = state.records["04-merging"]
    assert failed.status == "failed" and failed.error is not None
    assert failed.error.code == "InvalidSsml"
    assert all(r.status == "downloaded" for k, r in state.records.items() if k != "04-merging")

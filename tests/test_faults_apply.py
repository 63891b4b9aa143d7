"""Fault suite: every fault the emulator can inject, driven through a real ``apply``.

Each case runs the CLI in-process against the embedded emulator with a fault plan
(``AVATARFLOW_EMULATOR_FAULTS``) and proves, from the emulator's own request log, what
the user paid for: exactly one create per video, and every video on disk with the
sha256 that state vouches for. The faults come back only in the request log and the
exit code; never as a second render.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from avatarflow.emulator.requestlog import create_counts
from avatarflow.retry import RetryPolicy

from .helpers import (
    VIDEOS,
    apply,
    apply_faulty,
    assert_all_rendered,
    assert_paid_once_and_complete,
    data_dir,
    delete_remote_job,
    download_temp_files,
    emulate,
    faults_by_kind,
    log_of,
    open_course,
    run_cli,
    state_temp_files,
    synthesis_id,
)

pytestmark = pytest.mark.usefixtures("fast_emulator")


def assert_settled(manifest: Path) -> None:
    """Nothing left to do: the plan has no changes and asks nothing of the service."""
    before = len(log_of(manifest))
    result = run_cli("plan", str(manifest), "--emulator")
    assert result.code == 0, result.err
    assert "No changes" in result.out, result.out
    assert len(log_of(manifest)) == before


# -- request faults: retried, never paid twice ---------------------------------------------


@pytest.mark.parametrize("api_version", ["2024-08-01", "3.1-preview1"])
def test_429_bursts_with_retry_after_are_waited_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, api_version: str
) -> None:
    manifest, _, _ = apply_faulty(
        tmp_path, monkeypatch, "throttle=8@create/get/list,retry_after=0", api_version=api_version
    )
    assert sum(faults_by_kind(manifest).values()) == 8
    assert faults_by_kind(manifest)[("create", "throttle")] >= 1
    assert_paid_once_and_complete(manifest)
    assert_settled(manifest)


def test_retry_after_is_waited_out_before_a_create_is_sent_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, _, _ = apply_faulty(
        tmp_path, monkeypatch, "throttle=2@create,retry_after=1", "--only", "01-*"
    )
    creates = [r for r in log_of(manifest) if r.kind == "create"]
    assert [(r.status, r.fault) for r in creates] == [(429, "throttle")] * 2 + [(201, None)]
    # The service's own clock: each attempt came no sooner than the Retry-After it was given.
    gaps = [later.time - earlier.time for earlier, later in itertools.pairwise(creates)]
    assert all(gap >= 0.95 for gap in gaps), gaps
    assert create_counts(data_dir(manifest)) == {synthesis_id(manifest, "01-welcome"): 1}


def test_the_documented_create_throttle_is_honoured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two creates per half second: six videos meet the throttle (apply then paces the rest).
    manifest, _, _ = apply_faulty(tmp_path, monkeypatch, "", creates_per_minute=2, time_scale=120.0)
    assert faults_by_kind(manifest)[("create", "create_throttle")] >= 1
    assert_paid_once_and_complete(manifest)


@pytest.mark.parametrize(
    ("faults", "refused", "attempts"),
    [
        ("throttle=1000@create,retry_after=0", 429, RetryPolicy().max_throttled_attempts),
        ("error=1000@create", 500, RetryPolicy().max_attempts),
    ],
)
def test_a_create_refused_every_time_is_given_up_on_without_paying(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, faults: str, refused: int, attempts: int
) -> None:
    # Every create is throttled, or answered 500 and not found by the lookup: each layer
    # of retries is bounded, the video is reported, and the next apply submits it.
    manifest, _, err = apply_faulty(tmp_path, monkeypatch, faults, "--only", "01-*", expect=3)
    creates = [r for r in log_of(manifest) if r.kind == "create"]
    assert [r.status for r in creates] == [refused] * attempts
    assert not any(r.created for r in creates)
    assert "01-welcome: not submitted: " in err and "nothing paid" in err
    record = open_course(manifest, "emulator").load_state().records["01-welcome"]
    assert record.status == "submitting"

    emulate(monkeypatch, "")
    code, _, err = apply(manifest, "--only", "01-*")
    assert code == 0, err
    assert create_counts(data_dir(manifest)) == {synthesis_id(manifest, "01-welcome"): 1}
    assert_all_rendered(manifest, ["01-welcome"])


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_on_every_kind_of_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, status: int
) -> None:
    # The first answers are 5xx: creates among them have an unknown outcome, are looked
    # up and only then sent again.
    manifest, _, _ = apply_faulty(tmp_path, monkeypatch, f"error=4,error_status={status}")
    assert faults_by_kind(manifest)[("create", "error")] >= 1
    assert_paid_once_and_complete(manifest)


@pytest.mark.parametrize(
    ("api_version", "faults", "kinds"),
    [
        ("2024-08-01", "drop=3@create", {"create"}),
        ("3.1-preview1", "drop=3@create", {"create"}),
        ("2024-08-01", "drop=3@get/list", {"get", "list"}),
        ("2024-08-01", "drop=3@download", {"download"}),
    ],
)
def test_dropped_connections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, api_version: str, faults: str, kinds: set[str]
) -> None:
    manifest, _, _ = apply_faulty(tmp_path, monkeypatch, faults, api_version=api_version)
    dropped = [r for r in log_of(manifest) if r.fault == "drop"]
    assert len(dropped) == 3 and {r.kind for r in dropped} <= kinds
    assert all(r.status == 0 and not r.created for r in dropped)
    assert_paid_once_and_complete(manifest)


@pytest.mark.parametrize("api_version", ["2024-08-01", "3.1-preview1"])
def test_lost_create_responses_are_adopted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, api_version: str
) -> None:
    manifest, _, err = apply_faulty(
        tmp_path, monkeypatch, "lose_create=*0[246]-*", api_version=api_version
    )
    lost = [r for r in log_of(manifest) if r.fault == "lose_create"]
    assert len(lost) == 3 and all(r.created for r in lost)
    assert err.count("adopted existing job") == 3
    assert_paid_once_and_complete(manifest)


# -- job faults -------------------------------------------------------------------------


def test_stuck_job_times_out_clearly_and_a_later_apply_finishes_it_without_paying(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, _, err = apply_faulty(
        tmp_path,
        monkeypatch,
        "stuck=*02-commits*,stuck=*05-recap*",
        "--only",
        "0[25]-*",
        "--timeout",
        "1",
        expect=3,
    )
    timeouts = sorted(line for line in err.splitlines() if "after 1 s" in line)
    assert [line.split(":")[0] for line in timeouts] == ["02-commits", "05-recap"], err
    assert all("still NotStarted" in line and "next apply resumes" in line for line in timeouts)
    state = open_course(manifest, "emulator").load_state()
    assert {k: r.status for k, r in state.records.items()} == {
        "02-commits": "submitted",
        "05-recap": "submitted",
    }

    emulate(monkeypatch, "")  # the service unsticks
    plan = run_cli("plan", str(manifest), "--emulator")
    assert "> 02-commits" in plan.out and "> 05-recap" in plan.out, plan.out
    code, _, err = apply(manifest)
    assert code == 0, err
    assert_paid_once_and_complete(manifest)  # the two stuck jobs were not created again


def test_failed_job_records_the_service_error_and_the_others_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, out, _ = apply_faulty(
        tmp_path,
        monkeypatch,
        "fail=*04-merging*:InvalidSsml:The SSML is not valid here.",
        "--json",
        expect=3,
    )
    events = [json.loads(line) for line in out.splitlines()]
    failed = [e for e in events if e["event"] == "failed"]
    assert [(e["video"], e["code"]) for e in failed] == [("04-merging", "InvalidSsml")]
    state = open_course(manifest, "emulator").load_state()
    record = state.records["04-merging"]
    assert record.status == "failed" and record.error is not None
    assert (record.error.code, record.error.message) == (
        "InvalidSsml",
        "The SSML is not valid here.",
    )
    assert [k for k, r in state.records.items() if r.status == "downloaded"] == [
        v for v in VIDEOS if v != "04-merging"
    ]
    assert create_counts(data_dir(manifest)) == {synthesis_id(manifest, v): 1 for v in VIDEOS}
    assert state_temp_files(manifest) + download_temp_files(manifest) == []


# -- download faults ----------------------------------------------------------------------


def test_truncated_downloads_are_detected_and_fetched_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, _, _ = apply_faulty(tmp_path, monkeypatch, "truncate=3")
    downloads = [r for r in log_of(manifest) if r.kind == "download"]
    assert sum(r.fault == "truncate" for r in downloads) == 3
    assert len(downloads) == 6 + 1 + 3  # six videos, 06-outro's external .vtt, three again
    assert_paid_once_and_complete(manifest)


def test_expired_result_urls_are_fetched_fresh_without_a_new_render(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, _, err = apply_faulty(tmp_path, monkeypatch, "expire_urls=4")
    refused = [r for r in log_of(manifest) if r.kind == "download" and r.status == 403]
    assert len(refused) >= 1
    assert "result URL has expired" in err
    assert_paid_once_and_complete(manifest)


def test_an_expired_subtitle_url_is_fetched_fresh_like_its_video(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 06-outro keeps external subtitles: its .vtt is fetched first, under the signature
    # of the job view that reported it done, which here has expired.
    manifest, _, err = apply_faulty(tmp_path, monkeypatch, "expire_urls=1", "--only", "06-*")
    downloads = [r for r in log_of(manifest) if r.kind == "download"]
    assert [(Path(r.path).suffix, r.status) for r in downloads] == [
        (".vtt", 403),
        (".vtt", 200),
        (".mp4", 200),
    ]
    assert "result URL has expired" in err
    assert create_counts(data_dir(manifest)) == {synthesis_id(manifest, "06-outro"): 1}
    record = open_course(manifest, "emulator").load_state().records["06-outro"]
    assert record.status == "downloaded" and record.subtitles is not None
    assert (manifest.parent / record.subtitles.path).read_text().startswith("WEBVTT")


def test_a_result_that_never_downloads_stays_paid_for_and_is_fetched_next_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every URL the service hands out is stale.
    manifest, _, err = apply_faulty(
        tmp_path, monkeypatch, "expire_urls=1000", "--only", "01-*", expect=3
    )
    assert "01-welcome" in err and "downloads it again" in err
    # One retry layer: each attempt asked for a fresh URL, and there were no more of them
    # than the retry policy allows.
    downloads = [r for r in log_of(manifest) if r.kind == "download"]
    assert [r.status for r in downloads] == [403] * RetryPolicy().max_attempts
    record = open_course(manifest, "emulator").load_state().records["01-welcome"]
    assert record.status == "succeeded" and record.output is None
    assert record.error is None  # a download that failed here is no fact of the render

    emulate(monkeypatch, "")
    plan = run_cli("plan", str(manifest), "--emulator")
    assert "> 01-welcome" in plan.out, plan.out
    code, _, err = apply(manifest, "--only", "01-*")
    assert code == 0, err
    assert create_counts(data_dir(manifest)) == {synthesis_id(manifest, "01-welcome"): 1}
    record = open_course(manifest, "emulator").load_state().records["01-welcome"]
    assert record.status == "downloaded" and record.error is None


def test_a_job_gone_before_its_download_is_rerendered_and_the_plan_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, _, _ = apply_faulty(
        tmp_path, monkeypatch, "expire_urls=1000", "--only", "01-*", expect=3
    )
    job_id = synthesis_id(manifest, "01-welcome")
    delete_remote_job(manifest, job_id)  # its time-to-live ran out

    emulate(monkeypatch, "")
    code, out, err = apply(manifest, "--only", "01-*", "--refresh")  # asks the service
    assert code == 0, err
    assert "~ 01-welcome" in out, out
    assert "remote job expired or was deleted before download" in out
    # Paid twice only because the first render is truly gone, under a new job id.
    assert create_counts(data_dir(manifest)) == {job_id: 1, f"{job_id}-r1": 1}


def test_all_faults_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest, _, _ = apply_faulty(
        tmp_path,
        monkeypatch,
        "throttle=5%,retry_after=0,error=5%,drop=5%@create/get/list/download,"
        "lose_create=2,truncate=2,expire_urls=2,seed=11",
    )
    assert_paid_once_and_complete(manifest)
    assert_all_rendered(manifest)
    assert_settled(manifest)

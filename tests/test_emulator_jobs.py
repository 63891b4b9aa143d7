"""The job state machine, TTL expiry, persistence across emulator instances and processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from avatarflow.emulator import DataDirBusyError, Emulator, EmulatorConfig, Faults, probe
from avatarflow.emulator.destinations import DestinationSecrets
from avatarflow.emulator.jobs import JobRecord, JobStore, RenderOutcome
from avatarflow.emulator.validation import validate
from avatarflow.emulator.worker import Worker

from .emulator_fixtures import Api, EmulatorFactory, ga_body, preview_body
from .helpers import temp_files

pytest_plugins = ["tests.emulator_fixtures"]

LONG_TEXT = " ".join(["This sentence keeps the renderer busy for a while."] * 12)  # 108 words


def _observed_statuses(api: Api, job_id: str) -> list[str]:
    seen: list[str] = []
    while not seen or seen[-1] not in ("Succeeded", "Failed"):
        status = api.get(job_id).json()["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        time.sleep(0.02)
    return seen


def test_status_moves_not_started_running_succeeded(make_emulator: EmulatorFactory):
    api = Api(make_emulator(queue_seconds=0.3, min_run_seconds=0.4))
    created = api.put("walk-01", ga_body()).json()
    assert _observed_statuses(api, "walk-01") == ["NotStarted", "Running", "Succeeded"]
    done = api.get("walk-01").json()
    assert done["lastActionDateTime"] > created["lastActionDateTime"][:-1]
    api.close()


def test_preview_job_walks_the_same_states(make_emulator: EmulatorFactory):
    api = Api(make_emulator(queue_seconds=0.2, min_run_seconds=0.3))
    job_id = api.post(preview_body()).json()["id"]
    seen: list[str] = []
    while not seen or seen[-1] != "Succeeded":
        status = api.pget(job_id).json()["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        time.sleep(0.02)
    assert seen == ["NotStarted", "Running", "Succeeded"]
    api.close()


def test_ttl_expiry_deletes_the_job_and_its_files(make_emulator: EmulatorFactory):
    emulator = make_emulator(ttl_seconds_per_hour=0.3)
    api = Api(emulator)
    api.put("short-lived", ga_body(properties={"timeToLiveInHours": 1}))
    job = api.wait("short-lived")
    assert job["status"] == "Succeeded"
    api.wait_gone("short-lived")
    assert httpx.get(job["outputs"]["result"]).status_code == 404
    assert not list((emulator.data_dir / "blobs").rglob("short-lived"))
    assert not list((emulator.data_dir / "jobs").rglob("short-lived.json"))
    api.close()


def test_active_jobs_do_not_expire(make_emulator: EmulatorFactory):
    api = Api(make_emulator(ttl_seconds_per_hour=0.01, queue_seconds=3600))
    api.put("waiting", ga_body(properties={"timeToLiveInHours": 1}))
    time.sleep(0.2)
    assert api.get("waiting").json()["status"] == "NotStarted"
    api.close()


def test_jobs_are_one_json_file_each(make_emulator: EmulatorFactory):
    emulator = make_emulator(queue_seconds=3600)
    api = Api(emulator)
    api.put("on-disk", ga_body())
    record = json.loads((emulator.data_dir / "jobs" / "ga" / "on-disk.json").read_text())
    assert record["id"] == "on-disk" and record["status"] == "NotStarted"
    assert temp_files(emulator.data_dir / "jobs") == []
    api.close()


def test_a_new_emulator_continues_a_queued_job(tmp_path: Path):
    with Emulator(tmp_path, EmulatorConfig(queue_seconds=3600)) as first:
        api = Api(first)
        api.put("carried-on", ga_body())
        api.close()
    with Emulator(tmp_path, EmulatorConfig()) as second:
        api = Api(second)
        job = api.wait("carried-on")
        assert job["status"] == "Succeeded"
        assert second.create_counts() == {"carried-on": 1}
        api.close()


def test_a_render_cut_short_by_stop_is_rendered_again(tmp_path: Path):
    with Emulator(tmp_path, EmulatorConfig()) as first:
        api = Api(first)
        api.put("cut-short", ga_body(inputs=[{"content": LONG_TEXT}]))
        api.wait("cut-short", ("Running",))
        api.close()
    record = json.loads((tmp_path / "jobs" / "ga" / "cut-short.json").read_text())
    assert record["status"] == "Running" and record["outcome"] is None
    with Emulator(tmp_path, EmulatorConfig()) as second:
        api = Api(second)
        job = api.wait("cut-short")
        assert job["status"] == "Succeeded"
        video = api.http.get(job["outputs"]["result"])
        (tmp_path / "out.mp4").write_bytes(video.content)
        api.close()
    assert probe(tmp_path / "out.mp4").duration == pytest.approx(108 * 0.4, rel=0.1)


CHILD = """
import sys, time
from avatarflow.emulator import Emulator, EmulatorConfig
emulator = Emulator(sys.argv[1], EmulatorConfig()).start()
print(emulator.url, flush=True)
time.sleep(600)
"""


def test_a_killed_process_leaves_jobs_that_a_new_process_finishes(tmp_path: Path):
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        url = child.stdout.readline().strip()
        with httpx.Client(base_url=url, headers={"Ocp-Apim-Subscription-Key": "k"}) as http:
            response = http.put(
                "/avatar/batchsyntheses/killed-01",
                params={"api-version": "2024-08-01"},
                json=ga_body(inputs=[{"content": LONG_TEXT}]),
            )
            assert response.status_code == 201
            while (
                http.get(
                    "/avatar/batchsyntheses/killed-01", params={"api-version": "2024-08-01"}
                ).json()["status"]
                != "Running"
            ):
                time.sleep(0.02)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    with Emulator(tmp_path, EmulatorConfig()) as emulator:  # the folder lock died with it
        api = Api(emulator)
        assert api.wait("killed-01")["status"] == "Succeeded"
        assert emulator.create_counts() == {"killed-01": 1}
        api.close()


def test_one_data_dir_serves_one_emulator_at_a_time(make_emulator: EmulatorFactory, tmp_path: Path):
    make_emulator()
    with pytest.raises(DataDirBusyError):
        Emulator(tmp_path / "emu", EmulatorConfig()).start()


def test_stop_leaves_no_threads_behind(tmp_path: Path):
    before = set(threading.enumerate())
    with Emulator(tmp_path, EmulatorConfig()) as emulator:
        api = Api(emulator)
        api.put("threads-01", ga_body())
        api.wait("threads-01")
        api.get("threads-01")  # leave a keep-alive connection open
        assert emulator.running
    assert not emulator.running
    assert set(threading.enumerate()) - before == set()
    api.close()


def test_stop_during_a_render_does_not_hang(tmp_path: Path):
    emulator = Emulator(tmp_path, EmulatorConfig()).start()
    api = Api(emulator)
    api.put("busy-stop", ga_body(inputs=[{"content": LONG_TEXT}]))
    api.wait("busy-stop", ("Running",))
    emulator.stop()
    api.close()
    assert emulator.idle()


class _TickOnRelease:
    """The job store's lock, with one hook: once ``armed``, the next time a render thread
    lets go of it, the clock ticks right there, as the clock thread may at that moment."""

    def __init__(self, worker: Worker) -> None:
        self.inner = threading.RLock()
        self.worker = worker
        self.armed = False

    def __enter__(self) -> _TickOnRelease:
        self.inner.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.inner.release()
        if self.armed and threading.current_thread().name.startswith("emulator-render"):
            self.armed = False
            self.worker._tick()


class _CountingWorker(Worker):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.renders = 0

    def _produce(self, record: JobRecord) -> RenderOutcome:
        self.renders += 1
        outcome = super()._produce(record)
        lock = self.store.lock
        assert isinstance(lock, _TickOnRelease)
        lock.armed = True  # from here until the outcome is recorded, a tick must not re-render
        return outcome


def test_a_finished_render_is_never_started_again(tmp_path: Path) -> None:
    """The clock must not see a job between "render done" and "outcome recorded": it would
    render it again, wiping the files of a job that clients already see Succeeded."""
    config = EmulatorConfig(width=16, height=16, speech=False)
    store = JobStore(tmp_path / "jobs")
    worker = _CountingWorker(
        store,
        tmp_path / "blobs",
        tmp_path / "work",
        "acct",
        lambda: config,
        Faults,
        DestinationSecrets(tmp_path / "destinations"),
    )
    store.lock = _TickOnRelease(worker)  # type: ignore[assignment]
    record = JobRecord(
        surface="ga",
        id="race-01",
        name="race-01",
        internal_id="0",
        created_at=time.time(),
        request=validate("ga", ga_body()),
        body_sha256="0",
    )
    store.add(record)

    worker._tick()  # NotStarted → Running, render queued (the clock thread is not started)
    deadline = time.monotonic() + 60
    while worker.busy() or record.outcome is None:  # also any render the hook's tick queued
        assert time.monotonic() < deadline, "the render did not finish"
        time.sleep(0.01)
    worker._pool.shutdown(wait=True)

    assert worker.renders == 1
    assert worker.refresh(record) is record and record.status == "Succeeded"
    assert (
        tmp_path / "blobs" / "batchsynthesis-output" / "acct" / "race-01" / "0001.mp4"
    ).is_file()

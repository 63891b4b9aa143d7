"""Benchmark of polling (not a test): requests per poll cycle for K jobs in flight.

Creates K jobs that stay ``NotStarted`` on an in-process emulator, then lets the
runner's poller (``Runner.poll_jobs``) look at all of them ``--cycles`` times and counts
the requests in the emulator's own request log. Microsoft's official sample polls each
job with its own GET every 5 s: K requests per cycle. avatarflow also stretches its
cycle from 5 s up to 30 s while nothing changes; both cadences are shown per hour.

    python benchmarks/bench_poll.py --jobs 1,10,100,200,1000
"""

from __future__ import annotations

import argparse
import asyncio
import math
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import synth
from emulator_load import body
from measure import machine, table

from avatarflow.client import ServiceConfig, SpeechClient
from avatarflow.credentials import KeyCredential
from avatarflow.emulator import Emulator, EmulatorConfig
from avatarflow.emulator.requestlog import read_request_log
from avatarflow.manifest import LoadedManifest
from avatarflow.runner import JobSettings, Runner, RunOptions
from avatarflow.service import Service
from avatarflow.stores import load_state, open_store
from avatarflow.workflow import open_manifest
from avatarflow.workspace import Workspace

PARAMS = {"api-version": "2024-08-01"}
SAMPLE_INTERVAL = 5.0  # the official sample's time.sleep(5) between GETs of one job


async def measure(
    k: int, older: int, cycles: int, course: tuple[LoadedManifest, Workspace], root: Path
) -> list[Any]:
    loaded, workspace = course
    jobs = JobSettings.of(loaded.model, Service(loaded.model.service, workspace).destination)
    config = EmulatorConfig(queue_seconds=86_400.0, max_active_jobs=k + older + 1)
    with Emulator(root / f"emu{k}", config) as emulator:
        async with httpx.AsyncClient(
            base_url=emulator.url, headers={"Ocp-Apim-Subscription-Key": "bench"}
        ) as http:
            names = [f"old-{i:05d}" for i in range(older)] + [f"job-{i:05d}" for i in range(k)]
            for name in names:  # one by one: creation order decides list order
                url = f"/avatar/batchsyntheses/{name}"
                assert (await http.put(url, params=PARAMS, json=body(name))).status_code == 201
        service = ServiceConfig(endpoint=emulator.url, credential=KeyCredential("bench"))
        started = time.perf_counter()
        async with SpeechClient(service) as client:
            state, _ = load_state(open_store(loaded, workspace), workspace)
            runner = Runner(workspace, jobs, state, client, RunOptions())
            for _ in range(cycles):
                seen = await runner.poll_jobs(set(names[older:]))
                assert len(seen) == k
        seconds = (time.perf_counter() - started) / cycles
    # Counted once the emulator has stopped: a request is logged after its answer.
    kinds = Counter(r.kind for r in read_request_log(root / f"emu{k}") if r.kind != "create")
    per_cycle = sum(kinds.values()) / cycles
    return [
        k,
        older,
        kinds["list"] / cycles,
        kinds["get"] / cycles,
        math.ceil(k / 100),
        k,
        round(k / per_cycle, 1),
        round(seconds * 1000, 1),
        round(per_cycle * 3600 / 30),
        round(k * 3600 / SAMPLE_INTERVAL),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", default="1,2,10,100,200,1000", help="K values, comma-separated")
    parser.add_argument("--older", type=int, default=0, help="older jobs listed after ours")
    parser.add_argument("--cycles", type=int, default=5, help="poll cycles per K")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        course = open_manifest(synth.generate(root / "course", 1))
        rows = [
            asyncio.run(measure(int(k), args.older, args.cycles, course, root))
            for k in args.jobs.split(",")
        ]
    print(f"polling ({machine()})")
    headers = [
        "K in flight",
        "older jobs",
        "list/cycle",
        "get/cycle",
        "ceil(K/100)",
        "sample GET/cycle",
        "x fewer",
        "ms/cycle",
        "requests/h at 30 s",
        "sample requests/h",
    ]
    print(table(headers, rows))


if __name__ == "__main__":
    main()

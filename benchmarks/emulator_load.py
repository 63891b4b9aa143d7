"""Load benchmark of the emulator (not a test): many jobs, many concurrent pollers.

Starts an emulator in a child process, creates ``--jobs`` jobs (``--rendered`` of them are
really rendered, the others stay queued so the run measures the API, not ffmpeg), then
runs ``--pollers`` concurrent pollers for ``--seconds``: each polls random jobs and now
and then a list page, like many ``apply`` runs watching their jobs. Prints requests per
second, errors, latency percentiles and the emulator's peak memory (getrusage).

    python benchmarks/emulator_load.py --jobs 1000 --pollers 200 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

CHILD = """
import json, resource, sys
from avatarflow.emulator import Emulator, EmulatorConfig, Faults
config = EmulatorConfig(max_active_jobs=1_000_000, faults=Faults.parse("stuck=queued-*"))
emulator = Emulator(sys.argv[1], config).start()
print(emulator.url, flush=True)
sys.stdin.read()  # run until the parent closes our stdin
emulator.stop()
print(json.dumps({"peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""
PARAMS = {"api-version": "2024-08-01"}
HEADERS = {"Ocp-Apim-Subscription-Key": "benchmark"}


def body(text: str) -> dict[str, Any]:
    return {
        "inputKind": "PlainText",
        "synthesisConfig": {"voice": "en-US-AvaMultilingualNeural"},
        "inputs": [{"content": text}],
        "avatarConfig": {
            "talkingAvatarCharacter": "lisa",
            "talkingAvatarStyle": "graceful-sitting",
            "videoCodec": "h264",
        },
    }


async def create_jobs(client: httpx.AsyncClient, ids: list[str], concurrency: int) -> int:
    errors = 0
    queue: asyncio.Queue[str] = asyncio.Queue()
    for job_id in ids:
        queue.put_nowait(job_id)

    async def creator() -> None:
        nonlocal errors
        while not queue.empty():
            job_id = queue.get_nowait()
            response = await client.put(
                f"/avatar/batchsyntheses/{job_id}", params=PARAMS, json=body(f"Job {job_id}.")
            )
            errors += response.status_code != 201

    await asyncio.gather(*(creator() for _ in range(concurrency)))
    return errors


async def poll(
    client: httpx.AsyncClient, ids: list[str], until: float, latencies: list[float]
) -> tuple[int, int]:
    requests = errors = 0
    rng = random.Random()
    while time.monotonic() < until:
        started = time.monotonic()
        try:
            if rng.random() < 0.05:
                response = await client.get(
                    "/avatar/batchsyntheses",
                    params={**PARAMS, "skip": rng.randrange(0, len(ids)), "maxpagesize": 100},
                )
            else:
                response = await client.get(
                    f"/avatar/batchsyntheses/{rng.choice(ids)}", params=PARAMS
                )
            errors += response.status_code != 200
        except httpx.HTTPError:
            errors += 1
        latencies.append(time.monotonic() - started)
        requests += 1
    return requests, errors


async def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=args.pollers, max_keepalive_connections=args.pollers)
    async with httpx.AsyncClient(
        base_url=url, headers=HEADERS, limits=limits, timeout=60
    ) as client:
        rendered = [f"render-{n:04d}" for n in range(args.rendered)]
        queued = [f"queued-{n:04d}" for n in range(args.jobs - args.rendered)]
        started = time.monotonic()
        create_errors = await create_jobs(client, rendered + queued, 20)
        create_seconds = time.monotonic() - started
        latencies: list[float] = []
        until = time.monotonic() + args.seconds
        started = time.monotonic()
        results = await asyncio.gather(
            *(poll(client, rendered + queued, until, latencies) for _ in range(args.pollers))
        )
        elapsed = time.monotonic() - started
        listed = await client.get("/avatar/batchsyntheses", params=PARAMS)
        succeeded = 0
        for job_id in rendered:
            job = await client.get(f"/avatar/batchsyntheses/{job_id}", params=PARAMS)
            succeeded += job.json()["status"] == "Succeeded"
    latencies.sort()
    requests = sum(r for r, _ in results)
    return {
        "jobs": args.jobs,
        "create_errors": create_errors,
        "creates_per_second": round(args.jobs / create_seconds, 1),
        "pollers": args.pollers,
        "poll_requests": requests,
        "poll_errors": sum(e for _, e in results),
        "requests_per_second": round(requests / elapsed, 1),
        "latency_p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "latency_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 1),
        "first_page_size": len(listed.json()["value"]),
        "rendered_succeeded": f"{succeeded}/{len(rendered)}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rendered", type=int, default=20)
    parser.add_argument("--pollers", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, data_dir],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdin is not None and child.stdout is not None
        url = child.stdout.readline().strip()
        try:
            report = asyncio.run(run(url, args))
        finally:
            child.stdin.close()
            tail = child.stdout.read()
            child.wait()
        report.update(json.loads(tail.strip().splitlines()[-1]))
        with Path(data_dir, "requests.jsonl").open() as log:
            report["request_log_lines"] = sum(1 for _ in log)
    for key, value in report.items():
        print(f"{key:>22}: {value}")


if __name__ == "__main__":
    main()

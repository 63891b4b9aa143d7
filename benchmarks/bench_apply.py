"""Benchmark of ``avatarflow apply`` on the emulator (not a test).

* ``noop``: apply of an up-to-date catalogue of N videos: wall time and HTTP requests
  (read from the emulator's own request log; the target is 0).
* ``full``: apply of a new catalogue of N videos on the embedded emulator with zero
  latency and tiny renders: wall time and requests per video by kind. In the same run
  the emulator's ceiling is measured: an ideal client that knows everything in advance
  (concurrent creates, a list page per 100 jobs, concurrent downloads) renders the same
  requests on a fresh emulator, and a burst of GETs gives its raw requests per second.

    python benchmarks/bench_apply.py --noop 100,1000 --full 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import synth
from measure import avatarflow, machine, run_measured, table

from avatarflow.emulator import Emulator, EmulatorConfig
from avatarflow.emulator.requestlog import read_request_log
from avatarflow.workflow import validate

# Renders as small as the emulator allows: the benchmark measures the client, not ffmpeg.
TINY = {"width": 16, "height": 16, "fps": 5, "speech": False}
PARAMS = {"api-version": "2024-08-01"}
HEADERS = {"Ocp-Apim-Subscription-Key": "bench"}
KINDS = ("create", "get", "list", "download", "delete")
RACY_S = 2.1


def service_dir(manifest: Path) -> Path:
    return manifest.parent / ".avatarflow" / synth.NAME / "emulator" / "service"


def noop(root: Path, n: int) -> list[Any]:
    """The first no-op apply plans in full (and leaves a plan memo); the next ones are
    answered from the memo. Each row counts the requests of all of them."""
    manifest = synth.generate(root / f"noop{n}", n)
    synth.record_rendered(manifest, "emulator")
    time.sleep(RACY_S)  # files younger than the racy window are never trusted by stat
    env = {"AVATARFLOW_CACHE_DIR": str(root / f"memo{n}")}
    command = avatarflow("apply", str(manifest), "--emulator", "--yes")
    first = run_measured(command, env=env)
    again = min((run_measured(command, env=env) for _ in range(3)), key=lambda m: m.seconds)
    assert first.returncode == 0 and again.returncode == 0
    requests = len(read_request_log(service_dir(manifest)))
    return [n, first.seconds, again.seconds, round(again.peak_rss_mb, 1), requests]


def full(root: Path, n: int, parallelism: int, words: int) -> tuple[list[Any], list[Any]]:
    manifest = synth.generate(root / f"full{n}", n, words=(words, words * 3))
    env = {"AVATARFLOW_EMULATOR_CONFIG": json.dumps(TINY)}
    command = avatarflow("apply", str(manifest), "--emulator", "--yes", "--json")
    measured = run_measured([*command, "--parallelism", str(parallelism)], env=env)
    assert measured.returncode == 0, "apply failed"
    kinds = Counter(r.kind for r in read_request_log(service_dir(manifest)))
    bodies = [r.submit_body() for r in validate(manifest).requests]
    ideal_seconds, ideal_requests, raw_rps = asyncio.run(ceiling(root / f"ceiling{n}", bodies))
    apply_row = [
        n,
        measured.seconds,
        ideal_seconds,
        measured.seconds / ideal_seconds,
        *(round(kinds[k] / n, 2) for k in KINDS),
        round(sum(kinds.values()) / n, 2),
        round(ideal_requests / n, 2),
    ]
    return apply_row, [round(sum(kinds.values()) / measured.seconds), round(raw_rps)]


async def ceiling(data_dir: Path, bodies: list[dict[str, Any]]) -> tuple[float, int, float]:
    """The same renders driven by an ideal client; its wall time, its requests, and the
    emulator's raw GET rate."""
    config = EmulatorConfig(**TINY)  # type: ignore[arg-type]
    with Emulator(data_dir, config) as emulator:
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(
            base_url=emulator.url, headers=HEADERS, limits=limits, timeout=120
        ) as http:
            started = time.perf_counter()
            await ideal_client(http, bodies, data_dir)
            seconds = time.perf_counter() - started
            requests = len(read_request_log(data_dir))
            raw_rps = await get_burst(http, "ideal-0000")
    return seconds, requests, raw_rps


async def ideal_client(http: httpx.AsyncClient, bodies: list[dict[str, Any]], out: Path) -> None:
    pending = [(f"ideal-{i:04d}", body) for i, body in enumerate(bodies)]
    active: set[str] = set()
    downloads: list[asyncio.Task[None]] = []

    async def download(url: str, name: str) -> None:
        async with http.stream("GET", url) as response:
            with (out / f"{name}.mp4").open("wb") as handle:
                async for chunk in response.aiter_bytes(1 << 20):
                    handle.write(chunk)

    async def create(job_id: str, body: dict[str, Any]) -> None:
        response = await http.put(f"/avatar/batchsyntheses/{job_id}", params=PARAMS, json=body)
        assert response.status_code == 201, response.text

    while pending or active:
        batch = pending[: max(0, 190 - len(active))]  # the service allows 200 active jobs
        pending = pending[len(batch) :]
        await asyncio.gather(*(create(job_id, body) for job_id, body in batch))
        active.update(job_id for job_id, _ in batch)
        skip = 0
        while active and skip < len(active) + 100:  # in-flight jobs are the newest
            page = (
                await http.get(
                    "/avatar/batchsyntheses", params={**PARAMS, "skip": skip, "maxpagesize": 100}
                )
            ).json()["value"]
            for job in page:
                if job["id"] in active and job["status"] in ("Succeeded", "Failed"):
                    active.discard(job["id"])
                    url = job["outputs"]["result"]
                    downloads.append(asyncio.create_task(download(url, job["id"])))
            if len(page) < 100:
                break
            skip += 100
        await asyncio.sleep(0.05)
    await asyncio.gather(*downloads)


async def get_burst(http: httpx.AsyncClient, job_id: str, seconds: float = 3.0) -> float:
    count = 0
    until = time.perf_counter() + seconds

    async def getter() -> None:
        nonlocal count
        while time.perf_counter() < until:
            await http.get(f"/avatar/batchsyntheses/{job_id}", params=PARAMS)
            count += 1

    await asyncio.gather(*(getter() for _ in range(16)))
    return count / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--noop", default="100,1000", help="N values of the no-op apply")
    parser.add_argument("--full", default="1000", help="N values of the full apply")
    parser.add_argument("--parallelism", type=int, default=20, help="apply --parallelism")
    parser.add_argument(
        "--words", type=int, default=5, help="full apply narrations have words to 3x words"
    )
    parser.add_argument("--keep", type=Path, default=None, help="write catalogues here")
    args = parser.parse_args()
    os.environ.pop("AVATARFLOW_EMULATOR_FAULTS", None)
    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch)
        noops = [noop(root, int(n)) for n in args.noop.split(",") if n]
        fulls = [
            full(root, int(n), args.parallelism, args.words) for n in args.full.split(",") if n
        ]
    print(f"apply ({machine()})")
    if noops:
        print("\nno-op apply of an up-to-date catalogue")
        print(table(["N", "full s", "memo s", "memo RSS MiB", "HTTP requests (4 runs)"], noops))
    if fulls:
        print(f"\nfull apply, zero-latency emulator, --parallelism {args.parallelism}")
        headers = ["N", "apply s", "ideal s", "ratio"]
        headers += [f"{k}/video" for k in KINDS] + ["requests/video", "ideal requests/video"]
        print(table(headers, [row for row, _ in fulls]))
        print("\nrequest rates")
        print(table(["apply requests/s", "emulator GET ceiling/s"], [rate for _, rate in fulls]))


if __name__ == "__main__":
    main()

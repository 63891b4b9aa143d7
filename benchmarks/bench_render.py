"""Benchmark of the emulator's renderer (not a test): render time per second of video.

Submits ``--jobs`` narrations of ``--words`` words one after the other to an in-process
emulator and waits for each, at the draft size (320x180, 25 fps) and at the service's
full 1920x1080, and prints the wall time per second of rendered video.

    python benchmarks/bench_render.py --jobs 3 --words 60
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import httpx
import synth
from emulator_load import body
from measure import machine, table

from avatarflow.emulator import Emulator, EmulatorConfig

SIZES = {"draft": (320, 180), "full": (1920, 1080)}
PARAMS = {"api-version": "2024-08-01"}


def render(width: int, height: int, jobs: int, words: int) -> list[object]:
    rng = random.Random(3)
    seconds = video_seconds = 0.0
    with tempfile.TemporaryDirectory() as data_dir:
        config = EmulatorConfig(width=width, height=height)
        with (
            Emulator(Path(data_dir), config) as emulator,
            httpx.Client(
                base_url=emulator.url, headers={"Ocp-Apim-Subscription-Key": "bench"}, timeout=600
            ) as http,
        ):
            for n in range(jobs):
                text = synth.narration(rng, words).replace("{{ course }}", "this course")
                started = time.perf_counter()
                url = f"/avatar/batchsyntheses/render-{n}"
                assert http.put(url, params=PARAMS, json=body(text)).status_code == 201
                while (job := http.get(url, params=PARAMS).json())["status"] not in (
                    "Succeeded",
                    "Failed",
                ):
                    time.sleep(0.02)
                seconds += time.perf_counter() - started
                assert job["status"] == "Succeeded", job
                video_seconds += job["properties"]["durationInMilliseconds"] / 1000
    return [f"{width}x{height}", jobs, round(video_seconds, 1), seconds, seconds / video_seconds]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3, help="videos rendered per size")
    parser.add_argument("--words", type=int, default=60, help="words of narration per video")
    parser.add_argument("--sizes", default="draft,full", help="draft and/or full")
    args = parser.parse_args()
    rows = [render(*SIZES[name], args.jobs, args.words) for name in args.sizes.split(",")]
    print(f"render ({machine()})")
    print(table(["size", "videos", "video s", "wall s", "render s per video s"], rows))


if __name__ == "__main__":
    main()

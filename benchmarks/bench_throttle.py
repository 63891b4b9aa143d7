"""Benchmark of apply under the create throttle (not a test).

The emulator admits the documented 2 creates per minute, with the minute shrunk by
``--time-scale`` (120: a minute lasts 0.5 s). A catalogue of N rendered videos is
changed (the default time to live), so ``apply`` re-renders all N. It runs twice:
as shipped (creates paced from the first 429, see ``avatarflow/pacing.py``) and with
pacing switched off (only ``Retry-After`` honoured), and prints wall time, 429s and the
wall time the same run would take at the real limit.

    python benchmarks/bench_throttle.py --videos 100 --time-scale 120
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import synth
from measure import machine, table

from avatarflow import pacing
from avatarflow.cli import main as cli
from avatarflow.emulator.requestlog import read_request_log

LIMIT = 2  # creates per minute, as documented for batch avatar synthesis on S0


def run(root: Path, n: int, scale: float, paced: bool) -> list[Any]:
    manifest = synth.generate(root, n, words=(5, 15))
    synth.record_rendered(manifest, "emulator")
    text = manifest.read_text().replace("ttl_hours: 168", "ttl_hours: 96", 1)
    manifest.write_text(text)  # every narration changes: N re-renders
    config = {"width": 16, "height": 16, "fps": 5, "speech": False}
    os.environ["AVATARFLOW_EMULATOR_CONFIG"] = json.dumps(
        {**config, "creates_per_minute": LIMIT, "time_scale": scale}
    )
    learn = pacing.CreatePacer.throttled
    if not paced:  # the learning off: the interval stays 0, only Retry-After is honoured
        pacing.CreatePacer.throttled = lambda self, retry_after: None  # type: ignore[method-assign]
    started = time.perf_counter()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = cli(["--color", "never", "apply", str(manifest), "--emulator", "--yes"])
    finally:
        pacing.CreatePacer.throttled = learn  # type: ignore[method-assign]
    seconds = time.perf_counter() - started
    assert code == 0, code
    log = read_request_log(manifest.parent / ".avatarflow" / synth.NAME / "emulator" / "service")
    creates = Counter(r.status for r in log if r.kind == "create")
    floor = (n - LIMIT) / LIMIT * 60 / scale  # the limit allows no faster
    return [
        "paced" if paced else "Retry-After only",
        n,
        creates[201],
        creates[429],
        seconds,
        floor,
        round(seconds * scale / 60, 1),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=100, help="changed videos to re-render")
    parser.add_argument("--time-scale", type=float, default=120.0, help="minute divided by")
    args = parser.parse_args()
    os.environ.pop("AVATARFLOW_EMULATOR_FAULTS", None)
    with tempfile.TemporaryDirectory() as scratch:
        rows = [
            run(Path(scratch) / mode, args.videos, args.time_scale, mode == "paced")
            for mode in ("paced", "unpaced")
        ]
    print(f"create throttle {LIMIT}/min, time scale {args.time_scale:g} ({machine()})")
    headers = ["creates", "videos", "201", "429", "wall s", "limit floor s", "real-time min"]
    print(table(headers, rows))


if __name__ == "__main__":
    main()

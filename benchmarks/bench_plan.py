"""Benchmark of ``avatarflow plan`` (not a test): wall time and peak RSS against N videos.

For each N it writes a synthetic catalogue (``synth.py``), then runs ``avatarflow plan``
in fresh processes:

* ``new``: no state yet, every video is ``+`` (and printed);
* ``cold``: the first run after the state of every video was written (all up to date);
* ``warm``: the best of ``--runs`` further runs (file cache and bytecode warm).

It also times the state writes that produced the state (one atomic, fsynced file per
transition) to show that a write costs the same at any catalogue size.

    python benchmarks/bench_plan.py --sizes 100,1000,10000
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path
from typing import Any

import synth
from measure import avatarflow, machine, run_measured, table


def bench(root: Path, n: int, runs: int) -> list[Any]:
    manifest = synth.generate(root / f"n{n}", n)
    plan = avatarflow("plan", str(manifest))
    new = run_measured(plan)
    started = time.perf_counter()
    synth.record_rendered(manifest)
    write_ms = (time.perf_counter() - started) / n * 1000
    cold = run_measured(plan)
    warm = min((run_measured(plan) for _ in range(runs)), key=lambda m: m.seconds)
    peak = max(new.peak_rss_mb, cold.peak_rss_mb, warm.peak_rss_mb)
    return [
        n,
        new.seconds,
        cold.seconds,
        warm.seconds,
        round(warm.seconds / n * 1e6),
        round(peak, 1),
        round(write_ms, 2),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000", help="comma-separated N values")
    parser.add_argument("--runs", type=int, default=2, help="warm runs; the best is kept")
    parser.add_argument("--keep", type=Path, default=None, help="write catalogues here")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch)
        rows = [bench(root, n, args.runs) for n in sizes]
    print(f"plan ({machine()})")
    print(
        table(
            [
                "N",
                "new s",
                "cold s",
                "warm s",
                "warm µs/video",
                "peak RSS MiB",
                "state write ms/put",
            ],
            rows,
        )
    )
    for before, after in itertools.pairwise(rows):
        print(f"warm time x{after[3] / before[3]:.1f} for N x{after[0] // before[0]}")


if __name__ == "__main__":
    main()

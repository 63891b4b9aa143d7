"""Benchmark of ``avatarflow plan`` (not a test): wall time and peak RSS against N videos.

For each N it writes a synthetic catalogue (``synth.py``), then runs ``avatarflow plan``
in fresh processes:

* ``new``: no state yet, every video is ``+`` (and printed);
* ``cold``: the first run after the state of every video was written (all up to date): a
  full plan, which parses, renders and reads every record, then writes the plan memo;
* ``full``: the best of ``--runs`` full plans with the files warm in the page cache (each
  run gets an empty memo folder, so none can use a memo);
* ``warm``: the best of ``--runs`` plans recalled from the memo, which re-reads and hashes
  the manifest and the templates, and stats every narration file, state record and
  output (see ``avatarflow/planmemo.py``).

The state is given ``RACY_S`` seconds to settle before ``cold``: a file written within
the racy window of a plan is never trusted by its stat, so a plan run at once after the
writes is a full one (as it should be).

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
from measure import Measured, avatarflow, machine, run_measured, table

RACY_S = 2.1


def best(runs: int, measure: Any) -> Measured:
    return min((measure() for _ in range(runs)), key=lambda m: m.seconds)


def bench(root: Path, n: int, runs: int) -> list[Any]:
    manifest = synth.generate(root / f"n{n}", n)
    plan = avatarflow("plan", str(manifest))
    memo = {"AVATARFLOW_CACHE_DIR": str(root / f"memo{n}")}
    new = run_measured(plan, env=memo)
    started = time.perf_counter()
    synth.record_rendered(manifest)
    write_ms = (time.perf_counter() - started) / n * 1000
    time.sleep(RACY_S)
    cold = run_measured(plan, env=memo)
    counter = itertools.count()

    def full() -> Measured:
        return run_measured(plan, env={"AVATARFLOW_CACHE_DIR": str(root / f"x{next(counter)}")})

    full_warm = best(runs, full)
    warm = best(runs, lambda: run_measured(plan, env=memo))
    peak = max(m.peak_rss_mb for m in (new, cold, full_warm, warm))
    return [
        n,
        new.seconds,
        cold.seconds,
        full_warm.seconds,
        warm.seconds,
        round(warm.seconds / n * 1e6),
        round(warm.peak_rss_mb, 1),
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
                "full s",
                "warm s",
                "warm µs/video",
                "warm RSS MiB",
                "peak RSS MiB",
                "state write ms/put",
            ],
            rows,
        )
    )
    for before, after in itertools.pairwise(rows):
        growth = f"full x{after[3] / before[3]:.1f}, warm x{after[4] / before[4]:.1f}"
        print(f"{growth} for N x{after[0] // before[0]}")


if __name__ == "__main__":
    main()

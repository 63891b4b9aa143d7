"""Benchmark of ``avatarflow plan`` over real-sized outputs (not a test): the stat cache.

Writes a synthetic catalogue of N videos (``synth.py``) whose outputs are ``--mib`` MiB
of random bytes each, records them as downloaded, dates them an hour back (outside the
racy window, as outputs of an earlier apply are), then runs ``avatarflow plan`` in fresh
processes:

* ``cold``: the first plan, no stat cache yet: every output is hashed (and cached);
* ``no cache``: the best of ``--runs`` plans with the cache deleted before each, which
  is what every plan cost before the cache (the files are in the page cache by now);
* ``cached``: the best of ``--runs`` plans with the cache;
* ``--verify``: one plan that hashes every output regardless.

    python benchmarks/bench_outputs.py --videos 200 --mib 20
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import synth
from measure import Measured, avatarflow, machine, run_measured, table

from avatarflow.statcache import CACHE_DIR
from avatarflow.workflow import open_manifest

HOUR_NS = 3600 * 10**9


def _age(folder: Path) -> None:
    for path in folder.iterdir():
        old = path.stat().st_mtime_ns - HOUR_NS
        os.utime(path, ns=(old, old))


def _best(command: list[str], runs: int, before: Path | None = None) -> Measured:
    results = []
    for _ in range(runs):
        if before is not None:
            shutil.rmtree(before, ignore_errors=True)
        results.append(run_measured(command))
    return min(results, key=lambda m: m.seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=200, help="number of videos")
    parser.add_argument("--mib", type=int, default=20, help="MiB of each output")
    parser.add_argument("--runs", type=int, default=3, help="runs per case; the best is kept")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        manifest = synth.generate(Path(scratch) / "course", args.videos)
        synth.record_rendered(manifest, output_bytes=args.mib << 20)
        workspace = open_manifest(manifest)[1]
        _age(workspace.output_dir)
        cache = workspace.state_dir / CACHE_DIR
        plan = avatarflow("plan", str(manifest))
        cold = run_measured(plan)
        nocache = _best(plan, args.runs, before=cache)
        run_measured(plan)  # fills the cache again
        cached = _best(plan, args.runs)
        verify = run_measured([*plan, "--verify"])
    gib = args.videos * args.mib / 1024
    print(f"plan of {args.videos} videos x {args.mib} MiB = {gib:.1f} GiB ({machine()})")
    rows = [
        ["cold (no cache yet)", cold.seconds, round(cold.peak_rss_mb, 1)],
        ["no cache (page cache warm)", nocache.seconds, round(nocache.peak_rss_mb, 1)],
        ["cached", cached.seconds, round(cached.peak_rss_mb, 1)],
        ["--verify", verify.seconds, round(verify.peak_rss_mb, 1)],
    ]
    print(table(["plan", "wall s", "peak RSS MiB"], rows))
    print(f"cached plan x{nocache.seconds / cached.seconds:.0f} faster than without the cache")


if __name__ == "__main__":
    main()

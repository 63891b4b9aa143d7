"""Benchmark of the plan memo (not a test): what ``recall`` costs when it hits and when it misses.

For each N it writes a synthetic catalogue (``synth.py``), records every video as
rendered, lets the state settle past the racy window and plans once (which leaves the
memo). Then, in fresh processes (best of ``--runs``):

* ``plan unchanged``: the whole ``avatarflow plan`` answered from the memo (wall time and
  peak RSS, see ``measure.py``);
* ``recall hit``: ``planmemo.recall`` alone, timed inside the process (no start-up);
* ``recall miss``: the same after one narration file was edited (a different file each
  run): what a plan pays for asking the memo before it plans.

``--trees`` compares copies of the package on the same catalogue and edits, as
``bench_edit.py`` does:

    python benchmarks/bench_memo.py --sizes 10000 --trees before=/tmp/old,after=/tmp/new
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import synth
from bench_edit import RACY_S, TREES_HELP, Tree, _edit_script, parse_trees
from measure import avatarflow, machine, run_measured, table

# Prints the seconds one recall took and whether it hit.
_RECALL = """
import json, sys, time
from pathlib import Path
from avatarflow import planmemo
started = time.perf_counter()
recalled = planmemo.recall(Path(sys.argv[1]), "azure")
print(json.dumps([time.perf_counter() - started, recalled is not None]))
"""


def _recall(manifest: Path, env: dict[str, str]) -> tuple[float, bool]:
    done = subprocess.run(
        [sys.executable, "-c", _RECALL, str(manifest)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    )
    seconds, hit = json.loads(done.stdout.strip().splitlines()[-1])
    return float(seconds), bool(hit)


def bench(root: Path, n: int, runs: int, trees: list[Tree]) -> list[list[object]]:
    manifest = synth.generate(root / f"n{n}", n)
    synth.record_rendered(manifest)
    time.sleep(RACY_S)
    plan = avatarflow("plan", str(manifest))
    envs = [tree.env(root / f"cache-{tree.name}-{n}") for tree in trees]
    for env in envs:  # a full plan, which leaves the memo
        run_measured(plan, env=env)
    rows: list[list[object]] = []
    for env in envs:
        planned = min((run_measured(plan, env=env) for _ in range(runs)), key=lambda m: m.seconds)
        hits = [_recall(manifest, env) for _ in range(runs)]
        if not all(hit for _, hit in hits):
            raise SystemExit("the memo missed on an unchanged catalogue")
        rows.append([n, "", planned.seconds, round(planned.peak_rss_mb, 1), min(hits)[0]])
    misses: list[list[float]] = [[] for _ in trees]
    for run in range(runs):
        _edit_script(manifest, run)
        for i, env in enumerate(envs):
            seconds, hit = _recall(manifest, env)
            if hit:
                raise SystemExit("the memo hit after a narration file was edited")
            misses[i].append(seconds)
    for tree, row, missed in zip(trees, rows, misses, strict=True):
        row[1] = tree.name
        row.append(min(missed))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated N values")
    parser.add_argument("--runs", type=int, default=5, help="runs per figure; the best is kept")
    parser.add_argument("--trees", default="", help=TREES_HELP)
    args = parser.parse_args()
    trees = parse_trees(args.trees)
    with tempfile.TemporaryDirectory() as scratch:
        rows = []
        for n in (int(s) for s in args.sizes.split(",")):
            rows.extend(bench(Path(scratch), n, args.runs, trees))
    print(f"plan memo ({machine()})")
    heads = ["N", "code", "plan unchanged s", "MiB", "recall hit s", "recall miss s"]
    print(table(heads, rows))


if __name__ == "__main__":
    main()

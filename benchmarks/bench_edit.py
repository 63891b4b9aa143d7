"""Benchmark of the edit loop (not a test): ``plan`` after one edit, at catalogue scale.

For each N it writes a synthetic catalogue (``synth.py``), records every video as
rendered and downloaded, lets the state settle past the racy window, and runs each
command in fresh processes (best of ``--runs``; wall time and the command's own peak
RSS, see ``measure.py``):

* ``full``: a plan with an empty cache folder: no memo, no per-video cache;
* ``unchanged``: a plan with nothing changed since the last one (the plan memo);
* ``script edited``: one narration file edited (a different video each run);
* ``inline edited``: one inline narration in the manifest edited;
* ``defaults changed``: ``defaults.ttl_hours`` changed, so every request changes;
* ``status``: ``avatarflow status`` of the whole catalogue.

Every edit is made on top of the previous ones, and every plan but ``full`` shares one
cache folder, so each run finds the caches as the previous plan left them: as an
author's next ``plan`` would. It also prints the start-up of ``avatarflow --help`` (and
the number of modules it imports) and ``validate`` of a one-video manifest.

Catalogues over the loader's document limits (5 MB, 100,000 nodes: about 25,000 videos)
are planned with those limits raised (``--raise-limits``, on by default above 20,000).

    python benchmarks/bench_edit.py --sizes 1000,10000 --runs 3
"""

from __future__ import annotations

import argparse
import itertools
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import synth
from measure import Measured, avatarflow, machine, run_measured, table

RACY_S = 2.1
# The CLI with the loader's document limits raised, for catalogues beyond them.
_RAISED = (
    "import sys, avatarflow.yamlsafe as y, avatarflow.manifest as m; "
    "y.MAX_BYTES = m.MAX_BYTES = 1 << 30; y.MAX_NODES = 1 << 30; "
    "from avatarflow.cli import main; sys.argv[0] = 'avatarflow'; raise SystemExit(main())"
)


def command(raise_limits: bool, *args: str) -> list[str]:
    if raise_limits:
        return [sys.executable, "-c", _RAISED, "--color", "never", *args]
    return avatarflow(*args)


def best(runs: int, measure: Callable[[int], Measured]) -> Measured:
    return min((measure(i) for i in range(runs)), key=lambda m: m.seconds)


def _edit_script(manifest: Path, run: int) -> None:
    scripts = re.findall(r'text_file: "([^"]+)"', manifest.read_text("utf-8"))
    path = manifest.parent / scripts[(run * 7919) % len(scripts)]
    path.write_text(path.read_text("utf-8") + f"Edited {run}.\n", "utf-8")


def _edit_inline(manifest: Path, run: int) -> None:
    text = manifest.read_text("utf-8")
    # the first line of the (run+1)-th literal narration block: "text: |" and its next line
    matches = list(re.finditer(r"\n( +)text: \|\n( +)(\S[^\n]*)", text))
    found = matches[(run * 613) % len(matches)]
    start, end = found.span(3)
    manifest.write_text(text[:start] + f"Edited {run}. " + text[start:end] + text[end:], "utf-8")


def _edit_defaults(manifest: Path, run: int) -> None:
    text = manifest.read_text("utf-8")
    text = re.sub(r"\n  ttl_hours: \d+\n", f"\n  ttl_hours: {100 + run}\n", text, count=1)
    manifest.write_text(text, "utf-8")


def bench(root: Path, n: int, runs: int, raise_limits: bool) -> list[object]:
    manifest = synth.generate(root / f"n{n}", n)
    synth.record_rendered(manifest)
    time.sleep(RACY_S)
    plan = command(raise_limits, "plan", str(manifest))
    cache = {"AVATARFLOW_CACHE_DIR": str(root / f"cache{n}")}
    fresh = iter(range(1 << 30))

    def full(_: int) -> Measured:
        return run_measured(plan, env={"AVATARFLOW_CACHE_DIR": str(root / f"x{next(fresh)}")})

    def edited(edit: Callable[[int], None]) -> Callable[[int], Measured]:
        def measure(run: int) -> Measured:
            edit(run)
            return run_measured(plan, env=cache)

        return measure

    results = [best(runs, full)]
    run_measured(plan, env=cache)  # the memo and the caches, as a previous plan left them
    results.append(best(runs, lambda _: run_measured(plan, env=cache)))
    results.append(best(runs, edited(lambda run: _edit_script(manifest, run))))
    results.append(best(runs, edited(lambda run: _edit_inline(manifest, run))))
    results.append(best(runs, edited(lambda run: _edit_defaults(manifest, run))))
    status = command(raise_limits, "status", str(manifest))
    results.append(best(runs, lambda _: run_measured(status, env=cache)))
    row: list[object] = [n]
    for measured in results:
        row += [measured.seconds, round(measured.peak_rss_mb, 1)]
    return row


def startup(root: Path, runs: int) -> list[list[object]]:
    """``--help`` and a one-video ``validate``: what a command costs before any work."""
    one = synth.generate(root / "one", 1)
    rows: list[list[object]] = []
    for name, argv in (("--help", ["--help"]), ("validate (1 video)", ["validate", str(one)])):
        measured = best(runs, lambda _, argv=argv: run_measured(avatarflow(*argv)))
        rows.append([name, measured.seconds, round(measured.peak_rss_mb, 1)])
    probe = (
        "import sys; from avatarflow.cli import main; main(['--help']); "
        "print(len(sys.modules), 'pydantic' in sys.modules, file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    modules, pydantic = done.stderr.split()[-2:]
    rows[0].append(f"{modules} modules, pydantic {'loaded' if pydantic == 'True' else 'not'}")
    rows[1].append("")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated N values")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure; the best is kept")
    parser.add_argument("--keep", type=Path, default=None, help="write catalogues here")
    parser.add_argument(
        "--raise-limits",
        choices=("auto", "yes", "no"),
        default="auto",
        help="raise the loader's document limits (auto: above 20,000 videos)",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch)
        first = startup(root, args.runs)
        rows = [
            bench(
                root,
                n,
                args.runs,
                args.raise_limits == "yes" or (args.raise_limits == "auto" and n > 20_000),
            )
            for n in sizes
        ]
    print(f"edit loop ({machine()})")
    print(table(["command", "wall s", "peak RSS MiB", "note"], first))
    heads = ["full", "unchanged", "script edited", "inline edited", "defaults changed", "status"]
    print(table(["N", *(f"{h} {u}" for h in heads for u in ("s", "MiB"))], rows))
    for before, after in itertools.pairwise(rows):
        assert isinstance(before[0], int) and isinstance(after[0], int)
        ratios = ", ".join(
            f"{h} x{float(after[1 + 2 * i]) / float(before[1 + 2 * i]):.1f}"  # type: ignore[arg-type]
            for i, h in enumerate(heads)
        )
        print(f"N x{after[0] / before[0]:g}: {ratios}")
    for row in rows:
        print(f"N = {row[0]}: defaults changed / full = {float(row[9]) / float(row[1]):.2f}")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()

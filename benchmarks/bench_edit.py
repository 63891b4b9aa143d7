"""Benchmark of the edit loop (not a test): ``plan`` after one edit, at catalogue scale.

For each N it writes a synthetic catalogue (``synth.py``), records every video as
rendered and downloaded, lets the state settle past the racy window, and runs each
command in fresh processes (best of ``--runs``; wall time and the command's own peak
RSS, see ``measure.py``):

* ``full``: a plan with an empty cache folder: no memo, no per-video cache;
* ``unchanged``: a plan with nothing changed since the last one (the plan memo);
* ``script edited``: one narration file edited (a different video each run);
* ``inline edited``: one inline narration in the manifest edited;
* ``video added``: a new video put first in ``videos``, so every other item moves
  (another one each run, on top of the last);
* ``defaults changed``: ``defaults.ttl_hours`` changed, so every request changes;
* ``status``: ``avatarflow status`` of the whole catalogue.

Every edit is made on top of the previous ones, and every plan but ``full`` shares one
cache folder, so each run finds the caches as the previous plan left them: as an
author's next ``plan`` would. It also prints the start-up of ``avatarflow --help`` (and
the number of modules it imports) and ``validate`` of a one-video manifest.

``--trees`` compares copies of the package in one run, on the same catalogue and edits
(each edit is planned by every copy in turn, each with its own cache folder), so that
the ratios between them hold whatever else the machine is doing:

    python benchmarks/bench_edit.py --sizes 1000,10000 --runs 3
    python benchmarks/bench_edit.py --sizes 10000 --trees before=/tmp/old,after=/tmp/new
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import synth
from measure import Measured, avatarflow, machine, run_measured, table

RACY_S = 2.1


@dataclass(frozen=True)
class Tree:
    """A copy of the code to measure (``PYTHONPATH``), or the installed one (``""``)."""

    name: str
    path: str

    def env(self, cache: Path) -> dict[str, str]:
        env = {"AVATARFLOW_CACHE_DIR": str(cache)}
        return {**env, "PYTHONPATH": self.path} if self.path else env


TREES_HELP = (
    "NAME=PATH,... copies of the package to compare in one run (PYTHONPATH); "
    "default: the installed one"
)


def parse_trees(text: str) -> list[Tree]:
    """The trees of ``--trees``; the installed package when there are none."""
    return [Tree(*t.split("=", 1)) for t in text.split(",") if t] or [Tree("this", "")]


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


def _add_video(manifest: Path, run: int) -> None:
    text = manifest.read_text("utf-8")
    item = (
        f'  - id: "0000-added-{run}"\n    template: "lesson.ssml.j2"\n'
        f'    vars:\n      title: "Added {run}"\n      chapter: 1\n      recap: "added"\n'
        f'    text: "A video added first, {run}."\n'
    )
    manifest.write_text(text.replace("\nvideos:\n", f"\nvideos:\n{item}", 1), "utf-8")


def _edit_defaults(manifest: Path, run: int) -> None:
    text = manifest.read_text("utf-8")
    text = re.sub(r"\n  ttl_hours: \d+\n", f"\n  ttl_hours: {100 + run}\n", text, count=1)
    manifest.write_text(text, "utf-8")


def bench(
    root: Path, n: int, runs: int, trees: list[Tree], skip: frozenset[str] = frozenset()
) -> list[list[object]]:
    """One row per tree; every edit is made once, then planned by each tree in turn.
    The figures named in ``skip`` are not measured (shown as 0)."""
    manifest = synth.generate(root / f"n{n}", n)
    synth.record_rendered(manifest)
    time.sleep(RACY_S)
    plan = avatarflow("plan", str(manifest))
    fresh = iter(range(1 << 30))

    def cache(tree: Tree) -> Path:
        return root / f"cache-{tree.name}-{n}"

    def each(
        head: str, edit: Callable[[int], None] | None, argv: list[str] = plan
    ) -> list[Measured]:
        """The best of ``runs`` per tree, each run after one more ``edit``."""
        if head in skip:
            return [Measured(0.0, 0.0, 0) for _ in trees]
        found: list[list[Measured]] = [[] for _ in trees]
        for run in range(runs):
            if edit is not None:
                edit(run)
            for i, tree in enumerate(trees):
                found[i].append(run_measured(argv, env=tree.env(cache(tree))))
        return [min(m, key=lambda x: x.seconds) for m in found]

    results: list[list[Measured]] = []
    found: list[list[Measured]] = [[] for _ in trees]
    for _ in range(0 if "full" in skip else runs):  # a full plan: an empty cache folder
        for i, tree in enumerate(trees):
            found[i].append(run_measured(plan, env=tree.env(root / f"x{next(fresh)}")))
    if "full" in skip:
        found = [[Measured(0.0, 0.0, 0)] for _ in trees]
    results.append([min(m, key=lambda x: x.seconds) for m in found])
    for tree in trees:  # the memo and the caches, as a previous plan left them
        run_measured(plan, env=tree.env(cache(tree)))
    results.append(each("unchanged", None))
    results.append(each("script edited", lambda run: _edit_script(manifest, run)))
    results.append(each("inline edited", lambda run: _edit_inline(manifest, run)))
    results.append(each("video added", lambda run: _add_video(manifest, run)))
    results.append(each("defaults changed", lambda run: _edit_defaults(manifest, run)))
    results.append(each("status", None, avatarflow("status", str(manifest))))
    rows: list[list[object]] = []
    for i, tree in enumerate(trees):
        row: list[object] = [n, tree.name]
        for measured in results:
            row += [measured[i].seconds, round(measured[i].peak_rss_mb, 1)]
        rows.append(row)
    return rows


def startup(root: Path, runs: int, trees: list[Tree]) -> list[list[object]]:
    """``--help`` and a one-video ``validate``: what a command costs before any work."""
    one = synth.generate(root / "one", 1)
    probe = (
        "import sys; from avatarflow.entry import main; main(['--help']); "
        "print(len(sys.modules), 'pydantic' in sys.modules, file=sys.stderr)"
    )
    rows: list[list[object]] = []
    for tree in trees:
        env = tree.env(root / f"cache-{tree.name}-one")
        # ``--help`` as a user types it: ``--color never --help`` is answered by click.
        plain_help = [sys.executable, "-m", "avatarflow", "--help"]
        for name, command in (
            ("--help", plain_help),
            ("validate (1 video)", avatarflow("validate", str(one))),
        ):
            measured = [run_measured(command, env=env) for _ in range(runs)]
            fastest = min(measured, key=lambda m: m.seconds)
            rows.append([name, tree.name, fastest.seconds, round(fastest.peak_rss_mb, 1), ""])
        done = subprocess.run(
            [sys.executable, "-c", probe],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, **env},
        )
        modules, pydantic = done.stderr.split()[-2:]
        loaded = "loaded" if pydantic == "True" else "not"
        rows[-2][-1] = f"{modules} modules, pydantic {loaded}"
    return rows


HEADS = [
    "full",
    "unchanged",
    "script edited",
    "inline edited",
    "video added",
    "defaults changed",
    "status",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated N values")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure; the best is kept")
    parser.add_argument("--keep", type=Path, default=None, help="write catalogues here")
    parser.add_argument(
        "--skip",
        default="",
        help=f"comma-separated figures not to measure (of: {', '.join(HEADS)})",
    )
    parser.add_argument("--trees", default="", help=TREES_HELP)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    trees = parse_trees(args.trees)
    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch)
        first = startup(root, args.runs, trees)
        rows = []
        for n in sizes:
            rows.extend(bench(root, n, args.runs, trees, frozenset(args.skip.split(","))))
    print(f"edit loop ({machine()})")
    print(table(["command", "code", "wall s", "peak RSS MiB", "note"], first))
    print(table(["N", "code", *(f"{h} {u}" for h in HEADS for u in ("s", "MiB"))], rows))
    for tree in trees[1:]:  # each against the first, at each N
        mine = rows[trees.index(tree) :: len(trees)]
        for base, row in zip(rows[:: len(trees)], mine, strict=True):
            print(f"N = {row[0]}, {tree.name} / {trees[0].name}: {_ratios(row, base, 2)}")
    for tree in trees:  # growth with N
        mine = rows[trees.index(tree) :: len(trees)]
        for small, large in itertools.pairwise(mine):
            growth = _ratios(large, small, 1)
            print(f"{tree.name}, N x{_f(large[0]) / _f(small[0]):g}: {growth}")


def _ratios(row: list[object], base: list[object], digits: int) -> str:
    """Wall time of each figure of ``row`` over ``base``'s (figures measured in both)."""
    pairs = (
        (h, _f(row[2 + 2 * i]) / _f(base[2 + 2 * i]))
        for i, h in enumerate(HEADS)
        if _f(base[2 + 2 * i]) and _f(row[2 + 2 * i])
    )
    return ", ".join(f"{h} x{ratio:.{digits}f}" for h, ratio in pairs)


def _f(value: object) -> float:
    assert isinstance(value, int | float)
    return float(value)


if __name__ == "__main__":
    main()

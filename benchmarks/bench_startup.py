"""Benchmark of start-up (not a test): what a command costs before it does any work.

Times, in fresh processes (best of ``--runs``; wall time and peak RSS, see
``measure.py``), ``avatarflow --help``, ``--version`` and ``validate`` of a one-video
manifest (``synth.py``), and counts the modules each one imports and whether click,
pydantic and rich are among them. The ``.pyc`` files are written by a first untimed run:
a shell with ``PYTHONDONTWRITEBYTECODE=1`` would time the compiler, so the benchmark
unsets it for its children.

``--trees`` compares copies of the package in one run (``PYTHONPATH``), each run of a
command taking its turn, so that the ratios between them hold whatever else the machine
is doing (an empty PATH names the installed package); the console script beside the
interpreter is timed too. ``--python`` runs the commands with another interpreter, e.g.
one whose site-packages hold a regular install instead of an editable one::

    python benchmarks/bench_startup.py --runs 9
    python benchmarks/bench_startup.py --runs 21 --trees before=/tmp/old,after=
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import synth
from measure import Measured, machine, run_measured, table

# Runs the CLI as ``python -m avatarflow`` does, then names what it imported on stderr.
_PROBE = """
import runpy, sys
sys.argv = ["avatarflow", *sys.argv[1:]]
try:
    runpy.run_module("avatarflow", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
found = [m for m in ("click", "pydantic", "rich", "jinja2", "yaml") if m in sys.modules]
print(len(sys.modules), ",".join(found) or "-", file=sys.stderr)
"""


def _env(path: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPATH": path} if path else env


def _modules(python: str, args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        [python, "-c", _PROBE, *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    count, found = done.stderr.split()[-2:]
    return f"{count} modules; {found}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="runs per figure; the best is kept")
    parser.add_argument(
        "--trees",
        default="",
        help="NAME=PATH,... copies of the package to compare (PYTHONPATH); "
        "default: the installed one",
    )
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="the interpreter to run the commands with (default: this one)",
    )
    args = parser.parse_args()
    trees = [tuple(t.split("=", 1)) for t in args.trees.split(",") if t] or [("this", "")]
    python = args.python
    script = Path(python).parent / "avatarflow"
    with tempfile.TemporaryDirectory() as scratch:
        one = str(synth.generate(Path(scratch) / "one", 1))
        commands = {
            "--help": ["--help"],
            "--version": ["--version"],
            "validate (1 video)": ["validate", one],
        }
        runs: list[tuple[str, str, list[str], dict[str, str]]] = []
        for name, argv in commands.items():
            for tree, path in trees:
                runs.append((name, tree, [python, "-m", "avatarflow", *argv], _env(path)))
            if script.exists():
                runs.append((name, "console script", [str(script), *argv], _env("")))
        for _, _, command, env in runs:  # writes the .pyc files; not timed
            run_measured(command, env=env)
        found: list[list[Measured]] = [[] for _ in runs]
        for _ in range(args.runs):
            for i, (_, _, command, env) in enumerate(runs):
                found[i].append(run_measured(command, env=env))
        rows: list[list[object]] = []
        for (name, tree, command, env), measured in zip(runs, found, strict=True):
            best = min(measured, key=lambda m: m.seconds)
            seen = _modules(python, command[3:], env) if tree != "console script" else ""
            rows.append([name, tree, best.seconds, f"{best.peak_rss_mb:.1f}", seen])
    print(f"start-up ({machine()}, best of {args.runs}; {python})")
    print(table(["command", "code", "wall s", "peak RSS MiB", "imports"], rows))


if __name__ == "__main__":
    main()

"""What every benchmark needs: a timed child process with its peak memory, and tables.

Peak RSS comes from the kernel's accounting of the child itself (``wait4``). The child is
started by a small launcher process, not by the benchmark: Linux keeps the memory
high-water mark of the process a command was exec'd from, so a command forked straight
from a benchmark that holds a 10,000-video catalogue in memory would be charged with the
benchmark's own size.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Runs argv[1:] with stdout discarded and stderr inherited; prints its wall time, peak
# RSS (KiB) and exit status as one JSON line.
_LAUNCHER = """
import json, os, sys, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    try:
        os.execvp(sys.argv[1], sys.argv[1:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - started
print(json.dumps([seconds, usage.ru_maxrss, os.waitstatus_to_exitcode(status)]))
"""


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_rss_mb: float  # MiB (ru_maxrss is in KiB on Linux)
    returncode: int


def avatarflow(*args: str) -> list[str]:
    """The command line of the CLI, run by this interpreter, colours off."""
    return [sys.executable, "-m", "avatarflow", "--color", "never", *args]


def run_measured(
    command: Sequence[str],
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 600.0,
) -> Measured:
    """Run ``command`` in a fresh process; its wall time and its own peak RSS."""
    launcher = subprocess.Popen(
        [sys.executable, "-S", "-c", _LAUNCHER, *command],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # a timeout kills the command along with its launcher
    )
    try:
        out, errors = launcher.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(launcher.pid, signal.SIGKILL)
        launcher.communicate()
        raise TimeoutError(f"{' '.join(command)} took longer than {timeout:.0f} s") from None
    seconds, peak_kib, code = json.loads(out.decode().strip().splitlines()[-1])
    if code not in (0, 2):
        sys.stderr.write(errors.decode(errors="replace")[-2000:])
    return Measured(seconds, peak_kib / 1024, code)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table, so that figures paste straight into the README."""
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|")
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    return str(value)


def machine() -> str:
    """One line naming the hardware the figures were measured on."""
    load = os.getloadavg()[0]
    return f"{os.cpu_count()} CPUs, load average {load:.1f}, Python {sys.version.split()[0]}"

"""What every benchmark needs: a timed child process with its peak memory, and tables.

Peak RSS comes from the kernel's accounting of the child itself (``wait4``), so an
import or a cache of the benchmark script never counts against the command measured.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


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
    started = time.perf_counter()
    child = subprocess.Popen(
        list(command),
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert child.stderr is not None
    deadline = started + timeout
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            child.kill()
            raise TimeoutError(f"{' '.join(command)} took longer than {timeout:.0f} s")
        time.sleep(0.005)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    errors = child.stderr.read().decode(errors="replace")
    child.returncode = code
    if code not in (0, 2):
        sys.stderr.write(errors[-2000:])
    return Measured(seconds, usage.ru_maxrss / 1024, code)


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

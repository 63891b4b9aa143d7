"""SIGTERM handled as Ctrl-C is: a cancelled CI job or a service manager stops avatarflow
with SIGTERM, and its default action would end the process in the middle of a write,
leaving a temp file in the committed state folder for ``git add -A`` to pick up.

Within :func:`terminated_on_sigterm` the signal is turned into
:class:`~avatarflow.errors.Terminated` instead, so every ``finally`` runs: a write in
progress is finished or its temp file removed, and the lock is released. While an
asyncio loop runs, its tasks are cancelled rather than interrupted mid-step, as asyncio
itself does with Ctrl-C; the block then ends with :class:`Terminated`.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from .errors import Terminated


class _Received:
    count = 0


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _Received.count += 1
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise Terminated from None
    # Not here: the handler may run in the middle of one of the loop's callbacks.
    loop.call_soon_threadsafe(_cancel_all, loop)


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    for task in asyncio.all_tasks(loop):
        task.cancel()


@contextmanager
def terminated_on_sigterm() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (main thread only; the
    previous handler comes back afterwards, for a library caller or a test runner)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = _Received.count
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    except asyncio.CancelledError:
        if _Received.count == before:
            raise
        raise Terminated from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    if _Received.count != before:
        raise Terminated

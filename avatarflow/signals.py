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

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from .errors import Terminated


class _Received:
    count = 0


def _asyncio() -> Any:
    """asyncio if something imported it (no loop can run otherwise); ``--help`` stays light."""
    return sys.modules.get("asyncio")


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _Received.count += 1
    asyncio = _asyncio()
    try:
        loop = asyncio.get_running_loop() if asyncio is not None else None
    except RuntimeError:
        loop = None
    if loop is None:
        raise Terminated
    # Not here: the handler may run in the middle of one of the loop's callbacks.
    loop.call_soon_threadsafe(_cancel_all, loop)


def _cancel_all(loop: Any) -> None:
    for task in _asyncio().all_tasks(loop):
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
    except BaseException as exc:
        asyncio = _asyncio()
        cancelled = asyncio is not None and isinstance(exc, asyncio.CancelledError)
        if not cancelled or _Received.count == before:
            raise
        raise Terminated from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    if _Received.count != before:
        raise Terminated

"""The exclusive state lock, and what every lock shares: holder info, wait, refusal.

The local lock is an OS file lock (:mod:`avatarflow.oslock`: ``flock``, or
``msvcrt.locking`` on Windows) on ``state.lock``, a file that also holds who took it
(pid, host, user, command, time, lock id). The kernel drops the lock when its process
dies, so a SIGKILLed apply never leaves the next apply locked out on the same machine;
the holder info stays in the file for the message. ``force-unlock LOCK_ID`` removes the
file for the rare lock that outlives its holder (a network filesystem, a hung process).
The remote state's blob lease (:mod:`avatarflow.backends.azureblob`) reuses
:class:`LockInfo`, :func:`wait_for_lock` and :func:`locked_error`, so both say the same.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import sys
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Self

from . import oslock
from .errors import LockError, LockUnsupported
from .state import utc_now

LOCK_FILE = "state.lock"


@dataclass(frozen=True)
class LockInfo:
    id: str
    pid: int
    host: str
    user: str
    command: str
    created: str

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> LockInfo | None:
        """Holder info read back from a file or from blob metadata; None if incomplete."""
        try:
            return cls(
                id=str(data["id"]),
                pid=int(str(data["pid"])),
                host=str(data["host"]),
                user=str(data["user"]),
                command=str(data["command"]),
                created=str(data["created"]),
            )
        except (KeyError, ValueError):
            return None

    def describe(self) -> str:
        return (
            f"lock {self.id} held by pid {self.pid} on {self.host} (user {self.user}), "
            f"since {self.created}, running `{self.command}`"
        )


def _read_info(path: Path) -> LockInfo | None:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return LockInfo.from_mapping(data) if isinstance(data, dict) else None


def new_lock_info(command: str) -> LockInfo:
    """Who is taking a lock now: this process."""
    return LockInfo(
        id=str(uuid.uuid4()),
        pid=os.getpid(),
        host=socket.gethostname(),
        user=_user(),
        command=command,
        created=utc_now(),
    )


def _gone_hint(holder: LockInfo) -> str:
    """Say so when the holder is a process of this machine that no longer runs."""
    if holder.host != socket.gethostname() or sys.platform == "win32":
        return ""  # Windows' os.kill(pid, 0) would end the process, not probe it
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return f" (process {holder.pid} is no longer running: the lock is stale)"
    except PermissionError:
        pass
    return ""


def locked_error(holder: LockInfo | None) -> LockError:
    """The refusal every lock gives: who holds it, and how to wait or break it."""
    who = holder.describe() + _gone_hint(holder) if holder else "another process"
    return LockError(
        f"the state is locked: {who}. Wait for it to finish, use --lock-timeout, "
        "or if that process is gone, run `avatarflow force-unlock "
        f"{holder.id if holder else 'LOCK_ID'} MANIFEST`"
    )


def wait_for_lock(
    try_acquire: Callable[[], bool],
    holder: Callable[[], LockInfo | None],
    timeout: float,
    on_wait: Callable[[str], None] | None,
    interval: float = 0.1,
) -> None:
    """Call ``try_acquire`` until it succeeds or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    announced = False
    while not try_acquire():
        current = holder()
        if time.monotonic() >= deadline:
            raise locked_error(current)
        if not announced and on_wait:
            who = current.describe() if current else "another process"
            on_wait(f"Waiting for the state lock: {who}")
            announced = True
        time.sleep(interval)


class HeldLock(ABC):
    """A lock used as ``with lock: ...``; ``info`` names the holder once acquired."""

    info: LockInfo | None = None

    @abstractmethod
    def acquire(self) -> LockInfo: ...

    @abstractmethod
    def release(self) -> None: ...

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class StateLock(HeldLock):
    """``with StateLock(dir, command): ...`` — fails at once, or waits ``timeout`` seconds."""

    def __init__(
        self,
        directory: Path,
        command: str,
        timeout: float = 0.0,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        self.path = directory / LOCK_FILE
        self.command = command
        self.timeout = timeout
        self.on_wait = on_wait
        self._fd: int | None = None
        self.info: LockInfo | None = None

    def acquire(self) -> LockInfo:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)

        def try_lock() -> bool:
            try:
                return oslock.try_lock(fd)
            except LockUnsupported as exc:
                raise LockUnsupported(f"cannot lock the state: {exc}") from None

        try:
            wait_for_lock(try_lock, lambda: _read_info(self.path), self.timeout, self.on_wait)
        except BaseException:
            os.close(fd)
            raise
        info = new_lock_info(self.command)
        oslock.write_at_start(fd, json.dumps(asdict(info)).encode())
        os.fsync(fd)
        self._fd, self.info = fd, info
        return info

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
            oslock.unlock(self._fd)
        finally:
            os.close(self._fd)
            self._fd = None


def force_unlock(directory: Path, lock_id: str) -> LockInfo:
    """Remove the lock file if it holds ``lock_id``."""
    path = directory / LOCK_FILE
    info = _read_info(path)
    if info is None:
        raise LockError(f"no lock is recorded in {path.name}; nothing to unlock")
    if info.id != lock_id:
        raise LockError(f"the lock id is {info.id}, not {lock_id}; {info.describe()}")
    path.unlink(missing_ok=True)
    return info


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


def command_line() -> str:
    return " ".join(["avatarflow", *sys.argv[1:]])[:200]

"""The exclusive state lock.

The lock is an ``flock`` on ``state.lock`` that also holds who took it (pid, host,
user, command, time, lock id). The kernel drops an ``flock`` when its process dies, so
a SIGKILLed apply never leaves the next apply locked out on the same machine; the
holder info stays in the file for the message. ``force-unlock LOCK_ID`` removes the
file for the rare lock that outlives its holder (a network filesystem, a hung process).
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType

from .errors import LockError
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

    def describe(self) -> str:
        return (
            f"lock {self.id} held by pid {self.pid} on {self.host} (user {self.user}), "
            f"since {self.created}, running `{self.command}`"
        )


def _read_info(path: Path) -> LockInfo | None:
    try:
        data = json.loads(path.read_text("utf-8"))
        return LockInfo(**data)
    except (OSError, ValueError, TypeError):
        return None


class StateLock:
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
        deadline = time.monotonic() + self.timeout
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _read_info(self.path)
                who = holder.describe() if holder else "another process"
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise LockError(
                        f"the state is locked: {who}. Wait for it to finish, use --lock-timeout, "
                        "or if that process is gone, run `avatarflow force-unlock "
                        f"{holder.id if holder else 'LOCK_ID'} MANIFEST`"
                    ) from None
                if not announced and self.on_wait:
                    self.on_wait(f"Waiting for the state lock: {who}")
                    announced = True
                time.sleep(0.1)
        info = LockInfo(
            id=str(uuid.uuid4()),
            pid=os.getpid(),
            host=socket.gethostname(),
            user=_user(),
            command=self.command,
            created=utc_now(),
        )
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(asdict(info)).encode(), 0)
        os.fsync(fd)
        self._fd, self.info = fd, info
        return info

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> StateLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


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

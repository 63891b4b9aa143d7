"""The operating system's advisory file lock behind one small interface.

``flock`` on POSIX (Linux, macOS), ``msvcrt.locking`` on Windows. Either way the kernel
drops the lock when its process dies, so a killed holder never locks the next run out.
On a platform with neither, :func:`try_lock` raises :class:`LockUnsupported`; importing
this module never fails. The emulator shares it.
"""

from __future__ import annotations

import os
from types import ModuleType

from .errors import LockUnsupported

fcntl: ModuleType | None
msvcrt: ModuleType | None
try:
    import fcntl
except ImportError:
    fcntl = None
try:
    import msvcrt
except ImportError:
    msvcrt = None

# Windows locks byte ranges and refuses reads of a locked range to other handles: lock
# one byte far past any content, so the holder info at the start stays readable.
_WINDOWS_LOCK_OFFSET = 1 << 30


def try_lock(fd: int) -> bool:
    """Take the exclusive lock on the open file ``fd`` without waiting; False when held."""
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
    if msvcrt is not None:
        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    raise LockUnsupported("file locking is not available on this platform")


def unlock(fd: int) -> None:
    """Release a lock taken by :func:`try_lock` (closing ``fd`` releases it too)."""
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    elif msvcrt is not None:
        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


def write_at_start(fd: int, data: bytes) -> None:
    """Replace the file's content with ``data`` (``os.pwrite`` does not exist on Windows)."""
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, data)

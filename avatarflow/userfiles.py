"""Reading files the user points at: regular files only, never more than a limit.

A manifest or a narration file may be anything a path can name: a FIFO (reading it
would block forever), a device (``/dev/zero`` never ends) or a file of gigabytes. Each
is refused after one ``fstat``, before a byte is read.
"""

from __future__ import annotations

import os
import stat

from .errors import FileTooLarge, NotRegularFile, UnsuitableFile

__all__ = ["FileTooLarge", "NotRegularFile", "UnsuitableFile", "read_regular_file"]


def read_regular_file(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of the regular file ``path`` if it holds at most ``limit`` bytes.

    Raises :class:`NotRegularFile` or :class:`FileTooLarge` for anything else, and
    ``OSError`` when it cannot be opened (``FileNotFoundError`` included).
    """
    # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile("not a regular file")
        if info.st_size > limit:
            raise FileTooLarge(f"larger than {_size(limit)}")
        data = _read_to_end(fd, info.st_size, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:  # it grew while being read
        raise FileTooLarge(f"larger than {_size(limit)}")
    return data


def _read_to_end(fd: int, expected: int, most: int) -> bytes:
    """Up to ``most`` bytes; sized by the file's own size, so a small file costs two
    reads, not a buffer of ``most`` bytes (a warm plan reads thousands of them)."""
    chunks: list[bytes] = []
    left = most
    while left > 0:
        chunk = os.read(fd, min(left, max(expected + 1, 1 << 16)))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _size(limit: int) -> str:
    if limit % (1024 * 1024) == 0:
        return f"{limit // (1024 * 1024)} MB"
    return f"{limit // 1024} KB"

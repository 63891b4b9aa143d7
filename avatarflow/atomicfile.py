"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every file avatarflow (and its emulator) replaces is written to a temp file in the same
folder (or in a ``temp_dir`` on the same filesystem, to keep it out of a folder git
commits) and renamed over the target. The temp name follows one rule,
``.NAME.avatarflow-tmp-XXXXXXXX``, so that :func:`remove_stale` can sweep what a killed
process left behind (and a ``.gitignore`` line can keep it out of a commit).

``durable=True`` (the default) fsyncs the file before the rename and the folder after
it: the write survives a power cut. ``durable=False`` is for disposable caches, where a
torn or missing file after a crash is read as an empty cache; it still never shows a
half-written file to a running reader.

This module uses the standard library only, so the emulator can share it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

TEMP_MARK = ".avatarflow-tmp-"
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def is_temp_name(name: str) -> bool:
    """True for the name of a temp file written by this module."""
    return name.startswith(".") and TEMP_MARK in name


def new_temp(
    path: Path, *, private: bool = False, suffix: str = "", temp_dir: Path | None = None
) -> Path:
    """An empty temp file beside ``path`` (or in ``temp_dir``, on the same filesystem)
    for the caller to fill and :func:`commit`.

    Made with the umask's permissions like an ordinary file, or 0600 when ``private``;
    ``suffix`` ends its name (ffmpeg picks a format by it).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = temp_dir if temp_dir is not None else path.parent
    fd, name = tempfile.mkstemp(prefix=f".{path.name}{TEMP_MARK}", suffix=suffix, dir=folder)
    os.close(fd)
    if not private:
        os.chmod(name, 0o666 & ~_UMASK)  # mkstemp makes 0600
    return Path(name)


def commit(temp: Path, path: Path, *, durable: bool = True) -> None:
    """Rename the filled ``temp`` over ``path``; with ``durable`` the folder is fsynced."""
    os.replace(temp, path)
    if durable:
        fsync_folder(path.parent)


def discard(temp: Path) -> None:
    with contextlib.suppress(OSError):
        temp.unlink()


@contextlib.contextmanager
def replacing(
    path: Path,
    *,
    durable: bool = True,
    private: bool = False,
    before_commit: Callable[[], None] | None = None,
    temp_dir: Path | None = None,
) -> Iterator[IO[bytes]]:
    """``with replacing(path) as handle: handle.write(...)`` — ``path`` changes, all at
    once, when the block ends without an exception; otherwise the temp file goes.

    ``before_commit`` runs after the data is written (and fsynced), before the rename.
    """
    temp = new_temp(path, private=private, temp_dir=temp_dir)
    try:
        with open(temp, "wb") as handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        if before_commit is not None:
            before_commit()
        commit(temp, path, durable=durable)
    except BaseException:
        discard(temp)
        raise


def write_bytes(
    path: Path,
    data: bytes,
    *,
    durable: bool = True,
    private: bool = False,
    before_commit: Callable[[], None] | None = None,
    temp_dir: Path | None = None,
) -> None:
    """Replace ``path`` with ``data`` atomically (see :func:`replacing`)."""
    with replacing(
        path, durable=durable, private=private, before_commit=before_commit, temp_dir=temp_dir
    ) as out:
        out.write(data)


def move_into_place(source: Path, path: Path, *, durable: bool = False) -> None:
    """Rename a finished file (written elsewhere in the same filesystem) onto ``path``."""
    commit(source, path, durable=durable)


def remove_stale(folder: Path) -> int:
    """Delete the temp files left in ``folder`` (not below it) by writes that never
    finished; call only where no other process writes (under the state lock)."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        if is_temp_name(entry.name) and entry.is_file(follow_symlinks=False):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed += 1
    return removed


def fsync_folder(folder: Path) -> None:
    """Persist a folder's entries (a rename); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

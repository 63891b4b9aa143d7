"""Local cache of output hashes keyed by file stat, like git's index.

Content hashes stay the truth: a file's sha256 is reused only while its stat (size,
mtime_ns, inode, ctime_ns) is exactly what it was when avatarflow hashed it. A file
modified within ``RACY_NS`` of the cache's own write could change again without its
mtime moving (coarse filesystem clocks), so such an entry is "racy" and re-hashed, as
git does. The cache is per machine (inodes), never committed, and disposable: a missing,
unreadable or corrupt cache is an empty one.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import operator
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from . import atomicfile

FILE_NAME = "outputs.json"
VERSION = 1
RACY_NS = 2_000_000_000  # mtime granularity of the coarsest filesystems we meet (FAT: 2 s)

StatKey = tuple[int, int, int, int]


# A stat's (size, mtime_ns, inode, ctime_ns), in C: it is mapped over thousands of stats.
stat_key: Callable[[os.stat_result], StatKey] = operator.attrgetter(
    "st_size", "st_mtime_ns", "st_ino", "st_ctime_ns"
)


class OpenFolder:
    """Files of one folder looked up by name in the folder opened once (through any
    symlink as it points now): the kernel then takes one step per name, not one per
    component of its path (a third less time for the 10,000 stats of a catalogue's
    records). Where ``dir_fd`` is not supported, or the folder cannot be opened, each
    name is joined to the folder's path, with the same answers."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = None
        if os.stat in os.supports_dir_fd:
            with contextlib.suppress(OSError):
                self.fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))

    def stat(self, name: str, *, follow: bool = False) -> os.stat_result:
        """The ``lstat`` of ``name`` (its ``stat`` with ``follow``)."""
        if self.fd is None:
            return os.stat(f"{self.path}{os.sep}{name}", follow_symlinks=follow)
        return os.stat(name, dir_fd=self.fd, follow_symlinks=follow)

    def stats(self, names: Iterable[str], *, follow: bool = False) -> list[os.stat_result]:
        """``stat`` of each of ``names``, in order; raises as ``stat`` does. One pass
        in C: at catalogue scale a Python call per name costs as much as the system
        call it makes."""
        return list(self.each_stat(names, follow=follow))

    def each_stat(self, names: Iterable[str], *, follow: bool = False) -> Iterator[os.stat_result]:
        """``stats`` one at a time (each freed once looked at: tens of thousands kept
        at once cost the cycle collector more than their system calls)."""
        if self.fd is None:
            joined = (f"{self.path}{os.sep}{name}" for name in names)
            return map(functools.partial(os.stat, follow_symlinks=follow), joined)
        return map(functools.partial(os.stat, dir_fd=self.fd, follow_symlinks=follow), names)

    def stats_or_none(self, names: list[str]) -> list[os.stat_result | None]:
        """``stats``, with None for a name that is not there (or whose folder is not)."""
        try:
            return self.stats(names)  # type: ignore[return-value]
        except (FileNotFoundError, NotADirectoryError):
            return [self._stat_or_none(name) for name in names]

    def _stat_or_none(self, name: str) -> os.stat_result | None:
        try:
            return self.stat(name)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> OpenFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class StatCache:
    """Output path (as stored in state) → (stat key, sha256), loaded from ``path``."""

    def __init__(self, path: Path, prepare: Callable[[], object] | None = None) -> None:
        self.path = path
        self.prepare = prepare  # makes the cache's folder before its first write
        self.bytes_hashed = 0  # what this process read to hash; tests prove reuse with it
        self._written_ns, self._entries = _load(path)
        self._dirty = False

    def sha256(
        self,
        key: str,
        file: str | os.PathLike[str],
        st: os.stat_result | None = None,
        *,
        verify: bool = False,
    ) -> str:
        """The sha256 of ``file`` (whose stat the caller may pass), from the cache when
        that stat is unchanged and not racy."""
        before = st if st is not None else os.stat(file)
        entry = self._entries.get(key)
        if not verify and entry and entry[0] == stat_key(before) and not self._racy(before):
            return entry[1]
        digest = sha256_file(file)
        self.bytes_hashed += before.st_size
        self._remember(key, before, file, digest)
        return digest

    def record(self, key: str, file: str | os.PathLike[str], digest: str) -> None:
        """Remember ``digest`` for ``file``, which the caller has just hashed itself."""
        self._remember(key, os.stat(file), file, digest)

    def save(self) -> None:
        """Write the cache if it changed. Not fsynced: a torn cache is read as empty."""
        if not self._dirty:
            return
        written_ns = time.time_ns()
        data = {
            "version": VERSION,
            "written_ns": written_ns,
            "entries": {k: [*stat, sha] for k, (stat, sha) in sorted(self._entries.items())},
        }
        if self.prepare is not None:
            self.prepare()
        if not write_json(self.path, data):
            return  # a read-only checkout still plans; it only hashes again next time
        self._written_ns = written_ns
        self._dirty = False

    def _remember(
        self, key: str, before: os.stat_result, file: str | os.PathLike[str], digest: str
    ) -> None:
        # A file that changed while it was read is not cached: its stat vouches for nothing.
        if stat_key(os.stat(file)) != stat_key(before):
            self._entries.pop(key, None)
        else:
            self._entries[key] = (stat_key(before), digest)
        self._dirty = True

    def _racy(self, st: os.stat_result) -> bool:
        return st.st_mtime_ns >= self._written_ns - RACY_NS


def write_json(path: Path, data: dict[str, Any]) -> bool:
    """Write a disposable cache file atomically, not fsynced (a torn one fails to parse
    and is rebuilt); False when it cannot be written. Key by key through the C encoder:
    one string of a whole cache (megabytes at 10,000 videos) would top a plan's memory."""
    try:
        with atomicfile.replacing(path, durable=False, private=True) as handle:
            handle.write(b"{")
            for index, (key, value) in enumerate(data.items()):
                head = f"{',' if index else ''}{json.dumps(key)}:"
                handle.write((head + json.dumps(value, separators=(",", ":"))).encode())
            handle.write(b"}")
    except OSError:
        return False
    return True


def _load(path: Path) -> tuple[int, dict[str, tuple[StatKey, str]]]:
    try:
        data: Any = json.loads(path.read_text("utf-8"))
        if data.get("version") != VERSION:
            return 0, {}
        entries: dict[str, tuple[StatKey, str]] = {}
        for key, (size, mtime, ino, ctime, sha) in data["entries"].items():
            stat = (int(size), int(mtime), int(ino), int(ctime))
            if not isinstance(key, str) or not isinstance(sha, str):
                return 0, {}
            entries[key] = (stat, sha)
        return int(data["written_ns"]), entries
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return 0, {}

"""The local state store: a directory beside the manifest, meant to be committed.

Layout::

    .avatarflow/<name>/state.json           {"format": 1, "lineage": "…", "name": "…"}
    .avatarflow/<name>/videos/<id>.json     one record per video, sorted keys
    .avatarflow/<name>/state.lock           the lock (not committed)

Why one file per video rather than one big file: two branches that render different
videos touch different files, so ``git merge`` never conflicts, and a write after a
transition rewrites one small file instead of the whole state (O(1) per transition at
any catalogue size).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from .. import atomicfile
from ..errors import Location, StateError
from ..lock import LockInfo, StateLock, force_unlock
from ..statcache import CACHE_DIR, StatKey, stat_key
from ..state import (
    State,
    StateMeta,
    StateRecord,
    atomic_write,
    dump_json,
    parse_json,
    parse_meta,
    parse_record_text,
)

META_FILE = "state.json"
RECORDS_DIR = "videos"


class LocalStore:
    """A state kept as files in ``directory`` (``display`` is how messages show it)."""

    def __init__(self, directory: Path, display: str) -> None:
        self.directory = directory
        self.display = display
        # What the last load read: each file's stat, taken before it was read, and the
        # record names listed. The plan memo compares them on the next run.
        self.read_stats: dict[str, StatKey] = {}  # by path inside ``directory``
        self.listing: list[str] | None = None

    def record_path(self, video_id: str) -> Path:
        return self.directory / RECORDS_DIR / f"{video_id}.json"

    # -- reading -------------------------------------------------------------------
    def load(self) -> State:
        """Read the state; an absent state is an empty one."""
        state = State(store=self)
        self.read_stats, self.listing = {}, None
        meta_path = self.directory / META_FILE
        records_dir = self.directory / RECORDS_DIR
        if not meta_path.exists():
            if records_dir.is_dir() and any(records_dir.iterdir()):
                raise StateError(
                    f"{META_FILE} is missing but video records exist; restore it from git",
                    Location(f"{self.display}/{META_FILE}"),
                )
            return state
        shown = f"{self.display}/{META_FILE}"
        text = self._read_text(meta_path, shown, META_FILE)
        state.meta = parse_meta(parse_json(text, shown), shown)
        if records_dir.is_dir():
            names = sorted(n for n in os.listdir(records_dir) if n.endswith(".json"))
            self.listing = names
            folder = str(records_dir)
            for name in names:  # names and str paths: cheaper than Path objects, 10,000 times
                shown = f"{self.display}/{RECORDS_DIR}/{name}"
                path = os.path.join(folder, name)
                text = self._read_text(path, shown, f"{RECORDS_DIR}/{name}")
                video_id = name.removesuffix(".json")
                stored_as = f"the file is named {name}"
                state.records[video_id] = parse_record_text(text, video_id, shown, stored_as)
        return state

    def _read_text(self, path: str | Path, shown: str, inside: str) -> str:
        try:
            with open(path, encoding="utf-8") as handle:
                self.read_stats[inside] = stat_key(os.fstat(handle.fileno()))
                return handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise StateError(f"cannot read state file: {exc}", Location(shown)) from None

    # -- writing -------------------------------------------------------------------
    def write_meta(self, meta: StateMeta) -> None:
        atomic_write(self.directory / META_FILE, dump_json(meta))

    def write_record(self, record: StateRecord) -> None:
        atomic_write(self.record_path(record.video_id), dump_json(record))

    def delete_record(self, video_id: str) -> None:
        self.record_path(video_id).unlink(missing_ok=True)

    def replace(self, meta: StateMeta, records: Mapping[str, StateRecord]) -> None:
        """Make this state a copy of ``meta`` and ``records`` (records first, meta last)."""
        records_dir = self.directory / RECORDS_DIR
        stale = {p.stem for p in records_dir.glob("*.json")} - set(records)
        for record in records.values():
            self.write_record(record)
        for video_id in stale:
            self.delete_record(video_id)
        self.write_meta(meta)

    def remove_stale_temp_files(self) -> int:
        """Temp files of writes cut short (state, and the stat cache kept beside it)."""
        folders = (self.directory, self.directory / RECORDS_DIR, self.directory / CACHE_DIR)
        return sum(atomicfile.remove_stale(folder) for folder in folders)

    # -- locking -------------------------------------------------------------------
    def lock(
        self, command: str, timeout: float = 0.0, on_wait: Callable[[str], None] | None = None
    ) -> StateLock:
        return StateLock(self.directory, command, timeout, on_wait)

    def force_unlock(self, lock_id: str) -> LockInfo:
        return force_unlock(self.directory, lock_id)

"""The local state store: a directory beside the manifest, meant to be committed.

Layout::

    .avatarflow/<name>/state.json               {"format": 3, "lineage": "…", "name": "…"}
    .avatarflow/<name>/renders/<hash>.json      one record per render, named by request hash
    .avatarflow/<name>/.cache/                  per machine, with its own .gitignore ("*"):
                                                the lock, the stat cache, checkout.json, temps

Why one file per render: two branches that render different videos, or the same video
differently, write different files, so ``git merge`` never conflicts on state; a file's
content comes only from the request and the service's answers, so two clones recording
the same render write the same bytes; and a re-download, a pull or a plan writes no
committed file at all (:func:`avatarflow.renders.to_render` says when nothing changed).

Which video uses which render follows from the manifest: :meth:`LocalStore.bind` turns
the renders into the per-video records the planner and the runner work on.

The per-video layout of state format 1 (``videos/<id>.json``) is read and migrated
losslessly: in memory on load, on disk by the first write (renders first, then the
format switch in ``state.json``, then the old folder goes).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from .. import atomicfile
from ..errors import Location, StateError
from ..lock import LockInfo, StateLock, force_unlock
from ..machine import CACHE_DIR, FACTS_FILE, MachineFacts, cache_dir, remove_stale_temps
from ..renders import RenderRecord, dump
from ..statcache import StatKey, stat_key
from ..state import (
    State,
    StateMeta,
    atomic_write,
    dump_json,
    parse_json,
    parse_meta,
    parse_record_text,
)
from .rendered import RENDERS_FORMAT, RenderKeyedStore, current_meta, renders_meta

META_FILE = "state.json"
RECORDS_DIR = "renders"
V1_RECORDS_DIR = "videos"
__all__ = ["META_FILE", "RECORDS_DIR", "RENDERS_FORMAT", "V1_RECORDS_DIR", "LocalStore"]


class LocalStore(RenderKeyedStore):
    """A state kept as files in ``directory`` (``display`` is how messages show it)."""

    def __init__(self, directory: Path, display: str) -> None:
        super().__init__(MachineFacts(directory / CACHE_DIR / FACTS_FILE))
        self.directory = directory
        self.display = display
        # What the last load read: each file's stat, taken before it was read, and the
        # record names listed. The plan memo compares them on the next run.
        self.read_stats: dict[str, StatKey] = {}  # by path inside ``directory``
        self.listing: list[str] | None = None

    def render_path(self, request_hash: str) -> Path:
        return self.directory / RECORDS_DIR / f"{request_hash}.json"

    # -- reading -------------------------------------------------------------------
    def load(self) -> State:
        """Read the state; an absent state is an empty one. Bind it before use."""
        state = State(store=self)
        self.read_stats, self.listing, self.renders, self.fingerprints = {}, None, {}, {}
        self._migrate_from = None
        meta_path = self.directory / META_FILE
        if not meta_path.exists():
            for folder in (RECORDS_DIR, V1_RECORDS_DIR):
                records = self.directory / folder
                if records.is_dir() and any(records.glob("*.json")):
                    raise StateError(
                        f"{META_FILE} is missing but render records exist; restore it from git",
                        Location(f"{self.display}/{META_FILE}"),
                    )
            self.facts = MachineFacts.load(self.directory)
            return state
        shown = f"{self.display}/{META_FILE}"
        text = self._read_text(meta_path, shown, META_FILE)
        data = parse_json(text, shown)
        state.meta = current_meta(data, shown)
        if state.meta is not None:
            self._load_renders()
        else:
            state.meta = parse_meta(data, shown)
            self._load_v1()
            self._migrate_from = state.meta.format
        self.facts = MachineFacts.load(self.directory)
        facts_path = self.directory / CACHE_DIR / FACTS_FILE
        with contextlib.suppress(OSError):
            self.read_stats[f"{CACHE_DIR}/{FACTS_FILE}"] = stat_key(os.stat(facts_path))
        return state

    def _load_renders(self) -> None:
        from ..renders import RenderRecord as Model
        from ..state import _validate

        for name, shown, text in self._record_files(RECORDS_DIR):
            render = _validate(Model, parse_json(text, shown), shown)
            if render.request_hash != name.removesuffix(".json"):
                raise StateError(
                    f"record is for request {render.request_hash[:12]} but the file is "
                    f"named {name}",
                    Location(shown),
                )
            self._note(render, text.encode())

    def _load_v1(self) -> None:
        """Format 1: one record per video (see :meth:`RenderKeyedStore.absorb_v1`)."""
        records = []
        for name, shown, text in self._record_files(V1_RECORDS_DIR):
            video_id = name.removesuffix(".json")
            records.append(parse_record_text(text, video_id, shown, f"the file is named {name}"))
        self.absorb_v1(records)

    def _record_files(self, subdir: str) -> Iterator[tuple[str, str, str]]:
        """Each ``*.json`` of ``subdir`` in name order: (name, path shown, text); the
        listing is kept for the plan memo."""
        folder = self.directory / subdir
        if not folder.is_dir():
            return
        names = sorted(n for n in os.listdir(folder) if n.endswith(".json"))
        self.listing = names
        for name in names:
            shown = f"{self.display}/{subdir}/{name}"
            yield (
                name,
                shown,
                self._read_text(os.path.join(folder, name), shown, f"{subdir}/{name}"),
            )

    def _read_text(self, path: str | Path, shown: str, inside: str) -> str:
        try:
            with open(path, encoding="utf-8") as handle:
                self.read_stats[inside] = stat_key(os.fstat(handle.fileno()))
                return handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise StateError(f"cannot read state file: {exc}", Location(shown)) from None

    # -- writing -------------------------------------------------------------------
    def _write(self, path: Path, data: bytes) -> None:
        atomic_write(path, data, temp_dir=cache_dir(self.directory))

    def write_meta(self, meta: StateMeta) -> None:
        self._finish_migration(meta)
        self._write(self.directory / META_FILE, dump_json(renders_meta(meta)))

    def _put_render(self, render: RenderRecord) -> None:
        data = dump(render)
        self._write(self.render_path(render.request_hash), data)
        self._note(render, data)

    def _remove_render(self, request_hash: str) -> None:
        self.render_path(request_hash).unlink(missing_ok=True)

    def replace_renders(self, meta: StateMeta, renders: Mapping[str, RenderRecord]) -> None:
        """Make this state a copy of ``meta`` and ``renders`` (renders first, meta last)."""
        self._migrate_from = None
        folder = self.directory / RECORDS_DIR
        old = {p.stem for p in folder.glob("*.json")}
        self.renders, self.fingerprints = {}, {}
        for render in renders.values():
            self._put_render(render)
        for stale in old - set(self.renders):
            self.render_path(stale).unlink(missing_ok=True)
        self.write_meta(meta)

    def _finish_migration(self, meta: StateMeta | None) -> None:
        """Write the migrated renders, then the new format, then drop the old folder: a
        crash in between leaves a state that loads as the old format and migrates again."""
        if self._migrate_from is None:
            return
        self._migrate_from = None
        for render in self.renders.values():
            self._write(self.render_path(render.request_hash), dump(render))
        state_meta = self.directory / META_FILE
        if meta is None:
            data = parse_json(state_meta.read_text("utf-8"), META_FILE)
            meta = parse_meta(data, META_FILE)
        self._write(state_meta, dump_json(renders_meta(meta)))
        shutil.rmtree(self.directory / V1_RECORDS_DIR, ignore_errors=True)
        self.facts.save()

    def remove_stale_temp_files(self) -> int:
        """Temp files of writes cut short: state, records, and ``.cache/`` (the stat
        cache, the facts and the temp files of state writes)."""
        folders = (self.directory, self.directory / RECORDS_DIR)
        swept = sum(atomicfile.remove_stale(folder) for folder in folders)
        return swept + remove_stale_temps(self.directory)

    # -- locking -------------------------------------------------------------------
    def lock(
        self, command: str, timeout: float = 0.0, on_wait: Callable[[str], None] | None = None
    ) -> StateLock:
        return StateLock(cache_dir(self.directory), command, timeout, on_wait)

    def force_unlock(self, lock_id: str) -> LockInfo:
        return force_unlock(self.directory / CACHE_DIR, lock_id)

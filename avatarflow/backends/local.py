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
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from .. import atomicfile
from ..errors import Location, StateError
from ..lock import LockInfo, StateLock, force_unlock
from ..machine import (
    CACHE_DIR,
    FACTS_FILE,
    LastRender,
    MachineFacts,
    Materialised,
    cache_dir,
    remove_stale_temps,
)
from ..renders import RenderRecord, dump, fingerprint, from_v1, to_render, to_view
from ..statcache import StatKey, stat_key
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
RECORDS_DIR = "renders"
V1_RECORDS_DIR = "videos"
RENDERS_FORMAT = 3  # 1: per-video records; 2: a journaled remote snapshot of those
VideoUse = tuple[str, str, str]  # video id, request hash, output path (relative)


class LocalStore:
    """A state kept as files in ``directory`` (``display`` is how messages show it)."""

    def __init__(self, directory: Path, display: str) -> None:
        self.directory = directory
        self.display = display
        # What the last load read: each file's stat, taken before it was read, and the
        # record names listed. The plan memo compares them on the next run.
        self.read_stats: dict[str, StatKey] = {}  # by path inside ``directory``
        self.listing: list[str] | None = None
        self.renders: dict[str, RenderRecord] = {}
        self.fingerprints: dict[str, int] = {}  # request hash -> the stored bytes
        self.facts = MachineFacts(directory / CACHE_DIR / FACTS_FILE)
        self._migrate_from: int | None = None
        self._v1_outputs: dict[str, Materialised] = {}  # a format-1 state's, until migrated
        self._v1_latest: dict[str, LastRender] = {}
        self._views: dict[str, str] = {}  # video id -> request hash, as bound

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
        if isinstance(data, dict) and data.get("format") == RENDERS_FORMAT:
            data = {**data, "format": 1}  # the meta model's own format field
            state.meta = parse_meta(data, shown).model_copy(update={"format": RENDERS_FORMAT})
            self._load_renders()
        else:
            found = data.get("format") if isinstance(data, dict) else None
            if isinstance(found, int) and found > RENDERS_FORMAT:
                raise StateError(
                    f"state format {found} is newer than this avatarflow "
                    f"understands ({RENDERS_FORMAT}); upgrade avatarflow",
                    Location(shown),
                )
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

        folder = self.directory / RECORDS_DIR
        if not folder.is_dir():
            return
        names = sorted(n for n in os.listdir(folder) if n.endswith(".json"))
        self.listing = names
        for name in names:
            shown = f"{self.display}/{RECORDS_DIR}/{name}"
            text = self._read_text(os.path.join(folder, name), shown, f"{RECORDS_DIR}/{name}")
            render = _validate(Model, parse_json(text, shown), shown)
            if render.request_hash != name.removesuffix(".json"):
                raise StateError(
                    f"record is for request {render.request_hash[:12]} but the file is "
                    f"named {name}",
                    Location(shown),
                )
            self.renders[render.request_hash] = render
            self.fingerprints[render.request_hash] = fingerprint(text.encode())

    def _load_v1(self) -> None:
        """Format 1: one record per video. Each becomes its render; two videos of one
        request (a duplicate) give one render; the outputs they name are this
        checkout's."""
        from ..renders import merge

        folder = self.directory / V1_RECORDS_DIR
        if not folder.is_dir():
            return
        names = sorted(n for n in os.listdir(folder) if n.endswith(".json"))
        self.listing = names
        self._v1_outputs, self._v1_latest = {}, {}
        for name in names:
            shown = f"{self.display}/{V1_RECORDS_DIR}/{name}"
            path = os.path.join(folder, name)
            text = self._read_text(path, shown, f"{V1_RECORDS_DIR}/{name}")
            video_id = name.removesuffix(".json")
            record = parse_record_text(text, video_id, shown, f"the file is named {name}")
            render, output = from_v1(record)
            if render is None:
                continue
            known = self.renders.get(render.request_hash)
            self.renders[render.request_hash] = merge(known, render) if known else render
            self.fingerprints[render.request_hash] = fingerprint(dump(render))
            self._v1_latest[video_id] = LastRender(render.request_hash, dict(record.sources))
            if output is not None and record.status == "downloaded":
                self._v1_outputs[video_id] = Materialised(
                    render.request_hash, output.path, output.size, output.sha256
                )

    def _read_text(self, path: str | Path, shown: str, inside: str) -> str:
        try:
            with open(path, encoding="utf-8") as handle:
                self.read_stats[inside] = stat_key(os.fstat(handle.fileno()))
                return handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise StateError(f"cannot read state file: {exc}", Location(shown)) from None

    @property
    def needs_migration(self) -> bool:
        return self._migrate_from is not None

    def bind(self, state: State, videos: Iterable[VideoUse]) -> None:
        """The per-video records of the manifest's videos: each video's render by its
        request hash, its output where the manifest puts it. Outputs this checkout wrote
        for videos no longer in the manifest come as records too, so that the plan can
        remove them."""
        if self.needs_migration:
            for video_id, item in self._v1_outputs.items():
                self.facts.outputs.setdefault(video_id, item)
            for video_id, last in self._v1_latest.items():
                self.facts.latest.setdefault(video_id, last)
        state.records = {}
        self._views = {}
        wanted: set[str] = set()
        uses = list(videos)
        for video_id, request_hash, output_path in uses:
            wanted.add(video_id)
            render = self.renders.get(request_hash)
            if render is None:
                continue
            view = to_view(render, video_id, output_path)
            view.serial = self.fingerprints.get(request_hash, 0)
            state.records[video_id] = view
            self._views[video_id] = request_hash
        for video_id, item in self.facts.outputs.items():
            render = self.renders.get(item.request_hash)
            if video_id in wanted or render is None:
                continue
            # An output this checkout wrote for a video gone from the manifest.
            state.records[video_id] = to_view(render, video_id, item.path)
        state.previous = self._previous(wanted, {vid: h for vid, h, _ in uses})

    def _previous(self, wanted: set[str], hashes: dict[str, str]) -> dict[str, StateRecord]:
        """Per video, the render this checkout last had for it; for a video new here,
        the render of a removed video with the same request (a rename)."""
        previous: dict[str, StateRecord] = {}
        by_hash = {
            last.request_hash: vid for vid, last in self.facts.latest.items() if vid not in wanted
        }
        for video_id, request_hash in hashes.items():
            last = self.facts.latest.get(video_id)
            was = video_id
            if last is None and request_hash in by_hash:
                was = by_hash[request_hash]
                last = self.facts.latest[was]
            if last is None:
                continue
            render = self.renders.get(last.request_hash)
            if render is not None:
                view = to_view(render, was, None)
            elif request_hash in self.renders:
                # Its record went (a git revert of the commit that paid for it): what is
                # on disk is still another render's, which is all a reuse needs to know.
                view = to_view(self.renders[request_hash], was, None)
                view.input_hash = last.request_hash
            else:
                continue
            view.sources = dict(last.sources)
            previous[video_id] = view
        return previous

    def previous_render(self, video_id: str) -> RenderRecord | None:
        """The render this checkout last materialised for ``video_id``."""
        item = self.facts.outputs.get(video_id)
        return self.renders.get(item.request_hash) if item is not None else None

    # -- writing -------------------------------------------------------------------
    def _write(self, path: Path, data: bytes) -> None:
        atomic_write(path, data, temp_dir=cache_dir(self.directory))

    def write_meta(self, meta: StateMeta) -> None:
        self._finish_migration(meta)
        self._write(self.directory / META_FILE, dump_json(_renders_meta(meta)))

    def write_record(self, record: StateRecord) -> None:
        """Persist what ``record`` changes of its render; outputs are this machine's."""
        self._finish_migration(None)
        stored = self.renders.get(record.input_hash)
        render = to_render(record, stored)
        if render is not None:
            data = dump(render)
            self._write(self.render_path(render.request_hash), data)
            self.renders[render.request_hash] = render
            self.fingerprints[render.request_hash] = fingerprint(data)
        self.facts.latest[record.video_id] = LastRender(record.input_hash, dict(record.sources))
        if record.status == "downloaded" and record.output is not None:
            output = record.output
            self.facts.outputs[record.video_id] = Materialised(
                record.input_hash, output.path, output.size, output.sha256
            )
        self.facts.save(now=False)  # flushed by State.flush at the end of the command

    def delete_record(self, video_id: str) -> None:
        """A video removed from the manifest: its render stays as history (see prune);
        this checkout forgets the output it wrote for it."""
        self.facts.outputs.pop(video_id, None)
        self.facts.latest.pop(video_id, None)
        self.facts.save()

    def delete_render(self, request_hash: str) -> None:
        self._finish_migration(None)
        self.render_path(request_hash).unlink(missing_ok=True)
        self.renders.pop(request_hash, None)

    def replace(self, meta: StateMeta, records: Mapping[str, StateRecord]) -> None:
        """Make this state a copy of ``meta`` and ``records`` (records first, meta last)."""
        self._migrate_from = None
        folder = self.directory / RECORDS_DIR
        old = {p.stem for p in folder.glob("*.json")}
        self.renders = {}
        for record in records.values():
            render = to_render(record, self.renders.get(record.input_hash))
            if render is not None:
                self._write(self.render_path(render.request_hash), dump(render))
                self.renders[render.request_hash] = render
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
        self._write(state_meta, dump_json(_renders_meta(meta)))
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


def _renders_meta(meta: StateMeta) -> StateMeta:
    return meta.model_copy(update={"format": RENDERS_FORMAT})

"""The remote state store: one blob per render in Azure Storage, like the local files.

Layout in the container::

    <name>                     {"meta": {"format": 3, "lineage": "…", "name": "…", …}}
    <name>.renders/<hash>.json one record per render, named by request hash: the same
                               bytes the local store commits (:func:`avatarflow.renders.dump`)
    <name>.lock                empty blob; its lease is the lock, its metadata names the holder
    <name>.index.json          {"format": 1, "records": {<hash>: [ETag, text]}}: the records
                               as a writing command last saw them (a cache, never the truth)

The records are the local store's (:mod:`avatarflow.backends.rendered`): which video uses
which render follows from the manifest, so a rename, a move or a revert finds the
render that exists already; expiry is known offline from the record; per-machine facts
(which outputs this checkout wrote, the jobs it found gone) stay in the checkout's
uncommitted ``.cache/`` folder, never in the container. A download, a pull or a plan
writes no blob: a record is written only when something is paid or changes state, and
a final record is never written again.

Every write is conditional. A render nobody recorded yet is created with
``If-None-Match: *``; one this store read is replaced with ``If-Match`` on its ETag.
When the condition fails another machine recorded the same request meanwhile: its
record is read back; the same bytes (two clones recording one render write the same
bytes), or a final record of the same job, is kept as it is; two different paid jobs
of one request are merged (:func:`avatarflow.renders.merge`, both kept as paid
history) and written under ``If-Match`` on the ETag just read. The meta blob is written
the same way, so two first writers of an empty state cannot both create it.

Loading is one GET of the meta blob, one listing of ``<name>.renders/`` (5,000 names and
ETags a page) and the GETs of the records this checkout has not read before, a few at
a time: the records read are kept with their ETags in the checkout's uncommitted
``.cache/remote-renders.json``, and a record whose listed ETag is the cached one is
taken from there (a record changes only with its ETag; final ones never change). The
cache is disposable: missing or damaged, every record is read again.

A new checkout (a fresh clone, every CI runner) has no such cache, and one GET per
record made its first load take seconds at a thousand renders. So the container keeps
the same cache for everyone: ``<name>.index.json``, written by a writing command
(``apply``, ``state push``) once :data:`INDEX_AFTER` or more of the records it knows are
not in it as they are now. A load that would read that many records one by one reads
the index first and takes from it each record whose listed ETag is the one the index
gives (and whose text is a valid record of that request); the others are read from
their blobs. Every entry is checked against the listing, so an index that is stale,
torn, written by two machines at once or tampered with costs GETs, never a wrong
record. ``plan`` and ``status`` only read it.

An older remote state (format 1, a snapshot blob ``{"meta", "videos"}``; format 2, the
same snapshot naming an append-blob journal, see :mod:`avatarflow.backends.journal`)
is read losslessly as the local format-1 files are: each per-video record becomes its
render, the outputs it names become this checkout's facts. The first writing command
migrates it: every render first (conditional creates; a rerun after a crash finds them
written already), then the meta blob under ``If-Match`` on the old snapshot's ETag, then
the old journals go. The meta keeps the ``{"meta": …}`` shape with ``format: 3`` so
that an avatarflow that predates render records refuses the state ("upgrade
avatarflow") rather than reading an empty one.

Why a separate lock blob: a lease on the state blob itself would make every write
carry the lease id, and ``force-unlock`` could then race a live writer's upload. The
lock blob's lease is taken for :data:`LEASE_SECONDS` and renewed by a background
thread while the command runs, so a killed apply frees it within a minute; until then
the next apply reports the holder (pid, host, user, command, time, lock id) from the
blob's metadata, and ``force-unlock LOCK_ID`` breaks the lease at once. The lock blob
keeps its name across formats, so an older avatarflow and this one exclude each other.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..bloblisting import listed
from ..errors import ConcurrentWriteError, Location, LockError, StateError, StorageError
from ..killpoints import checkpoint
from ..lock import HeldLock, LockInfo, new_lock_info, wait_for_lock
from ..machine import CACHE_DIR, MachineFacts, cache_dir, remove_stale_temps, write_disposable
from ..renders import RenderRecord, dump, merge
from ..state import (
    State,
    StateMeta,
    StateRecord,
    _validate,
    dump_json,
    parse_json,
    stored_data,
)
from ..storage import error_code, open_container, storage_errors
from .journal import parse_snapshot, replay
from .rendered import RenderKeyedStore, current_meta, no_facts, renders_meta

LEASE_SECONDS = 60  # the longest finite lease the service grants
LOCK_SUFFIX = ".lock"
JOURNAL_INFIX = ".journal."
RENDERS_INFIX = ".renders/"
MAX_RECORD_BYTES = 4 * 1024 * 1024  # a request is at most 500 KB; its narration as much
MAX_RENDERS = 1_000_000  # names listed before the listing is refused as not ours
READERS = 8  # records downloaded at once
INDEX_SUFFIX = ".index.json"
INDEX_AFTER = 16  # records a load would GET one by one before it reads the index instead
MAX_INDEX_BYTES = 64 * 1024 * 1024  # ~40,000 records; a larger index is neither read nor written
RECORDS_CACHE = "remote-renders.json"  # in the checkout's .cache/: records read, by ETag
WRITE_ATTEMPTS = 3  # conditional writes of one record lost to other writers in a row

_RACE = (
    "another writer changed the remote state since this command read it "
    "({}); nothing was overwritten. Run the command again"
)


class AzureBlobStore(RenderKeyedStore):
    """A state kept as the blob ``name`` and its render blobs in ``container_url``.

    ``state_dir`` is the checkout's state folder, whose uncommitted ``.cache/`` keeps
    this machine's facts; without it they live in memory only."""

    def __init__(
        self,
        container_url: str,
        name: str,
        environ: Mapping[str, str] | None = None,
        lease_seconds: int = LEASE_SECONDS,
        state_dir: Path | None = None,
    ) -> None:
        self.state_dir = state_dir
        super().__init__(self._load_facts())
        self.container_url = container_url.rstrip("/")
        self.lease_seconds = lease_seconds  # 15 to 60, the range the service grants
        self.name = name
        self.display = f"{self.container_url}/{name}"
        self._environ = dict(os.environ if environ is None else environ)
        self._container: Any = None
        # The runner writes records from worker threads; one conditional write at a time
        # keeps the ETags this store knows consistent.
        self._writing = threading.Lock()
        self._meta_etag: str | None = None
        self._etags: dict[str, str] = {}  # request hash -> ETag of its blob as last seen
        self._texts: dict[str, str] = {}  # request hash -> its blob's text at that ETag
        # Request hashes whose record as known here the shared index may lack.
        self._unindexed: set[str] = set()

    def _load_facts(self) -> MachineFacts:
        return no_facts() if self.state_dir is None else MachineFacts.load(self.state_dir)

    def _blob(self, name: str) -> Any:
        if self._container is None:
            self._container = open_container(self.container_url, self._environ)
        return self._container.get_blob_client(name)

    def _shown(self, blob_name: str) -> str:
        return f"{self.container_url}/{blob_name}"

    @property
    def renders_prefix(self) -> str:
        return self.name + RENDERS_INFIX

    def render_blob(self, request_hash: str) -> str:
        return f"{self.renders_prefix}{request_hash}.json"

    def _hash_of(self, blob_name: str) -> str:
        return blob_name.removeprefix(self.renders_prefix).removesuffix(".json")

    # -- reading -------------------------------------------------------------------
    def load(self) -> State:
        """Read the meta and every render; an absent state is an empty one. Bind it
        before use."""
        state = State(store=self)
        self.renders, self.fingerprints, self._etags, self._texts = {}, {}, {}, {}
        self._unindexed = set()
        self._migrate_from, self._meta_etag = None, None
        self.facts = self._load_facts()
        raw, etag = self._download(self.name)
        if raw is None:
            if self._list_renders():
                raise StateError(
                    "the state's meta blob is missing but render records exist; "
                    "restore it with `state push`",
                    Location(self.display),
                )
            return state
        self._meta_etag = etag
        data = parse_json(_text(raw, self.display), self.display)
        meta = data.get("meta") if isinstance(data, dict) else None
        state.meta = current_meta(meta, f"{self.display}: meta")
        if state.meta is not None:
            self._load_renders()
        else:
            state.meta = self._load_legacy(raw)
            self._migrate_from = state.meta.format
        return state

    def _load_legacy(self, raw: bytes) -> StateMeta:
        """A snapshot of per-video records, and the journal it names (formats 1 and 2)."""
        snapshot = parse_snapshot(raw, self.display)
        records = snapshot.records
        if snapshot.journal is not None:
            lines, _ = self._download(snapshot.journal)
            if lines is None:
                raise StateError(
                    f"the journal {snapshot.journal} named by the snapshot is missing; "
                    "restore the state with `state push`",
                    Location(self.display),
                )
            records = replay(lines, records, self._shown(snapshot.journal)).records
        self.absorb_v1(records.values())
        return snapshot.meta

    def _list_renders(self) -> list[tuple[str, int, str]]:
        """(blob name, size, ETag) of every render blob, listed page by page."""
        self._blob(self.name)  # first: a missing SDK is a ConfigError, not a crash
        found: list[tuple[str, int, str]] = []
        with storage_errors(self._shown(self.renders_prefix)):
            for name, size, etag in listed(self._container, self.renders_prefix):
                if len(found) >= MAX_RENDERS:
                    raise StateError(
                        f"more than {MAX_RENDERS} render records; not a state avatarflow wrote",
                        Location(self._shown(self.renders_prefix)),
                    )
                found.append((name, size, _etag(etag)))
        return found

    def _load_renders(self) -> None:
        listed = sorted(item for item in self._list_renders() if item[0].endswith(".json"))
        cached = self._read_cache()
        known = {
            name: cached[name] for name, _, etag in listed if cached.get(name, ("",))[0] == etag
        }
        unknown = [name for name, _, _ in listed if name not in known]
        kept: dict[str, tuple[str, str]] = {}
        for name, (etag, text) in known.items():
            self._keep(self._parse_render(name, text.encode()), text.encode(), etag)
            kept[name] = (etag, text)
        if len(unknown) >= INDEX_AFTER:
            etags = {name: etag for name, _, etag in listed}
            for name, (etag, text, render) in self._from_index(unknown, etags).items():
                self._keep(render, text.encode(), etag)
                kept[name] = (etag, text)
            unknown = [name for name in unknown if name not in kept]
            self._unindexed = {self._hash_of(name) for name in unknown}
        with ThreadPoolExecutor(max_workers=READERS) as pool:
            read = list(pool.map(self._read_render, unknown))
        for name, found in zip(unknown, read, strict=True):
            if found is None:
                continue  # deleted between the listing and its read (a prune)
            render, data, etag = found
            self._keep(render, data, etag)
            kept[name] = (etag, data.decode())
        if kept != cached:
            self._write_cache(kept)

    def _keep(self, render: RenderRecord, data: bytes, etag: str) -> None:
        """``render`` as its blob holds it (``data``) at ``etag``."""
        self._note(render, data)
        self._etags[render.request_hash] = etag
        self._texts[render.request_hash] = data.decode()

    # -- the shared index ----------------------------------------------------------
    @property
    def index_blob(self) -> str:
        return self.name + INDEX_SUFFIX

    def _from_index(
        self, names: list[str], etags: dict[str, str]
    ) -> dict[str, tuple[str, str, RenderRecord]]:
        """Of the blobs ``names``, those the shared index holds at their listed ETag,
        as (ETag, text, record), each text a valid record of its request. Anything else
        in the index (stale, torn, not ours) is left to be read from its blob."""
        try:
            raw, _ = self._download(self.index_blob, limit=MAX_INDEX_BYTES)
            data = json.loads(raw) if raw is not None else None
        except (StateError, ValueError):
            return {}  # too large or not JSON: a cache that cannot help
        records = data.get("records") if isinstance(data, dict) else None
        if not isinstance(records, dict):
            return {}
        found: dict[str, tuple[str, str, RenderRecord]] = {}
        for name in names:
            entry = records.get(self._hash_of(name))
            if not (isinstance(entry, list) and len(entry) == 2 and entry[0] == etags[name]):
                continue
            text = entry[1]
            if not isinstance(text, str) or len(text) > MAX_RECORD_BYTES:
                continue
            with contextlib.suppress(StateError, UnicodeError):
                found[name] = (etags[name], text, self._parse_render(name, text.encode()))
        return found

    def share(self) -> None:
        """After a writing command: the index rewritten when :data:`INDEX_AFTER` or more
        of the records this store knows are not in it as they are now. Best effort: the
        records are the state, and a failed write only leaves the next load slower."""
        if len(self._unindexed) < INDEX_AFTER or self._migrate_from is not None:
            return
        records = {h: [self._etags[h], self._texts[h]] for h in sorted(self._texts)}
        data = json.dumps({"format": 1, "records": records}, separators=(",", ":")).encode()
        if len(data) > MAX_INDEX_BYTES:
            return
        with contextlib.suppress(StorageError), storage_errors(self._shown(self.index_blob)):
            self._blob(self.index_blob).upload_blob(data, overwrite=True)
            self._unindexed = set()

    def _cache_path(self) -> Path | None:
        return None if self.state_dir is None else self.state_dir / CACHE_DIR / RECORDS_CACHE

    def _read_cache(self) -> dict[str, tuple[str, str]]:
        """Blob name -> (ETag, text) of the records this checkout read before."""
        path = self._cache_path()
        if path is None:
            return {}
        try:
            data = json.loads(path.read_text("utf-8"))
            if data.get("state") != self.display:
                return {}
            return {str(k): (str(v[0]), str(v[1])) for k, v in data["records"].items()}
        except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError):
            return {}

    def _write_cache(self, records: dict[str, tuple[str, str]]) -> None:
        path = self._cache_path()
        if path is None:
            return
        data = {"state": self.display, "records": {k: list(v) for k, v in records.items()}}
        cache_dir(path.parent.parent)
        with contextlib.suppress(OSError):  # a cache that cannot be written is read again
            write_disposable(path, json.dumps(data, sort_keys=True).encode())

    def _read_render(self, blob_name: str) -> tuple[RenderRecord, bytes, str] | None:
        raw, etag = self._download(blob_name, limit=MAX_RECORD_BYTES)
        if raw is None:
            return None
        return self._parse_render(blob_name, raw), raw, str(etag)

    def _parse_render(self, blob_name: str, raw: bytes) -> RenderRecord:
        shown = self._shown(blob_name)
        render = _validate(RenderRecord, parse_json(_text(raw, shown), shown), shown)
        expected = self._hash_of(blob_name)
        if render.request_hash != expected:
            raise StateError(
                f"record is for request {render.request_hash[:12]} but the blob is named "
                f"{expected}.json",
                Location(shown),
            )
        return render

    def _download(
        self, blob_name: str, *, limit: int | None = None
    ) -> tuple[bytes | None, str | None]:
        """The blob's bytes and ETag; ``(None, None)`` if it does not exist. A blob
        larger than ``limit`` is refused before it is read."""
        blob = self._blob(blob_name)  # first: a missing SDK is a ConfigError, not a crash
        from azure.core.exceptions import ResourceNotFoundError

        with storage_errors(self._shown(blob_name)):
            try:
                download = blob.download_blob()
                if limit is not None and (download.size or 0) > limit:
                    raise StateError(
                        f"record is {download.size} bytes, more than a render record holds "
                        f"({limit}); not a record avatarflow wrote",
                        Location(self._shown(blob_name)),
                    )
                return download.readall(), _etag(download.properties.etag)
            except ResourceNotFoundError as exc:
                if error_code(exc) != "BlobNotFound":
                    raise
                return None, None

    # -- writing -------------------------------------------------------------------
    def write_meta(self, meta: StateMeta) -> None:
        self._finish_migration(meta)
        self._write_meta(meta)

    def _write_meta(self, meta: StateMeta) -> None:
        """The meta blob, only if nobody wrote one since this store read it."""
        data = dump_json({"meta": stored_data(renders_meta(meta))})
        checkpoint("mid-state-write")
        self._meta_etag = self._upload(self.name, data, self._meta_etag, self.display)

    def _upload(self, blob_name: str, data: bytes, etag: str | None, shown: str) -> str:
        """Create ``blob_name`` (``etag`` None) or replace the version ``etag``; its new
        ETag. A failed condition is a :class:`ConcurrentWriteError`."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError

        blob = self._blob(blob_name)
        with storage_errors(shown):
            try:
                if etag is None:
                    result = blob.upload_blob(data, overwrite=False)
                else:
                    result = blob.upload_blob(
                        data,
                        overwrite=True,
                        etag=etag,
                        match_condition=MatchConditions.IfNotModified,
                    )
            except (ResourceModifiedError, ResourceExistsError):
                raise ConcurrentWriteError(_RACE.format("ETag mismatch"), Location(shown)) from None
        return _etag(result["etag"])

    def write_record(self, record: StateRecord) -> None:
        with self._writing:
            super().write_record(record)

    def _put_render(self, render: RenderRecord) -> None:
        """Write ``render`` conditionally; another machine's record of the same request
        is kept (same bytes, or a final record of the same job) or merged with ours."""
        blob_name = self.render_blob(render.request_hash)
        shown = self._shown(blob_name)
        data = dump(render)
        etag = self._etags.get(render.request_hash)
        for _ in range(WRITE_ATTEMPTS):
            checkpoint("mid-state-write")
            try:
                self._keep(render, data, self._upload(blob_name, data, etag, shown))
                self._unindexed.add(render.request_hash)
                return
            except ConcurrentWriteError:
                found = self._read_render(blob_name)
            if found is None:
                etag = None  # deleted meanwhile (a prune elsewhere): create it again
                continue
            theirs, their_data, etag = found
            self._unindexed.add(render.request_hash)  # another's record: maybe not indexed
            if their_data == data or (theirs.is_final and _same_job(theirs, render)):
                self._keep(theirs, their_data, etag)
                return
            render = merge(theirs, render)
            data = dump(render)
            if data == their_data:
                self._keep(theirs, their_data, etag)
                return
        raise ConcurrentWriteError(
            _RACE.format(f"the record of request {render.request_hash[:12]} kept changing"),
            Location(shown),
        )

    def _remove_render(self, request_hash: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        blob_name = self.render_blob(request_hash)
        with storage_errors(self._shown(blob_name)), contextlib.suppress(ResourceNotFoundError):
            self._blob(blob_name).delete_blob()
        self._etags.pop(request_hash, None)
        self._texts.pop(request_hash, None)
        self._unindexed.discard(request_hash)

    def replace_renders(self, meta: StateMeta, renders: Mapping[str, RenderRecord]) -> None:
        """Make this state a copy of ``meta`` and ``renders`` (renders first, meta last);
        renders of the state it replaces that ``renders`` lacks are deleted."""
        old = {name for name, _, _ in self._list_renders()}
        self._migrate_from = None
        for render in renders.values():
            blob_name = self.render_blob(render.request_hash)
            data = dump(render)
            with storage_errors(self._shown(blob_name)):
                result = self._blob(blob_name).upload_blob(data, overwrite=True)
            self._keep(render, data, _etag(result["etag"]))
            self._unindexed.add(render.request_hash)
        for stale in old - {self.render_blob(h) for h in renders}:
            self._remove_render(self._hash_of(stale))
        self.renders = {h: r for h, r in self.renders.items() if h in renders}
        self._texts = {h: t for h, t in self._texts.items() if h in renders}
        self._write_meta(meta)
        self._delete_legacy_journals()
        self.share()

    def _finish_migration(self, meta: StateMeta | None) -> None:
        """Write the migrated renders, then the new meta, then drop the old journals: a
        crash in between leaves a state that loads as the old format and migrates again
        (the renders written already are recognised as the same bytes)."""
        if self._migrate_from is None:
            return
        self._migrate_from = None
        old_meta = meta
        if old_meta is None:
            raw, _ = self._download(self.name)
            old_meta = parse_snapshot(raw or b"{}", self.display).meta
        for render in list(self.renders.values()):
            self._put_render(render)
        self._write_meta(old_meta)
        self._delete_legacy_journals()
        self.facts.save()

    def _delete_legacy_journals(self) -> int:
        """Delete the journals of the per-video format (never read again); the number
        deleted. Housekeeping only: without list or delete rights they stay."""
        from azure.core.exceptions import ResourceNotFoundError

        prefix = self.name + JOURNAL_INFIX
        deleted = 0
        with contextlib.suppress(StorageError), storage_errors(self._shown(prefix)):
            for name in list(self._container.list_blob_names(name_starts_with=prefix)):
                with contextlib.suppress(ResourceNotFoundError):
                    self._blob(name).delete_blob()
                    deleted += 1
        return deleted

    def remove_stale_temp_files(self) -> int:
        """Temp files of this checkout's facts cut short (blob writes leave none)."""
        return 0 if self.state_dir is None else remove_stale_temps(self.state_dir)

    # -- locking -------------------------------------------------------------------
    def lock(
        self, command: str, timeout: float = 0.0, on_wait: Callable[[str], None] | None = None
    ) -> BlobLease:
        lock_blob = self._blob(self.name + LOCK_SUFFIX)
        return BlobLease(
            lock_blob, self.display, command, timeout, on_wait, duration=self.lease_seconds
        )

    def force_unlock(self, lock_id: str) -> LockInfo:
        """Break the lease of the lock blob if its holder is ``lock_id``."""
        blob = self._blob(self.name + LOCK_SUFFIX)
        from azure.storage.blob import BlobLeaseClient

        with storage_errors(self.display + LOCK_SUFFIX):
            if not blob.exists():
                raise LockError("the remote state has never been locked; nothing to unlock")
            properties = blob.get_blob_properties()
            if properties.lease.state != "leased":
                raise LockError("the remote state is not locked; nothing to unlock")
            info = LockInfo.from_mapping(properties.metadata or {})
            if info is None:
                raise LockError(
                    "the lease holds no holder info (its holder died while taking it); "
                    f"it expires within {self.lease_seconds} s"
                )
            if info.id != lock_id:
                raise LockError(f"the lock id is {info.id}, not {lock_id}; {info.describe()}")
            BlobLeaseClient(blob).break_lease(lease_break_period=0)
        return info


def _text(raw: bytes, shown: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise StateError("remote state is not UTF-8 text", Location(shown)) from None


def _etag(value: Any) -> str:
    """An ETag in the quoted form of a download's or an upload's answer (a listing gives
    it unquoted), so that a listed and a read ETag compare equal."""
    text = str(value)
    return text if text.startswith('"') else f'"{text}"'


def _same_job(one: RenderRecord, other: RenderRecord) -> bool:
    return one.attempt == other.attempt and (
        one.job_id == other.job_id or one.job_id is None or other.job_id is None
    )


def _metadata(info: LockInfo) -> dict[str, str]:
    """Blob metadata travels in HTTP headers: ASCII only, one line."""
    values = {
        "id": info.id,
        "pid": str(info.pid),
        "host": info.host,
        "user": info.user,
        "command": info.command,
        "created": info.created,
    }
    return {k: " ".join(v.encode("ascii", "replace").decode().split()) for k, v in values.items()}


class BlobLease(HeldLock):
    """``with store.lock(command): ...`` — a renewed blob lease with holder metadata."""

    def __init__(
        self,
        blob: Any,
        display: str,
        command: str,
        timeout: float = 0.0,
        on_wait: Callable[[str], None] | None = None,
        duration: int = LEASE_SECONDS,
    ) -> None:
        self.blob = blob
        self.duration = duration
        self.where = display + LOCK_SUFFIX
        self.command = command
        self.timeout = timeout
        self.on_wait = on_wait
        self.info: LockInfo | None = None
        self._lease: Any = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def acquire(self) -> LockInfo:
        from azure.core.exceptions import ResourceExistsError

        with storage_errors(self.where):
            # Created by an earlier command (and maybe leased right now) is fine.
            with contextlib.suppress(ResourceExistsError):
                self.blob.upload_blob(b"", overwrite=False)
            wait_for_lock(self._try_lease, self._holder, self.timeout, self.on_wait, 0.5)
            info = new_lock_info(self.command)
            self.blob.set_blob_metadata(_metadata(info), lease=self._lease)
        self.info = info
        self._renewer = threading.Thread(target=self._renew, name="state-lease", daemon=True)
        self._renewer.start()
        return info

    def _try_lease(self) -> bool:
        from azure.core.exceptions import ResourceExistsError

        try:
            self._lease = self.blob.acquire_lease(lease_duration=self.duration)
        except ResourceExistsError as exc:
            if error_code(exc) == "LeaseAlreadyPresent":
                return False
            raise
        return True

    def _holder(self) -> LockInfo | None:
        return LockInfo.from_mapping(self.blob.get_blob_properties().metadata or {})

    def _renew(self) -> None:
        # A third of the lease: two renewals may fail (a network blip) before it lapses.
        while not self._stop.wait(self.duration / 3):
            # A lease that lapses or is broken lets another writer in; the ETag condition
            # of every state write then stops whichever of the two writes second.
            with contextlib.suppress(Exception):  # the SDK raises many types
                self._lease.renew()

    def release(self) -> None:
        if self._lease is None:
            return
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        from azure.core.exceptions import AzureError

        try:
            self.blob.set_blob_metadata({}, lease=self._lease)
            self._lease.release()
        except AzureError:
            pass  # broken by force-unlock, or lapsed: either way it is no longer ours
        self._lease = None

"""The remote state store: a snapshot blob and an append-blob journal in Azure Storage.

Layout in the container::

    <name>                    snapshot: {"meta": {…}, "journal": "<name>.journal.G-T",
                              "videos": {id: record}}
    <name>.journal.G-T        append blob: one JSON line per write since that snapshot
    <name>.lock               empty blob; its lease is the lock, its metadata names the holder

Why a journal: each transition appends one line (the video's whole record, ~2 KB)
instead of re-uploading every record, so a write costs the same at 100 or 10,000
videos, and loading stays two GETs (snapshot, then journal; see
:mod:`avatarflow.backends.journal` for the lines). Every append carries the journal
length this process knows (``x-ms-blob-condition-appendpos``): a writer that missed
somebody else's append gets HTTP 412 and a :class:`ConcurrentWriteError`, never a lost
update, whichever records the two touched. An append whose response was lost and that
the SDK retried is recognised as ours by reading the journal back from that position.

Compaction: when the journal outgrows the snapshot (at least ``compact_min_bytes``), or
nears the 50,000 blocks an append blob may hold, the next write instead

1. *seals* the journal: appends ``{"sealed": true}`` under the same length condition,
   so no writer that read the journal before can append to it afterwards (a plain
   Put of the snapshot could not stop such an append from landing in a journal that is
   about to be dropped);
2. creates the next journal, ``G+1`` with a random ``T`` (``If-None-Match: *``):
   a name is never reused, so a journal can never be mistaken for another;
3. writes the snapshot that names it (``If-Match`` on the snapshot's ETag);
4. deletes the journals of older generations.

A crash after 1 or 2 leaves the sealed journal named by the snapshot: loading still
reads everything, and the next write finishes the compaction. A crash after 2 or 3
leaves a journal that no snapshot names (the new one, or the sealed old one); step 4 of
a later compaction, or the next apply (``remove_stale_temp_files``), deletes it: it
drops any journal of an older generation, or of the current generation but not named,
since neither can ever be named again, and never one of a newer generation (a
compaction in flight). That cleanup is housekeeping: without list or delete rights the
journals stay, unread. A loader that finds the named journal gone read the snapshot
just before a compaction, and reads again. ``state push`` and the first write are the
same switch. A snapshot without a journal (written before the journal existed) is
upgraded by the first write; a journaled snapshot carries ``meta.format`` 2 so that an
avatarflow that predates the journal refuses it rather than reading the snapshot alone.

Why the append position rather than ``If-Match`` on the journal's ETag: both refuse a
stale writer, but a position also says where our line must be, which is how a retried
append is recognised. Why a seal line rather than the service's Seal Append Blob: the
line is guarded by the same condition as every append and needs no other operation.

Why a separate lock blob: a lease on the state blob itself would make every write
carry the lease id, and ``force-unlock`` could then race a live writer's upload. The
lock blob's lease is taken for :data:`LEASE_SECONDS` and renewed by a background
thread while the command runs, so a killed apply frees it within a minute; until then
the next apply reports the holder (pid, host, user, command, time, lock id) from the
blob's metadata, and ``force-unlock LOCK_ID`` breaks the lease at once.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..errors import ConcurrentWriteError, Location, LockError, StateError, StorageError
from ..killpoints import checkpoint
from ..lock import HeldLock, LockInfo, new_lock_info, wait_for_lock
from ..state import State, StateMeta, StateRecord
from ..storage import error_code, open_container, storage_errors
from .journal import SEAL_LINE, delete_line, parse_snapshot, put_line, replay, snapshot_bytes

LEASE_SECONDS = 60  # the longest finite lease the service grants
LOCK_SUFFIX = ".lock"
JOURNAL_INFIX = ".journal."
COMPACT_MIN_BYTES = 256 * 1024  # below this a journal costs less to read than to fold
MAX_JOURNAL_LINES = 40_000  # an append blob holds at most 50,000 blocks (one per line)
MAX_LINE_BYTES = 4 * 1024 * 1024  # the largest block of an Append Block request
LOAD_ATTEMPTS = 3

_RACE = (
    "another writer changed the remote state since this command read it "
    "({}); nothing was overwritten. Run the command again"
)


def generation_of(journal: str, prefix: str) -> int | None:
    """``G`` of a journal blob ``<prefix>G-T``; None for any other name."""
    head = journal[len(prefix) :].split("-", 1)[0] if journal.startswith(prefix) else ""
    return int(head) if head.isdigit() else None


class AzureBlobStore:
    """A state kept as the blob ``name`` (+ its journal) in the container at ``container_url``."""

    def __init__(
        self,
        container_url: str,
        name: str,
        environ: Mapping[str, str] | None = None,
        lease_seconds: int = LEASE_SECONDS,
        compact_min_bytes: int = COMPACT_MIN_BYTES,
        max_journal_lines: int = MAX_JOURNAL_LINES,
    ) -> None:
        self.container_url = container_url.rstrip("/")
        self.lease_seconds = lease_seconds  # 15 to 60, the range the service grants
        self.compact_min_bytes = compact_min_bytes
        self.max_journal_lines = max_journal_lines
        self.name = name
        self.display = f"{self.container_url}/{name}"
        self._environ = dict(os.environ if environ is None else environ)
        self._container: Any = None
        # The runner writes records from worker threads; journal appends are positional,
        # so two at once would refuse each other: one writer at a time.
        self._writing = threading.Lock()
        self._forget()

    def _forget(self) -> None:
        """What this store knows of the remote state: nothing (read or write to learn)."""
        self._etag: str | None = None  # of the snapshot this store last read or wrote
        self._snapshot_size = 0
        self._journal: str | None = None  # the journal that snapshot names
        self._journal_length = 0  # bytes of it this store has seen: the next append's offset
        self._journal_lines = 0
        self._sealed = False
        self._meta: StateMeta | None = None
        self._records: dict[str, StateRecord] = {}

    def _blob(self, name: str) -> Any:
        if self._container is None:
            self._container = open_container(self.container_url, self._environ)
        return self._container.get_blob_client(name)

    def _shown(self, blob_name: str) -> str:
        return f"{self.container_url}/{blob_name}"

    @property
    def journal_prefix(self) -> str:
        return self.name + JOURNAL_INFIX

    # -- reading -------------------------------------------------------------------
    def load(self) -> State:
        """Read the snapshot and replay its journal; an absent blob is an empty state."""
        for _ in range(LOAD_ATTEMPTS):
            if self._read():
                return State(store=self, meta=self._meta, records=dict(self._records))
        raise StateError(
            f"the journal {self._journal} named by the snapshot is missing; "
            "restore the state with `state push`",
            Location(self.display),
        )

    def _read(self) -> bool:
        """Read snapshot + journal; False when the journal vanished (compacted meanwhile)."""
        self._forget()
        raw, etag = self._download(self.name)
        if raw is None:
            return True
        snapshot = parse_snapshot(raw, self.display)
        self._etag, self._snapshot_size = etag, len(raw)
        self._meta, self._records, self._journal = snapshot.meta, snapshot.records, None
        if snapshot.journal is None:
            return True  # written before journals existed: the first write adds one
        self._journal = snapshot.journal
        lines, _ = self._download(snapshot.journal)
        if lines is None:
            return False
        replayed = replay(lines, snapshot.records, self._shown(snapshot.journal))
        self._records, self._sealed = replayed.records, replayed.sealed
        self._journal_length, self._journal_lines = len(lines), replayed.lines
        return True

    def _download(self, blob_name: str, offset: int | None = None) -> tuple[bytes | None, Any]:
        """The blob's bytes (from ``offset``) and ETag; ``(None, None)`` if it does not exist."""
        blob = self._blob(blob_name)  # first: a missing SDK is a ConfigError, not a crash
        from azure.core.exceptions import ResourceNotFoundError

        with storage_errors(self._shown(blob_name)):
            try:
                download = blob.download_blob(offset=offset)
                return download.readall(), download.properties.etag
            except ResourceNotFoundError as exc:
                if error_code(exc) != "BlobNotFound":
                    raise
                return None, None

    # -- writing -------------------------------------------------------------------
    def write_meta(self, meta: StateMeta) -> None:
        self._switch(meta, self._records)

    def write_record(self, record: StateRecord) -> None:
        with self._writing:
            self._append(put_line(record), {**self._records, record.video_id: record})

    def delete_record(self, video_id: str) -> None:
        with self._writing:
            records = {k: v for k, v in self._records.items() if k != video_id}
            self._append(delete_line(video_id), records)

    def replace(self, meta: StateMeta, records: Mapping[str, StateRecord]) -> None:
        self._switch(meta, dict(records))

    def compact(self) -> None:
        """Fold the journal into a new snapshot now (writes do it when it outgrows it)."""
        self._switch(self._require_meta(), self._records)

    def bind(self, state: State, videos: Iterable[tuple[str, str, str]]) -> None:
        """Records here are kept per video already."""

    def remove_stale_temp_files(self) -> int:
        """Delete journals left by compactions cut short; call only while holding the lock."""
        return self._delete_old_journals() if self._journal is not None else 0

    def _require_meta(self) -> StateMeta:
        if self._meta is None:
            raise StateError("state has no meta; call ensure_meta first", Location(self.display))
        return self._meta

    def _needs_compaction(self, extra: int) -> bool:
        limit = max(self._snapshot_size, self.compact_min_bytes)
        return (
            self._journal is None
            or self._sealed
            or extra > MAX_LINE_BYTES
            or self._journal_length + extra > limit
            or self._journal_lines + 1 >= self.max_journal_lines
        )

    def _append(self, line: bytes, records: dict[str, StateRecord]) -> None:
        """Persist one write as one journal line, only if the journal is as this store read it."""
        meta = self._require_meta()
        if self._needs_compaction(len(line)):
            self._switch(meta, records)  # the write goes into the new snapshot
            return
        checkpoint("mid-state-write")
        self._append_block(line)
        self._records = records

    def _append_block(self, line: bytes) -> None:
        from azure.core.exceptions import HttpResponseError

        assert self._journal is not None
        blob = self._blob(self._journal)
        with storage_errors(self._shown(self._journal)):
            try:
                blob.append_block(line, appendpos_condition=self._journal_length)
            except HttpResponseError as exc:
                if exc.status_code == 412 and self._landed(line):
                    pass  # our own append, retried by the SDK after its response was lost
                elif exc.status_code == 412 or error_code(exc) == "BlobNotFound":
                    # Appended to since this store read it, or compacted away meanwhile.
                    raise ConcurrentWriteError(
                        _RACE.format("the journal moved on"), Location(self.display)
                    ) from None
                else:
                    raise
        self._journal_length += len(line)
        self._journal_lines += 1

    def _landed(self, line: bytes) -> bool:
        """Whether ``line`` sits alone at our offset: our own append, retried by the SDK."""
        assert self._journal is not None
        tail, _ = self._download(self._journal, offset=self._journal_length)
        return tail == line

    def _switch(self, meta: StateMeta, records: dict[str, StateRecord]) -> None:
        """Write ``meta`` + ``records`` as a new snapshot with a new, empty journal."""
        if self._journal is not None and not self._sealed:
            self._append_block(SEAL_LINE)
            self._sealed = True
        journal = self._new_journal()
        checkpoint("mid-compaction")  # sealed, next journal created, snapshot not switched
        self._write_snapshot(meta, records, journal)
        checkpoint("after-compaction")  # switched, old journals not deleted yet
        self._delete_old_journals()

    def _new_journal(self) -> str:
        from azure.core import MatchConditions

        previous = generation_of(self._journal or "", self.journal_prefix) or 0
        journal = f"{self.journal_prefix}{previous + 1}-{secrets.token_hex(4)}"
        with storage_errors(self._shown(journal)):
            self._blob(journal).create_append_blob(match_condition=MatchConditions.IfMissing)
        return journal

    def _write_snapshot(
        self, meta: StateMeta, records: dict[str, StateRecord], journal: str
    ) -> None:
        """Put the snapshot, only if nobody wrote one since this store read it."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError

        data = snapshot_bytes(meta, records, journal)
        checkpoint("mid-state-write")
        with storage_errors(self.display):
            blob = self._blob(self.name)
            try:
                if self._etag is None:
                    result = blob.upload_blob(data, overwrite=False)
                else:
                    result = blob.upload_blob(
                        data,
                        overwrite=True,
                        etag=self._etag,
                        match_condition=MatchConditions.IfNotModified,
                    )
            except (ResourceModifiedError, ResourceExistsError):
                raise ConcurrentWriteError(
                    _RACE.format("ETag mismatch"), Location(self.display)
                ) from None
        self._forget()
        self._etag, self._snapshot_size, self._journal = result["etag"], len(data), journal
        self._meta, self._records = meta, records

    def _delete_old_journals(self) -> int:
        """Delete every journal that can never be named again; the number deleted.

        Housekeeping only: a credential without list or delete rights leaves them be
        (they are never read again) rather than failing a write that is already done.
        """
        from azure.core.exceptions import ResourceNotFoundError

        assert self._journal is not None
        current = generation_of(self._journal, self.journal_prefix) or 0
        deleted = 0
        with contextlib.suppress(StorageError), storage_errors(self.display + JOURNAL_INFIX):
            for name in self._container.list_blob_names(name_starts_with=self.journal_prefix):
                generation = generation_of(name, self.journal_prefix)
                # A newer generation may be a compaction in flight: never touch it.
                if name == self._journal or generation is None or generation > current:
                    continue
                with contextlib.suppress(ResourceNotFoundError):
                    self._blob(name).delete_blob()
                    deleted += 1
        return deleted

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

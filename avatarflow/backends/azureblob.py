"""The remote state store: one blob in Azure Storage, shared by a team and CI.

Layout in the container::

    <name>          {"meta": {format, lineage, name, created_at}, "videos": {id: record}}
    <name>.lock     empty blob; its lease is the lock, its metadata names the holder

Why one blob: a single Put Blob is atomic and carries one ETag, so every write is
conditional on the exact state this process read (``If-Match``, or ``If-None-Match: *``
for the first). A writer that lost a race gets HTTP 412 and a
:class:`ConcurrentWriteError`; no update is ever lost, whichever records the two
writers touched, and loading is one request at any catalogue size. The cost is that
each transition uploads the whole document: about 2 KB per video, so 200 videos send
~400 KB per transition and a full apply of them (4-5 transitions a video) ~0.4 GB.
That is fine for course-sized catalogues on a storage account; one blob per record
would make writes O(1) but loads one GET per video, and needs a lease check per write
to keep the same guarantee.

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
import threading
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import ConcurrentWriteError, Location, LockError, StateError
from ..killpoints import checkpoint
from ..lock import HeldLock, LockInfo, new_lock_info, wait_for_lock
from ..state import (
    State,
    StateMeta,
    StateRecord,
    dump_json,
    parse_json,
    parse_meta,
    parse_record,
    stored_data,
)
from ..storage import open_container, storage_errors

LEASE_SECONDS = 60  # the longest finite lease the service grants
LOCK_SUFFIX = ".lock"


class AzureBlobStore:
    """A state kept in the blob ``name`` of the container at ``container_url``."""

    def __init__(
        self,
        container_url: str,
        name: str,
        environ: Mapping[str, str] | None = None,
        lease_seconds: int = LEASE_SECONDS,
    ) -> None:
        self.container_url = container_url.rstrip("/")
        self.lease_seconds = lease_seconds  # 15 to 60, the range the service grants
        self.name = name
        self.display = f"{self.container_url}/{name}"
        self._environ = dict(os.environ if environ is None else environ)
        self._container: Any = None
        self._etag: str | None = None  # of the document this store last read or wrote
        self._meta: StateMeta | None = None
        self._records: dict[str, StateRecord] = {}

    def _blob(self, name: str) -> Any:
        if self._container is None:
            self._container = open_container(self.container_url, self._environ)
        return self._container.get_blob_client(name)

    # -- reading -------------------------------------------------------------------
    def load(self) -> State:
        """Read the state; an absent blob is an empty state."""
        blob = self._blob(self.name)  # first: a missing SDK is a ConfigError, not a crash
        from azure.core.exceptions import ResourceNotFoundError

        with storage_errors(self.display):
            try:
                download = blob.download_blob()
                raw, etag = download.readall(), download.properties.etag
            except ResourceNotFoundError as exc:
                if getattr(exc, "error_code", None) != "BlobNotFound":
                    raise
                raw, etag = None, None
        self._etag, self._meta, self._records = etag, None, {}
        if raw is not None:
            self._meta, self._records = self._parse(raw)
        return State(store=self, meta=self._meta, records=dict(self._records))

    def _parse(self, raw: bytes) -> tuple[StateMeta, dict[str, StateRecord]]:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise StateError("remote state is not UTF-8 text", Location(self.display)) from None
        data = parse_json(text, self.display)
        if not isinstance(data, dict) or not isinstance(data.get("videos", {}), dict):
            raise StateError(
                "remote state is corrupt (not a state document)", Location(self.display)
            )
        meta = parse_meta(data.get("meta"), f"{self.display}: meta")
        records = {
            video_id: parse_record(
                value, video_id, f"{self.display}: videos.{video_id}", f"is keyed {video_id!r}"
            )
            for video_id, value in sorted(data.get("videos", {}).items())
        }
        return meta, records

    # -- writing -------------------------------------------------------------------
    def write_meta(self, meta: StateMeta) -> None:
        self._upload(meta, self._records)

    def write_record(self, record: StateRecord) -> None:
        self._upload(self._meta, {**self._records, record.video_id: record})

    def delete_record(self, video_id: str) -> None:
        self._upload(self._meta, {k: v for k, v in self._records.items() if k != video_id})

    def replace(self, meta: StateMeta, records: Mapping[str, StateRecord]) -> None:
        self._upload(meta, dict(records))

    def remove_stale_temp_files(self) -> int:
        return 0  # a blob upload is atomic: there is never a partial write to clean up

    def _upload(self, meta: StateMeta | None, records: dict[str, StateRecord]) -> None:
        """Write the whole document, only if nobody wrote since this store read it."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError

        if meta is None:
            raise StateError("state has no meta; call ensure_meta first", Location(self.display))
        document = {
            "meta": stored_data(meta),
            "videos": {k: stored_data(v) for k, v in sorted(records.items())},
        }
        data = dump_json(document)
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
                    "another writer changed the remote state since this command read it "
                    "(ETag mismatch); nothing was overwritten. Run the command again",
                    Location(self.display),
                ) from None
        self._etag, self._meta, self._records = result["etag"], meta, records

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
            if getattr(exc, "error_code", None) == "LeaseAlreadyPresent":
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

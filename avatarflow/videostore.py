"""The video store: every verified output, kept by its sha256, outliving the service.

Rendered videos must survive the service's time-to-live and reach every teammate and
every branch of a checkout without a second render (DVC's remote storage is the model):

- :class:`LocalVideoStore` lives in the user's cache folder, shared by all checkouts on
  the machine, one file per object at ``videos/sha256/<2 hex>/<64 hex>``;
- :class:`BlobVideoStore` is the optional team store, one blob ``sha256/<64 hex>`` per
  object in an Azure Blob container (``service: {store: {container_url: ...}}``), with
  credentials from the environment like the remote state.

Both verify every object on the way in and on the way out (size, then sha256), so a
corrupt object is never taken for a video. Both are kill-safe: an object becomes
visible only complete (a local rename of a fsynced temp file; a blob's block list
committed only after every block is staged), and a copy out of a store lands beside its
target as an :mod:`atomicfile` temp file that is renamed into place only once verified.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, Protocol

from . import atomicfile, oslock
from .errors import CorruptObjectError, StorageError
from .killpoints import checkpoint
from .usercache import cache_folder

CHUNK = 1 << 20
TEMP_DIR = "tmp"
BLOB_PREFIX = "sha256/"
# A temp file whose writer died is removed once nobody holds its lock; one younger than
# this may be one whose writer has not taken its lock yet.
STALE_TEMP_SECONDS = 60.0
_HEX64 = re.compile(r"^[0-9a-f]{64}$")

StoreName = Literal["local", "team"]


@dataclass(frozen=True)
class StoredObject:
    """One video as the stores know it: its content hash and its length."""

    sha256: str
    size: int

    def __post_init__(self) -> None:
        if not _HEX64.match(self.sha256) or self.size < 0:
            raise ValueError(f"not a sha256 object: {self.sha256!r} ({self.size} bytes)")


class VideoStore(Protocol):
    """What both stores offer; ``name`` says which one it is in messages and plans."""

    name: StoreName
    display: str

    def has(self, obj: StoredObject) -> bool: ...
    def put(self, source: Path, obj: StoredObject) -> bool: ...
    def get(self, obj: StoredObject, dest: Path) -> bool: ...
    def delete(self, obj: StoredObject) -> None: ...


# -- copying with verification ----------------------------------------------------------
class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def _copy_verified(
    source: Readable, sink: IO[bytes], obj: StoredObject, what: str, point: str
) -> None:
    """Copy ``source`` to ``sink`` while hashing; refuse anything but ``obj``'s bytes."""
    digest = hashlib.sha256()
    size = 0
    while block := source.read(CHUNK):
        size += len(block)
        if size > obj.size:
            raise CorruptObjectError(f"{what}: longer than its {obj.size:,} bytes")
        digest.update(block)
        sink.write(block)
        checkpoint(point)
    if size != obj.size:
        raise CorruptObjectError(f"{what}: {size:,} bytes instead of {obj.size:,}")
    if digest.hexdigest() != obj.sha256:
        raise CorruptObjectError(f"{what}: sha256 differs from its name")


@contextlib.contextmanager
def _temp_beside(dest: Path) -> Iterator[tuple[IO[bytes], Path]]:
    """A locked temp file in ``dest``'s folder, removed unless the caller renamed it."""
    tmp = atomicfile.new_temp(dest)
    try:
        with open(tmp, "r+b") as handle:
            # Held while the file is written: a cleaner that can take it knows the writer
            # died. Nobody else takes the lock of a file this young.
            if not oslock.try_lock(handle.fileno()):
                raise OSError(f"{tmp.name} is locked by another process")
            yield handle, tmp
    finally:
        atomicfile.discard(tmp)


def _finish_into(handle: IO[bytes], tmp: Path, dest: Path) -> None:
    handle.flush()
    os.fsync(handle.fileno())
    atomicfile.commit(tmp, dest)


def remove_dead_temps(folder: Path, pattern: str) -> int:
    """Remove temp files matching ``pattern`` whose writer is gone (their lock is free)."""
    removed = 0
    if not folder.is_dir():
        return 0
    cutoff = time.time() - STALE_TEMP_SECONDS
    for tmp in folder.glob(pattern):
        try:
            with open(tmp, "rb") as handle:
                if os.fstat(handle.fileno()).st_mtime > cutoff:
                    continue
                if not oslock.try_lock(handle.fileno()):
                    continue  # its writer is alive
                tmp.unlink(missing_ok=True)
                removed += 1
        except FileNotFoundError:
            continue
    return removed


# -- the local store --------------------------------------------------------------------
def default_root() -> Path:
    """``videos/`` in the user's cache folder (``$AVATARFLOW_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/avatarflow``, else ``~/.cache/avatarflow``)."""
    return cache_folder() / "videos"


class LocalVideoStore:
    """Objects as files in the user's cache folder, shared by every checkout."""

    name: StoreName = "local"

    def __init__(self, root: Path | None = None) -> None:
        self.root = root if root is not None else default_root()
        self.display = str(self.root)
        self._cleaned = False

    def path(self, obj: StoredObject) -> Path:
        return self.root / "sha256" / obj.sha256[:2] / obj.sha256

    def has(self, obj: StoredObject) -> bool:
        """Present with the right length (the bytes are checked whenever it is read)."""
        try:
            return os.stat(self.path(obj)).st_size == obj.size
        except OSError:
            return False

    def put(self, source: Path, obj: StoredObject) -> bool:
        """Copy ``source`` in unless present; False when it already was."""
        if self.has(obj):
            return False
        self._clean_once()
        target = self.path(obj)
        try:
            with open(source, "rb") as reader, _temp_beside(target) as (handle, tmp):
                _copy_verified(reader, handle, obj, str(source), "mid-store-put")
                _finish_into(handle, tmp, target)
        except OSError as exc:
            raise StorageError(f"local video store {self.display}: {exc}") from None
        return True

    def get(self, obj: StoredObject, dest: Path) -> bool:
        """Copy the object to ``dest`` (verified); False when the store lacks it. A
        corrupt object is removed, so that the next put replaces it."""
        try:
            reader = open(self.path(obj), "rb")  # noqa: SIM115 (closed below)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StorageError(f"local video store {self.display}: {exc}") from None
        try:
            with reader, _temp_beside(dest) as (handle, tmp):
                _copy_verified(reader, handle, obj, f"stored object {obj.sha256[:12]}", "mid-pull")
                _finish_into(handle, tmp, dest)
        except CorruptObjectError:
            self.delete(obj)
            return False
        except OSError as exc:
            raise StorageError(f"cannot write {dest.name}: {exc}") from None
        return True

    def delete(self, obj: StoredObject) -> None:
        self.path(obj).unlink(missing_ok=True)

    def objects(self) -> Iterator[StoredObject]:
        """Every object held, by its name and length."""
        base = self.root / "sha256"
        if not base.is_dir():
            return
        for folder in sorted(base.iterdir()):
            for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
                if _HEX64.match(entry.name):
                    yield StoredObject(entry.name, entry.stat().st_size)

    def _clean_once(self) -> None:
        if not self._cleaned:
            self._cleaned = True
            base = self.root / "sha256"
            if base.is_dir():
                for folder in base.iterdir():
                    remove_dead_temps(folder, f".*{atomicfile.TEMP_MARK}*")


# -- the team store ---------------------------------------------------------------------
class _HashingReader:
    """A file read for upload, hashed and checked as the SDK reads it."""

    def __init__(self, handle: IO[bytes], obj: StoredObject, what: str) -> None:
        self._handle = handle
        self._obj = obj
        self._what = what
        self._digest = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        block = self._handle.read(size if size and size > 0 else CHUNK)
        self.size += len(block)
        self._digest.update(block)
        checkpoint("mid-store-upload")
        return block

    def verify(self) -> None:
        if self.size != self._obj.size or self._digest.hexdigest() != self._obj.sha256:
            raise CorruptObjectError(f"{self._what} changed while it was uploaded")


class BlobVideoStore:
    """Objects as block blobs ``sha256/<hex>`` in one Azure Blob container."""

    name: StoreName = "team"

    def __init__(self, container_url: str, environ: Mapping[str, str] | None = None) -> None:
        self.container_url = container_url.rstrip("/")
        self.display = self.container_url
        self._environ = dict(os.environ if environ is None else environ)
        self._container: Any = None
        self._listing: dict[str, int] | None = None

    @property
    def container(self) -> Any:
        if self._container is None:
            from .storage import open_container

            self._container = open_container(self.container_url, self._environ)
        return self._container

    def _errors(self) -> contextlib.AbstractContextManager[None]:
        from .storage import storage_errors

        return storage_errors(f"video store {self.display}")

    def listing(self) -> dict[str, int]:
        """sha256 → length of every object, read once per store (one list per 5,000)."""
        if self._listing is None:
            listing: dict[str, int] = {}
            from .bloblisting import listed

            with self._errors():
                for name, size, _ in listed(self.container, BLOB_PREFIX):
                    digest = name[len(BLOB_PREFIX) :]
                    if _HEX64.match(digest):
                        listing[digest] = size
            self._listing = listing
        return self._listing

    def has(self, obj: StoredObject) -> bool:
        return self.listing().get(obj.sha256) == obj.size

    def put(self, source: Path, obj: StoredObject) -> bool:
        """Upload ``source`` unless present. A block blob shows nothing until its block
        list is committed, so a kill mid-upload leaves no object behind."""
        from azure.core.exceptions import ResourceExistsError

        if self.has(obj):
            return False
        blob = self.container.get_blob_client(BLOB_PREFIX + obj.sha256)
        try:
            with open(source, "rb") as handle, self._errors():
                reader = _HashingReader(handle, obj, str(source))
                try:
                    blob.upload_blob(
                        reader,
                        length=obj.size,
                        overwrite=False,
                        metadata={"sha256": obj.sha256},
                        max_concurrency=1,
                    )
                except ResourceExistsError:
                    pass  # a teammate stored the same bytes meanwhile
                else:
                    try:
                        reader.verify()
                    except CorruptObjectError:
                        blob.delete_blob()
                        raise
        except OSError as exc:
            raise StorageError(f"cannot read {source}: {exc}") from None
        self.listing()[obj.sha256] = obj.size
        return True

    def get(self, obj: StoredObject, dest: Path) -> bool:
        from azure.core.exceptions import ResourceNotFoundError

        if not self.has(obj):
            return False
        blob = self.container.get_blob_client(BLOB_PREFIX + obj.sha256)
        try:
            with _temp_beside(dest) as (handle, tmp), self._errors():
                try:
                    stream = blob.download_blob(max_concurrency=1)
                except ResourceNotFoundError:
                    self.listing().pop(obj.sha256, None)
                    return False
                _copy_verified(
                    _ChunkReader(stream.chunks()),
                    handle,
                    obj,
                    f"team store object {obj.sha256[:12]}",
                    "mid-pull",
                )
                _finish_into(handle, tmp, dest)
        except CorruptObjectError:
            return False  # never deleted here: a teammate's copy may be fine to re-upload
        except OSError as exc:
            raise StorageError(f"cannot write {dest.name}: {exc}") from None
        return True

    def delete(self, obj: StoredObject) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        with self._errors(), contextlib.suppress(ResourceNotFoundError):
            self.container.delete_blob(BLOB_PREFIX + obj.sha256)
        if self._listing is not None:
            self._listing.pop(obj.sha256, None)


class _ChunkReader:
    """File-like ``read`` over an iterator of byte chunks (a blob download)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks

    def read(self, size: int = -1, /) -> bytes:
        return next(self._chunks, b"")


# -- both stores ------------------------------------------------------------------------
@dataclass
class VideoStores:
    """The local store, and the team store when the manifest names one."""

    local: LocalVideoStore
    team: BlobVideoStore | None = None

    @property
    def all(self) -> tuple[VideoStore, ...]:
        return (self.local, self.team) if self.team is not None else (self.local,)

    def where(self, obj: StoredObject) -> StoreName | None:
        """Which store would serve ``obj`` first (no bytes read)."""
        for store in self.all:
            if store.has(obj):
                return store.name
        return None

    def fetch(self, obj: StoredObject, dest: Path) -> StoreName | None:
        """Put ``obj`` at ``dest`` from the first store that holds it intact; an object
        fetched from the team store is kept in the local one too."""
        if self.local.get(obj, dest):
            return "local"
        if self.team is not None and self.team.get(obj, dest):
            self.local.put(dest, obj)
            return "team"
        return None

    def put(self, source: Path, obj: StoredObject) -> list[StoreName]:
        """Store a verified output in every store; the names of those that lacked it."""
        return [store.name for store in self.all if store.put(source, obj)]


def open_stores(container_url: str | None, environ: Mapping[str, str] | None = None) -> VideoStores:
    """The stores of one manifest: always the local one, the team one when configured."""
    team = BlobVideoStore(container_url, environ) if container_url else None
    return VideoStores(LocalVideoStore(), team)

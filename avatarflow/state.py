"""The state: which request produced which video file.

A :class:`State` is the course's meta (format, lineage, name) plus one
:class:`StateRecord` per video. It is kept by a :class:`StateStore`:

- :mod:`avatarflow.backends.local` — a directory beside the manifest, meant to be
  committed, one file per video so that two branches merge without conflicts;
- :mod:`avatarflow.backends.azureblob` — a snapshot blob and an append-blob journal in
  Azure Storage shared by a team and CI, guarded by a blob lease and written with ETag
  and append-position conditions.

Both hold the same models and feed the same planner. Each record carries its own
``serial``, bumped on every write, and a plan remembers the serials it saw, so a plan
made on a state that changed before it is applied is refused.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from . import atomicfile
from .errors import Location, StateError
from .killpoints import checkpoint
from .lifecycle import IN_FLIGHT as IN_FLIGHT
from .lifecycle import Status

if TYPE_CHECKING:
    from .lock import HeldLock, LockInfo

STATE_FORMAT = 1
M = TypeVar("M", bound="BaseModel")


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class OutputFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str  # relative to the manifest
    size: int
    sha256: str


class JobError(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str
    message: str


# Its last fields line up with renders.RenderRecord's: one record seen two ways, intended.
class StateRecord(BaseModel):
    """Everything known about one video's latest render."""

    model_config = ConfigDict(extra="forbid")

    video_id: str
    serial: int = 0
    status: Status
    input_hash: str
    synthesis_id: str
    surface: str
    attempt: int = 0  # submissions of this same request; each gets its own job id
    remote_id: str | None = None  # the job's id; assigned by the server on the preview API
    pack_index: int | None = None  # 1-based input of a packed (multi-input) job ``remote_id``
    request: dict[str, Any]
    sources: dict[str, str] = {}
    submitted_at: str | None = None
    completed_at: str | None = None
    updated_at: str
    remote_status: str | None = None
    output: OutputFile | None = None
    # A finished download about to be renamed into place: if the process dies before the
    # record says "downloaded", the next apply finds the file by this hash instead of
    # fetching it again (or paying again, should the job be gone by then).
    pending_output: OutputFile | None = None
    subtitles: OutputFile | None = None  # the external .vtt beside the video
    # The words the request says (the request above keeps only their digest), so that a
    # later plan or review can show what a re-render changes; absent in older records.
    narration: str | None = None
    duration_ms: int | None = None
    billing: dict[str, int] = {}
    error: JobError | None = None


class StateMeta(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: int
    lineage: str
    name: str
    created_at: str


def atomic_write(path: Path, data: bytes, temp_dir: Path | None = None) -> None:
    """Write ``data`` to ``path`` durably; readers see the old or the new file, never half.

    ``temp_dir`` (on the same filesystem) keeps the temp file out of a committed folder."""
    atomicfile.write_bytes(
        path,
        data,
        private=True,
        temp_dir=temp_dir,
        before_commit=lambda: checkpoint("mid-state-write"),
    )


class StateStore(Protocol):
    """Where one state is kept: a local directory, or a blob shared by a team.

    The planner and the runner see only :class:`State`; a store persists each of its
    writes before it returns and guards writers with an exclusive lock.
    """

    display: str  # for messages: a path relative to the manifest, or the blob's URL

    def load(self) -> State: ...
    def write_meta(self, meta: StateMeta) -> None: ...
    def write_record(self, record: StateRecord) -> None: ...
    def delete_record(self, video_id: str) -> None: ...
    def replace(self, meta: StateMeta, records: Mapping[str, StateRecord]) -> None: ...
    def remove_stale_temp_files(self) -> int: ...
    def bind(self, state: State, videos: Iterable[tuple[str, str, str]]) -> None: ...
    def lock(
        self, command: str, timeout: float = 0.0, on_wait: Callable[[str], None] | None = None
    ) -> HeldLock: ...
    def force_unlock(self, lock_id: str) -> LockInfo: ...


@dataclass
class State:
    """The state of one course: meta plus records, persisted through its store."""

    store: StateStore
    meta: StateMeta | None = None
    records: dict[str, StateRecord] = field(default_factory=dict)
    # Per video, the render this checkout had for it before (a store that keeps records
    # by request fills it): what an edit, a revert or a rename is compared against.
    previous: dict[str, StateRecord] = field(default_factory=dict)

    @property
    def display(self) -> str:
        return self.store.display

    @property
    def exists(self) -> bool:
        return self.meta is not None

    def bind(self, videos: Iterable[tuple[str, str, str]]) -> None:
        """Give each video (id, request hash, output path) its record, where the store
        keeps records by request rather than by video."""
        self.store.bind(self, videos)

    def serials(self) -> dict[str, int]:
        return {vid: rec.serial for vid, rec in self.records.items()}

    def ensure_meta(self, name: str) -> StateMeta:
        if self.meta is None:
            meta = StateMeta(
                format=STATE_FORMAT, lineage=str(uuid.uuid4()), name=name, created_at=utc_now()
            )
            self.store.write_meta(meta)
            self.meta = meta
        return self.meta

    def put(self, record: StateRecord) -> StateRecord:
        """Persist ``record`` (bumping its serial) before anything else happens."""
        if self.meta is None:
            raise StateError("state has no meta; call ensure_meta first", Location(self.display))
        previous = self.records.get(record.video_id)
        record = record.model_copy(
            update={"serial": (previous.serial if previous else 0) + 1, "updated_at": utc_now()}
        )
        self.store.write_record(record)
        self.records[record.video_id] = record
        return record

    def note_gone(self, job_id: str) -> None:
        """This machine found ``job_id`` gone: the next plan lists its re-render as paid."""
        facts = getattr(self.store, "facts", None)
        if facts is not None:
            facts.gone.add(job_id)
            facts.save()

    def note_stored(self, sha256: str, stores: list[str]) -> None:
        facts = getattr(self.store, "facts", None)
        if facts is not None:
            facts.mark_stored(sha256, stores)
            facts.save(now=False)

    def batch(self) -> None:
        """Let the store keep its per-machine facts lazily until :meth:`flush`."""
        facts = getattr(self.store, "facts", None)
        if facts is not None:
            facts.batched = True

    def flush(self) -> None:
        """Write what the store kept lazily and end the batch."""
        facts = getattr(self.store, "facts", None)
        if facts is not None:
            facts.batched = False
            facts.save()

    def remove_stale_temp_files(self) -> int:
        """Temp files of writes cut short by a crash; call only while holding the lock."""
        return self.store.remove_stale_temp_files()

    def forget(self, video_id: str) -> None:
        self.store.delete_record(video_id)
        self.records.pop(video_id, None)


def stored_data(model: BaseModel) -> dict[str, Any]:
    """A model as JSON data, without the fields that are not set."""
    return model.model_dump(mode="json", exclude_none=True)


def dump_json(data: BaseModel | dict[str, Any]) -> bytes:
    """As stored: sorted keys, indented, so that diffs and merges stay small."""
    if isinstance(data, BaseModel):
        data = stored_data(data)
    return (json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def parse_meta(data: Any, shown: str) -> StateMeta:
    """Validate a meta object; a newer format is refused rather than misread."""
    if (
        isinstance(data, dict)
        and isinstance(data.get("format"), int)
        and data["format"] > STATE_FORMAT
    ):
        raise StateError(
            f"state format {data['format']} is newer than this avatarflow understands "
            f"({STATE_FORMAT}); upgrade avatarflow",
            Location(shown),
        )
    return _validate(StateMeta, data, shown)


def parse_record(data: Any, video_id: str, shown: str, stored_as: str) -> StateRecord:
    """Validate a record stored under ``video_id`` (``stored_as`` says how, for messages)."""
    record = _validate(StateRecord, data, shown)
    if record.video_id != video_id:
        raise StateError(
            f"record is for video {record.video_id!r} but {stored_as}", Location(shown)
        )
    return record


def parse_record_text(text: str, video_id: str, shown: str, stored_as: str) -> StateRecord:
    """A record from its JSON text: pydantic parses valid JSON in one pass (a warm plan
    reads thousands); anything else takes the slow path that names the problem."""
    if "<<<<<<<" not in text and ">>>>>>>" not in text:
        try:
            record = StateRecord.model_validate_json(text)
        except ValidationError:
            pass
        else:
            if record.video_id == video_id:
                return record
    return parse_record(parse_json(text, shown), video_id, shown, stored_as)


def parse_json(text: str, shown: str) -> Any:
    if "<<<<<<<" in text or ">>>>>>>" in text:
        raise StateError("state file has unresolved git merge conflict markers", Location(shown))
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise StateError(
            f"state file is corrupt (invalid JSON: {exc.msg}); restore it from git",
            Location(shown, exc.lineno),
        ) from None


def _validate(model: type[M], data: Any, shown: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or None
        raise StateError(
            f"state file is corrupt ({err['msg']}); restore it from git",
            Location(shown, None, key),
        ) from None

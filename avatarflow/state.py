"""The state: which request produced which video file.

Layout (one directory per course, meant to be committed)::

    .avatarflow/<name>/state.json           {"format": 1, "lineage": "…", "name": "…"}
    .avatarflow/<name>/videos/<id>.json     one record per video, sorted keys

Why one file per video rather than one big file: two branches that render different
videos touch different files, so ``git merge`` never conflicts, and a write after a
transition rewrites one small file instead of the whole state (O(1) per transition at
any catalogue size). Each record carries its own ``serial``, bumped on every write, and
a saved plan remembers the serials it saw, so a stale plan is still refused.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import Location, StateError
from .killpoints import checkpoint

STATE_FORMAT = 1
M = TypeVar("M", bound="BaseModel")
META_FILE = "state.json"
RECORDS_DIR = "videos"

Status = Literal["submitting", "submitted", "running", "succeeded", "downloaded", "failed"]
IN_FLIGHT: frozenset[str] = frozenset({"submitting", "submitted", "running", "succeeded"})


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
    request: dict[str, Any]
    sources: dict[str, str] = {}
    submitted_at: str | None = None
    completed_at: str | None = None
    updated_at: str
    remote_status: str | None = None
    output: OutputFile | None = None
    subtitles: OutputFile | None = None
    duration_ms: int | None = None
    billing: dict[str, int] = {}
    error: JobError | None = None


class StateMeta(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: int
    lineage: str
    name: str
    created_at: str


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        checkpoint("mid-state-write")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _dump(model: BaseModel) -> bytes:
    data = model.model_dump(mode="json", exclude_none=True)
    return (json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


@dataclass
class State:
    """The state of one course: meta plus records, read from and written to a directory."""

    directory: Path
    display: str  # the directory relative to the manifest, for messages
    meta: StateMeta | None = None
    records: dict[str, StateRecord] = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        return self.meta is not None

    def record_path(self, video_id: str) -> Path:
        return self.directory / RECORDS_DIR / f"{video_id}.json"

    def serials(self) -> dict[str, int]:
        return {vid: rec.serial for vid, rec in self.records.items()}

    def ensure_meta(self, name: str) -> StateMeta:
        if self.meta is None:
            self.meta = StateMeta(
                format=STATE_FORMAT, lineage=str(uuid.uuid4()), name=name, created_at=utc_now()
            )
            atomic_write(self.directory / META_FILE, _dump(self.meta))
        return self.meta

    def put(self, record: StateRecord) -> StateRecord:
        """Persist ``record`` (bumping its serial) before anything else happens."""
        if self.meta is None:
            raise StateError("state has no meta; call ensure_meta first", Location(self.display))
        previous = self.records.get(record.video_id)
        record = record.model_copy(
            update={"serial": (previous.serial if previous else 0) + 1, "updated_at": utc_now()}
        )
        atomic_write(self.record_path(record.video_id), _dump(record))
        self.records[record.video_id] = record
        return record

    def remove_stale_temp_files(self) -> int:
        """Temp files of writes cut short by a crash; call only while holding the lock."""
        removed = 0
        for folder in (self.directory, self.directory / RECORDS_DIR):
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
                removed += 1
        return removed

    def forget(self, video_id: str) -> None:
        self.record_path(video_id).unlink(missing_ok=True)
        self.records.pop(video_id, None)


def load_state(directory: Path, display: str) -> State:
    """Read the state in ``directory``; an absent state is an empty one."""
    state = State(directory=directory, display=display)
    meta_path = directory / META_FILE
    if not meta_path.exists():
        if (directory / RECORDS_DIR).is_dir() and any((directory / RECORDS_DIR).iterdir()):
            raise StateError(
                f"{META_FILE} is missing but video records exist; restore it from git",
                Location(f"{display}/{META_FILE}"),
            )
        return state
    meta_data = _read_json(meta_path, f"{display}/{META_FILE}")
    if (
        isinstance(meta_data, dict)
        and isinstance(meta_data.get("format"), int)
        and meta_data["format"] > STATE_FORMAT
    ):
        raise StateError(
            f"state format {meta_data['format']} is newer than this avatarflow understands "
            f"({STATE_FORMAT}); upgrade avatarflow",
            Location(f"{display}/{META_FILE}"),
        )
    state.meta = _validate(StateMeta, meta_data, f"{display}/{META_FILE}")
    records_dir = directory / RECORDS_DIR
    if records_dir.is_dir():
        names = sorted(n for n in os.listdir(records_dir) if n.endswith(".json"))
        for path in (records_dir / n for n in names):  # sorting names is cheaper than paths
            shown = f"{display}/{RECORDS_DIR}/{path.name}"
            record = _read_record(path, shown)
            if record.video_id != path.stem:
                raise StateError(
                    f"record is for video {record.video_id!r} but the file is named {path.name}",
                    Location(shown),
                )
            state.records[record.video_id] = record
    return state


def _read_record(path: Path, shown: str) -> StateRecord:
    """One record; pydantic parses valid JSON in one pass (a warm plan reads thousands)."""
    text = _read_text(path, shown)
    if "<<<<<<<" not in text and ">>>>>>>" not in text:
        try:
            return StateRecord.model_validate_json(text)
        except ValidationError:
            pass  # the slow path names the problem as users know it
    return _validate(StateRecord, _parse_json(text, shown), shown)


def _read_text(path: Path, shown: str) -> str:
    try:
        return path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StateError(f"cannot read state file: {exc}", Location(shown)) from None


def _read_json(path: Path, shown: str) -> Any:
    return _parse_json(_read_text(path, shown), shown)


def _parse_json(text: str, shown: str) -> Any:
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

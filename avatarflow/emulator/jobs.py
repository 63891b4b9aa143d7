"""Jobs on disk and their state machine.

Each job is one JSON file, ``data_dir/jobs/{surface}/{id}.json``, replaced atomically on
every change, so a later emulator process on the same folder carries on: a job whose
render was interrupted is rendered again, and statuses follow from timestamps and render
completion alone::

    NotStarted --(queue_seconds passed, not stuck)--> Running
    Running --(render done, min_run_seconds passed)--> Succeeded | Failed
    Succeeded/Failed --(timeToLive after lastActionDateTime)--> gone (404, files deleted)
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avatarflow import atomicfile
from avatarflow.emulator.validation import JobRequest, request_from_dict

NOT_STARTED, RUNNING, SUCCEEDED, FAILED = "NotStarted", "Running", "Succeeded", "Failed"
ACTIVE = (NOT_STARTED, RUNNING)
FINAL = (SUCCEEDED, FAILED)
GA_CONTAINER = "batchsynthesis-output"
PREVIEW_CONTAINER = "batch-synthesis-output"


@dataclass
class RenderOutcome:
    """What the renderer produced for a job (all inputs)."""

    done_at: float
    succeeded: int
    failed: int
    files: list[str] = field(default_factory=list)
    size: int = 0
    duration_ms: int = 0
    characters: int = 0
    custom_characters: int = 0
    audio: str = "tone"
    error: dict[str, str] | None = None


@dataclass
class JobRecord:
    surface: str
    id: str
    name: str
    """The GA id, or the preview ``displayName`` (fault globs and create counts use it)."""
    internal_id: str
    created_at: float
    request: JobRequest
    body_sha256: str
    operation_id: str | None = None
    status: str = NOT_STARTED
    started_at: float | None = None
    finished_at: float | None = None
    expires_at: float | None = None
    outcome: RenderOutcome | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.surface, self.id

    @property
    def last_action(self) -> float:
        return self.finished_at or self.started_at or self.created_at

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobRecord:
        values = dict(data)
        values["request"] = request_from_dict(values["request"])
        if values.get("outcome") is not None:
            values["outcome"] = RenderOutcome(**values["outcome"])
        return cls(**values)


def blob_location(record: JobRecord, account_hash: str) -> tuple[str, str]:
    """(container, folder) of a job's outputs, like the service's blob layout."""
    destination = record.request.destination
    if destination is not None:
        folder = f"{destination.path}/{record.id}" if destination.path else record.id
        return destination.container, folder
    if record.surface == "preview":
        return PREVIEW_CONTAINER, record.id
    return GA_CONTAINER, f"{account_hash}/{record.id}"


@dataclass(frozen=True)
class Timing:
    """The clock settings of the state machine (from the emulator config)."""

    queue_seconds: float
    min_run_seconds: float
    ttl_seconds_per_hour: float


def advance(record: JobRecord, now: float, timing: Timing, is_stuck: Callable[[str], bool]) -> bool:
    """Move ``record`` along its state machine as far as ``now`` allows; True if it moved."""
    moved = False
    if (
        record.status == NOT_STARTED
        and now >= record.created_at + timing.queue_seconds
        and not is_stuck(record.name)
    ):
        record.status, record.started_at, moved = RUNNING, now, True
    if record.status == RUNNING and record.outcome is not None:
        started = record.started_at or record.created_at
        ready_at = max(record.outcome.done_at, started + timing.min_run_seconds)
        if now >= ready_at:
            record.status = SUCCEEDED if record.outcome.succeeded else FAILED
            record.finished_at = ready_at
            ttl = record.request.ttl_hours * timing.ttl_seconds_per_hour
            record.expires_at = ready_at + ttl
            moved = True
    return moved


def expired(record: JobRecord, now: float) -> bool:
    return record.expires_at is not None and now >= record.expires_at


class JobStore:
    """All jobs of a ``data_dir``, kept in memory and mirrored to one file per job.

    One emulator owns a ``data_dir`` at a time (see ``runtime``), so the memory copy is
    the truth while it runs and the files are what the next instance starts from.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = threading.RLock()
        self._jobs: dict[tuple[str, str], JobRecord] = {}
        self._operations: dict[str, tuple[str, str]] = {}

    def load(self) -> None:
        """Read every job file; unreadable files (a torn write cannot happen) are skipped."""
        with self.lock:
            for path in sorted(self.root.glob("*/*.json")):
                try:
                    record = JobRecord.from_json(json.loads(path.read_text(encoding="utf-8")))
                except (OSError, ValueError, TypeError, KeyError):
                    continue
                self._remember(record)

    def _remember(self, record: JobRecord) -> None:
        self._jobs[record.key] = record
        if record.operation_id:
            self._operations[record.operation_id] = record.key

    def _path(self, record: JobRecord) -> Path:
        return self.root / record.surface / f"{record.id}.json"

    def save(self, record: JobRecord) -> None:
        path = self._path(record)
        # Not durable: a killed process keeps its page cache; the rename keeps readers
        # from ever seeing half a file.
        data = json.dumps(record.to_json(), sort_keys=True).encode()
        atomicfile.write_bytes(path, data, durable=False)

    def add(self, record: JobRecord) -> None:
        with self.lock:
            self.save(record)
            self._remember(record)

    def remove(self, record: JobRecord) -> None:
        with self.lock:
            self._jobs.pop(record.key, None)
            if record.operation_id:
                self._operations.pop(record.operation_id, None)
            self._path(record).unlink(missing_ok=True)

    def get(self, surface: str, job_id: str) -> JobRecord | None:
        return self._jobs.get((surface, job_id))

    def by_operation(self, operation_id: str) -> JobRecord | None:
        key = self._operations.get(operation_id)
        return self._jobs.get(key) if key else None

    def all(self) -> Iterator[JobRecord]:
        return iter(list(self._jobs.values()))

    def newest_first(self, surface: str) -> list[JobRecord]:
        jobs = [r for r in self._jobs.values() if r.surface == surface]
        return sorted(jobs, key=lambda r: (r.created_at, r.id), reverse=True)

    def active_count(self) -> int:
        return sum(1 for r in self._jobs.values() if r.status in ACTIVE)

"""Render records: one paid job for one request hash, as committed in git.

A :class:`RenderRecord` holds only what the request and the service said: the job id,
the service's own timestamps, billing, duration, the output's size and sha256, the
expiry, a failure's code and message. No local clock, no machine, no serial: two clones
that record the same render write the same bytes, and once the job has a final outcome
the record never changes. Which video uses which render follows from the manifest
(video → request hash → render); what a machine has on disk is kept apart
(:mod:`avatarflow.machine`).

The runner works on per-video :class:`~avatarflow.state.StateRecord` views; this module
turns a view into its render (:func:`to_render`), a render back into a view for one
video (:func:`to_view`), merges two records of one request (:func:`merge`, also the git
merge driver), and reads the records of the older per-video format (:func:`from_v1`).
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from .state import JobError, OutputFile, StateRecord

RenderStatus = Literal["submitting", "submitted", "succeeded", "failed"]
# Failures seen by one machine, not by the service: never part of a committed record.
LOCAL_ERRORS = frozenset({"DownloadFailed", "LocalWriteFailed"})
# The service's final status, as the working record names it.
_REMOTE_STATUS = {"succeeded": "Succeeded", "failed": "Failed"}
_HOURS = re.compile(r"^PT(\d+)H$")


class RenderOutput(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    size: int
    sha256: str


class PastRender(BaseModel):
    """An earlier paid job of the same request, kept as history."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_id: str | None = None
    attempt: int = 0
    status: RenderStatus
    submitted_at: str | None = None
    completed_at: str | None = None
    output: RenderOutput | None = None
    duration_ms: int | None = None
    billing: dict[str, int] = {}
    error: JobError | None = None


class RenderRecord(BaseModel):
    """The latest paid job of one request hash, and the earlier ones as ``history``."""

    model_config = ConfigDict(extra="forbid")

    request_hash: str
    surface: str
    synthesis_id: str
    request: dict[str, Any]
    narration: str | None = None  # the words the request says (it keeps their digest only)
    status: RenderStatus
    attempt: int = 0
    job_id: str | None = None  # assigned by the server on the preview API
    pack_index: int | None = None
    submitted_at: str | None = None  # the service's createdDateTime
    completed_at: str | None = None  # the service's lastActionDateTime at the final status
    expires_at: str | None = None  # completed_at + the request's time-to-live
    output: RenderOutput | None = None
    subtitles: RenderOutput | None = None
    duration_ms: int | None = None
    billing: dict[str, int] = {}
    error: JobError | None = None
    history: list[PastRender] = []

    @property
    def is_final(self) -> bool:
        """Its job delivered a video, or failed: the record will not change again."""
        return self.output is not None or self.status == "failed"

    def past(self) -> PastRender:
        return PastRender(
            job_id=self.job_id,
            attempt=self.attempt,
            status=self.status,
            submitted_at=self.submitted_at,
            completed_at=self.completed_at,
            output=self.output,
            duration_ms=self.duration_ms,
            billing=self.billing,
            error=self.error,
        )


def dump(render: RenderRecord) -> bytes:
    """As committed: sorted keys, indented, unset fields left out."""
    data = render.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    data["request_hash"], data["status"] = render.request_hash, render.status
    return (json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def fingerprint(data: bytes) -> int:
    """A record's bytes as a number: a plan remembers it to notice a changed state."""
    return int.from_bytes(hashlib.sha256(data).digest()[:6], "big")


# -- expiry -----------------------------------------------------------------------------
def ttl_hours(request: dict[str, Any], surface: str) -> int | None:
    """The time-to-live the request asked for (the service's default when unset)."""
    props = request.get("properties") if isinstance(request.get("properties"), dict) else {}
    assert isinstance(props, dict)
    if surface == "preview":
        match = _HOURS.match(str(props.get("timeToLive") or "P31D").replace("P31D", "PT744H"))
        return int(match.group(1)) if match else None
    value = props.get("timeToLiveInHours")
    return int(value) if isinstance(value, int) else 744


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def expiry(completed_at: str | None, request: dict[str, Any], surface: str) -> str | None:
    """When the service deletes the job: its last action plus the time-to-live."""
    done, hours = parse_time(completed_at), ttl_hours(request, surface)
    if done is None or hours is None:
        return None
    return format_time(done + timedelta(hours=hours))


def expired(render: RenderRecord, now: datetime) -> bool:
    moment = parse_time(render.expires_at)
    return moment is not None and moment <= now


# -- views and renders ------------------------------------------------------------------
def _output(file: OutputFile | None) -> RenderOutput | None:
    return RenderOutput(size=file.size, sha256=file.sha256) if file else None


def to_render(record: StateRecord, stored: RenderRecord | None) -> RenderRecord | None:
    """The committed render of a working record, given what is stored for its request.

    Returns None when nothing committed changes: a download, a pull or a local failure
    of a render whose record is final, or an in-flight status that adds nothing."""
    output = _output(record.output or record.pending_output)
    status: RenderStatus = {
        "submitting": "submitting",
        "submitted": "submitted",
        "running": "submitted",
        "succeeded": "succeeded",
        "downloaded": "succeeded",
        "failed": "failed",
    }[record.status]  # type: ignore[assignment]
    error = record.error
    if error is not None and error.code in LOCAL_ERRORS:
        error = None
    if status == "failed" and stored is not None and stored.output is not None:
        return None  # the video was delivered once: a later loss is this machine's
    render = RenderRecord(
        request_hash=record.input_hash,
        surface=record.surface,
        synthesis_id=record.synthesis_id,
        request=record.request,
        narration=record.narration,
        status=status,
        attempt=record.attempt,
        job_id=record.remote_id,
        pack_index=record.pack_index,
        submitted_at=record.submitted_at,
        completed_at=record.completed_at if status in ("succeeded", "failed") else None,
        output=output,
        subtitles=_output(record.subtitles),
        duration_ms=record.duration_ms,
        billing=dict(record.billing),
        error=error,
    )
    if render.completed_at:
        render.expires_at = expiry(render.completed_at, render.request, render.surface)
    if stored is not None:
        same_job = stored.attempt == render.attempt and (
            stored.job_id == render.job_id or stored.job_id is None or render.job_id is None
        )
        if same_job:
            if stored.is_final:
                return None  # a final record never changes
            render.history = stored.history
        else:
            render.history = _history([*stored.history, stored.past()])
    if stored is not None and dump(stored) == dump(render):
        return None
    return render


def to_view(render: RenderRecord, video_id: str, output_path: str | None) -> StateRecord:
    """The working record of ``video_id`` using ``render``, its output at ``output_path``."""
    delivered = render.output is not None
    return StateRecord(
        video_id=video_id,
        status="downloaded" if delivered else render.status,
        input_hash=render.request_hash,
        synthesis_id=render.synthesis_id,
        surface=render.surface,
        attempt=render.attempt,
        remote_id=render.job_id,
        pack_index=render.pack_index,
        request=render.request,
        narration=render.narration,
        submitted_at=render.submitted_at,
        completed_at=render.completed_at,
        updated_at=render.completed_at or render.submitted_at or "",
        remote_status=_REMOTE_STATUS.get(render.status),
        output=(
            OutputFile(path=output_path, size=render.output.size, sha256=render.output.sha256)
            if render.output is not None and output_path is not None
            else None
        ),
        subtitles=(
            OutputFile(
                path=str(PurePosixPath(output_path).with_suffix(".vtt")),
                size=render.subtitles.size,
                sha256=render.subtitles.sha256,
            )
            if render.subtitles is not None and output_path is not None
            else None
        ),
        duration_ms=render.duration_ms,
        billing=dict(render.billing),
        error=render.error,
    )


# -- merging two records of one request -------------------------------------------------
def _rank(render: RenderRecord | PastRender) -> tuple[int, str, int, str]:
    """Which job is the current one: a delivered video first, then a final outcome, then
    the latest by the service's clock; ties broken by job id so both sides agree."""
    delivered = 2 if render.output is not None else 1 if render.status == "failed" else 0
    return (delivered, render.submitted_at or "", render.attempt, render.job_id or "")


def _history(items: list[PastRender]) -> list[PastRender]:
    unique = {json.dumps(p.model_dump(mode="json"), sort_keys=True): p for p in items}
    return sorted(unique.values(), key=_rank)


def merge(ours: RenderRecord, theirs: RenderRecord) -> RenderRecord:
    """One record of one request from two that differ (two branches each paid a job of
    the preview API, or rendered again): the best job stays current, every other paid
    job is kept in ``history``. Symmetric, so both sides of a merge write the same."""
    if ours.request_hash != theirs.request_hash:
        raise ValueError("records of different requests cannot be merged")
    if dump(ours) == dump(theirs):
        return ours
    current = max((ours, theirs), key=lambda r: (*_rank(r), dump(r).decode()))
    other = theirs if current is ours else ours
    history = [*ours.history, *theirs.history, other.past()]
    merged = current.model_copy(
        update={"history": _history([p for p in history if p != current.past()])}
    )
    return merged


# -- the per-video format (state format 1) ----------------------------------------------
def from_v1(record: StateRecord) -> tuple[RenderRecord | None, OutputFile | None]:
    """A format-1 record as a render, plus the output it says this checkout has.

    Every paid fact is kept: job id, attempt, billing, duration, output size and sha256,
    the error. ``completed_at`` was this machine's clock when it saw the job end; it
    stands in for the service's last action (close to it) so that expiry is known."""
    if record.status == "submitting" and record.remote_id is None and record.surface == "ga":
        return None, None
    local = record.model_copy(update={"submitted_at": None})
    render = to_render(local, None)
    return render, record.output

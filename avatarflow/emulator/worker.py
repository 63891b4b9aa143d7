"""The background side of the emulator: a clock that moves jobs and a small render pool.

The scheduler thread wakes when a job is created, a render ends or the next deadline
(queue end, minimum run time, TTL expiry) comes, moves every job along its state
machine, hands ``Running`` jobs without outputs to the render pool, and deletes expired
jobs with their files. Request handlers call :meth:`Worker.refresh` too, so a status
never lags behind the clock.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from avatarflow import atomicfile
from avatarflow.emulator.destinations import DestinationSecrets, UploadError, upload
from avatarflow.emulator.faults import Faults
from avatarflow.emulator.jobs import (
    RUNNING,
    JobRecord,
    JobStore,
    RenderOutcome,
    Timing,
    advance,
    blob_location,
    expired,
)
from avatarflow.emulator.narration import InvalidSsmlError, Narration, narration_of, webvtt
from avatarflow.emulator.video import (
    ProcessGroup,
    RenderCancelledError,
    RenderFailedError,
    RenderResult,
    render_video,
)

log = logging.getLogger(__name__)
MAX_IDLE_WAIT = 0.5


class Worker:
    def __init__(
        self,
        store: JobStore,
        blobs: Path,
        work: Path,
        account_hash: str,
        settings: Callable[[], Any],
        faults: Callable[[], Faults],
        destinations: DestinationSecrets,
    ) -> None:
        self.store = store
        self.destinations = destinations
        self.blobs = blobs
        self.work = work
        self.account_hash = account_hash
        self._settings = settings
        self._faults = faults
        config = settings()
        self._pool = ThreadPoolExecutor(
            max_workers=min(2, config.render_workers), thread_name_prefix="emulator-render"
        )
        self._processes = ProcessGroup()
        self._in_flight: set[tuple[str, str]] = set()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="emulator-clock", daemon=True)

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop the clock, kill running ffmpeg processes and drop queued renders.

        Interrupted jobs keep no outcome, so the next emulator on this folder renders
        them again.
        """
        self._stopping.set()
        self._wake.set()
        self._processes.close()
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._thread.is_alive():
            self._thread.join()

    def wake(self) -> None:
        self._wake.set()

    def busy(self) -> bool:
        with self.store.lock:
            return bool(self._in_flight)

    # -- state machine ---------------------------------------------------------------
    def timing(self) -> Timing:
        config = self._settings()
        return Timing(config.queue_seconds, config.min_run_seconds, config.ttl_seconds_per_hour)

    def refresh(self, record: JobRecord, now: float | None = None) -> JobRecord | None:
        """Bring ``record`` up to date; ``None`` if its time to live has run out."""
        now = time.time() if now is None else now
        with self.store.lock:
            if self.store.get(*record.key) is not record:
                return None
            if advance(record, now, self.timing(), self._faults().is_stuck):
                self.store.save(record)
                self._wake.set()
            if expired(record, now):
                self.delete(record)
                return None
            return record

    def delete(self, record: JobRecord) -> None:
        """Forget a job and delete its outputs (as the service does)."""
        with self.store.lock:
            self.store.remove(record)
            self.destinations.remove(record.key)
        container, folder = blob_location(record, self.account_hash)
        shutil.rmtree(self.blobs / container / folder, ignore_errors=True)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                wait = self._tick()
            except Exception:  # keep the clock alive; the next tick retries
                log.exception("emulator scheduler tick failed")
                wait = MAX_IDLE_WAIT
            self._wake.wait(wait)
            self._wake.clear()

    def _tick(self) -> float:
        """One pass over all jobs; returns how long the clock may sleep."""
        now = time.time()
        timing = self.timing()
        next_due = now + MAX_IDLE_WAIT
        with self.store.lock:
            for record in self.store.all():
                if self.refresh(record, now) is None:
                    continue
                if (
                    record.status == RUNNING
                    and record.outcome is None
                    and record.key not in self._in_flight
                    and not self._stopping.is_set()
                ):
                    self._in_flight.add(record.key)
                    self._pool.submit(self._render, record)
                due = _deadline(record, timing, next_due)
                if due > now:  # a past deadline means a stuck job: only a fault change moves it
                    next_due = min(next_due, due)
        return max(0.005, next_due - time.time())

    # -- rendering -------------------------------------------------------------------
    def _render(self, record: JobRecord) -> None:
        outcome: RenderOutcome | None = None
        try:
            outcome = self._produce(record)
        except RenderCancelledError:
            pass
        except Exception as exc:  # a bug or an ffmpeg failure fails the job, not the server
            log.exception("render of %s failed", record.id)
            outcome = RenderOutcome(
                done_at=time.time(),
                succeeded=0,
                failed=len(record.request.inputs),
                error={"code": "InternalServerError", "message": f"Rendering failed: {exc}"},
            )
        finally:
            # One step frees the job and records its outcome: in between, the clock would
            # see a Running job without an outcome, render it again and wipe these files.
            with self.store.lock:
                self._in_flight.discard(record.key)
                if (
                    outcome is not None
                    and self.store.get(*record.key) is record
                    and not self._stopping.is_set()
                ):
                    record.outcome = outcome
                    self.store.save(record)
                    self.destinations.remove(record.key)  # delivered: the SAS is not needed
        self._wake.set()

    def _produce(self, record: JobRecord) -> RenderOutcome:
        container, folder = blob_location(record, self.account_hash)
        target = self.blobs / container / folder
        shutil.rmtree(target, ignore_errors=True)  # leftovers of an interrupted render
        target.mkdir(parents=True, exist_ok=True)
        rule = self._faults().failure_for(record.name)
        if rule is not None:
            outcome = RenderOutcome(
                done_at=time.time(),
                succeeded=0,
                failed=len(record.request.inputs),
                error={"code": rule.code, "message": rule.message},
            )
            _write_summary(record, target, folder, self.account_hash, outcome, [])
            return outcome
        scratch = self.work / f"{record.surface}-{record.id}-{uuid.uuid4().hex[:8]}"
        try:
            outcome = self._render_inputs(record, target, folder, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if record.request.destination is not None:
            return self._deliver(record, target, folder, outcome)
        return outcome

    def _deliver(
        self, record: JobRecord, target: Path, folder: str, outcome: RenderOutcome
    ) -> RenderOutcome:
        """Write the outputs into the customer's container, as the service does."""
        url = self.destinations.get(record.key)
        files = [target / name for name in outcome.files]
        try:
            if url is None:
                raise UploadError("the destination container's SAS is no longer known")
            upload(url, folder, [*files, target / "summary.json"])
        except UploadError as exc:
            return RenderOutcome(
                done_at=time.time(),
                succeeded=0,
                failed=len(record.request.inputs),
                error={"code": "InvalidDestination", "message": str(exc)},
            )
        return outcome

    def _render_inputs(
        self, record: JobRecord, target: Path, folder: str, scratch: Path
    ) -> RenderOutcome:
        config = self._settings()
        request = record.request
        ext = request.render.video_format

        def render(index: int, content: str) -> tuple[Narration, RenderResult]:
            narration = narration_of(content, request.input_kind, request.render.voice)
            done = render_video(
                request.render,
                narration,
                scratch / f"{index:04d}.part.{ext}",
                scratch / f"w{index:04d}",
                self._processes,
                width=config.width,
                height=config.height,
                fps=config.fps,
                speech=config.speech,
                slide=slide_name(record.name, index, len(request.inputs)),
            )
            return narration, done

        # The inputs of a multi-input job render side by side, like separate jobs do.
        with ThreadPoolExecutor(config.render_workers, "emulator-input") as pool:
            futures = [
                pool.submit(render, index, content)
                for index, content in enumerate(request.inputs, start=1)
            ]
        results: list[dict[str, Any]] = []
        outcome = RenderOutcome(done_at=0.0, succeeded=0, failed=0)
        for index, (content, future) in enumerate(zip(request.inputs, futures, strict=True), 1):
            name = f"{index:04d}.{ext}"
            try:
                narration, done = future.result()
            except (InvalidSsmlError, RenderFailedError) as exc:
                code = "InvalidSsml" if isinstance(exc, InvalidSsmlError) else "InternalServerError"
                outcome.failed += 1
                outcome.error = outcome.error or {"code": code, "message": str(exc)}
                results.append({"content": content, "ok": False})
                continue
            atomicfile.move_into_place(scratch / f"{index:04d}.part.{ext}", target / name)
            outcome.files.append(name)
            if request.render.subtitle_type == "external_file":
                vtt = f"{index:04d}.vtt"
                (target / vtt).write_text(webvtt(narration.cues()), encoding="utf-8")
                outcome.files.append(vtt)
            _account(outcome, narration, request.custom_voices, target / name, done.seconds)
            outcome.audio = done.audio
            outcome.succeeded += 1
            results.append({"content": content, "ok": True, "file": name, "narration": narration})
        outcome.done_at = time.time()
        _write_summary(record, target, folder, self.account_hash, outcome, results)
        return outcome


_JOB_SUFFIX_RE = re.compile(r"-[0-9a-f]{12}(-r\d+)?$")


def slide_name(job_id: str, index: int, inputs: int) -> str:
    """What a draft calls itself: the job's readable name (avatarflow's job ids end in a
    content hash and an attempt), and the input's number in a multi-input job."""
    name = _JOB_SUFFIX_RE.sub("", job_id) or job_id
    return f"{name} #{index}" if inputs > 1 else name


def _deadline(record: JobRecord, timing: Timing, default: float) -> float:
    """The next moment at which ``record`` may change state by the clock alone."""
    if record.status == "NotStarted":
        return record.created_at + timing.queue_seconds
    if record.status == RUNNING and record.outcome is not None:
        return (record.started_at or record.created_at) + timing.min_run_seconds
    if record.expires_at is not None:
        return record.expires_at
    return default


def _account(
    outcome: RenderOutcome,
    narration: Narration,
    custom_voices: dict[str, str],
    video: Path,
    seconds: float,
) -> None:
    """Add one rendered input to the job's size, duration and billing."""
    outcome.size += video.stat().st_size
    outcome.duration_ms += round(seconds * 1000)
    if narration.voice and narration.voice in custom_voices:
        outcome.custom_characters += narration.characters
    else:
        outcome.characters += narration.characters


def _write_summary(
    record: JobRecord,
    target: Path,
    folder: str,
    account_hash: str,
    outcome: RenderOutcome,
    results: list[dict[str, Any]],
) -> None:
    """``summary.json`` in the shape of the surface's documented example."""
    request = record.request
    status = "Succeeded" if outcome.succeeded else "Failed"
    entries: list[dict[str, Any]] = []
    inputs = results or [{"content": c, "ok": False} for c in request.inputs]
    for index, item in enumerate(inputs, start=1):
        name = f"{index:04d}.{request.render.video_format}"
        if record.surface == "ga" and request.destination is None:
            # The service's GA summary names the file under the internal id.
            file_name = f"{account_hash}/{record.internal_id}/{name}"
        else:
            file_name = f"{folder}/{name}"
        entry: dict[str, Any] = {
            "texts": [item["content"]],
            "status": "Succeeded" if item["ok"] else "Failed",
            "videoFileName": file_name,
            "TalkingAvatarCharacter": request.render.character,
        }
        if request.render.style:
            entry["TalkingAvatarStyle"] = request.render.style
        if item["ok"] and request.render.subtitle_type == "external_file":
            entry["subtitleFileName"] = file_name.rsplit(".", 1)[0] + ".vtt"
        if record.surface == "preview" and item["ok"]:
            narration: Narration = item["narration"]
            entry["billingDetails"] = {
                "Neural": str(narration.characters),
                "TalkingAvatarDuration": str(int(narration.duration)),
            }
        entries.append(entry)
    summary = {
        "jobID": record.internal_id if record.surface == "ga" else record.id,
        "status": status,
        "results": entries,
    }
    data = json.dumps(summary, indent=2, ensure_ascii=False).encode()
    atomicfile.write_bytes(target / "summary.json", data, durable=False)

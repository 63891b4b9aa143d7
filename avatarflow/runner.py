"""Apply a Plan: submit or adopt, poll, download, record — resumable at every step.

Money rules, in the order the code enforces them:

1. A record is written (``submitting``) *before* a create request leaves, so a crash at
   any point afterwards leaves a trace that the next run follows.
2. A ``submitting`` record is never submitted blindly: the job is first looked up by its
   deterministic id (GA) or by the content hash in ``customProperties`` (preview) and
   adopted when it exists.
3. ``create`` is retried only when the service certainly did not take the request;
   any unknown outcome goes back through rule 2.
4. Every transition is persisted atomically before the next step starts, so Ctrl-C or
   SIGKILL lose at most the step in progress, never a paid job.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from . import atomicfile
from .answers import DOCUMENTED_STATUSES
from .client import RemoteJob, SpeechClient, UrlRefresh
from .destination import Destination
from .errors import (
    CreateOutcomeUnknown,
    DownloadError,
    JobExistsError,
    JobTimeoutError,
    LocalResourceError,
    NotFoundError,
    PlanChangedError,
    ServiceError,
    StorageError,
    ThrottledError,
    TransportError,
    UntrustedAnswerError,
)
from .events import Event, EventSink
from .killpoints import checkpoint
from .manifest import Manifest
from .packing import Member, Pack, group, pack_job_id
from .payload import ATTEMPT_PROPERTY, HASH_PROPERTY, VideoRequest
from .planner import THIS_APPLY, Action, ActionKind, Plan
from .pull import SUBTITLE_SUFFIX, place_from_store, remove_written
from .renders import format_time
from .secrets import redact
from .state import IN_FLIGHT, JobError, OutputFile, State, StateRecord, utc_now
from .videostore import StoredObject, VideoStores
from .worddiff import spoken_text
from .workspace import Workspace

MAX_ACTIVE_JOBS = 200
LIST_PAGE = 100  # jobs per list page, the most both API surfaces allow
GONE_CODE = "JobGone"
TIMEOUT_CODE = "Timeout"
DOWNLOAD_CODE = "DownloadFailed"
UNTRUSTED_CODE = "UntrustedAnswer"
LOCAL_CODE = "LocalWriteFailed"
# Without --timeout a job stuck in NotStarted or Running is still given up on (and kept
# for the next apply) after this long; a status outside the documented set sooner.
DEFAULT_TIMEOUT = 12 * 3600.0
UNKNOWN_STATUS_TIMEOUT = 300.0
# Local refusals of a write: reported with the path, the rest of the run goes on.
_LOCAL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS})


@dataclass(frozen=True)
class RunOptions:
    parallelism: int = 20
    timeout: float | None = None  # per job, from submission to a final status
    delete_remote: bool = False
    poll_interval: float = 5.0
    poll_max_interval: float = 30.0
    # Above this many jobs in flight, poll with list pages: one page answers for up to 100
    # jobs, so from two jobs on it costs less than a GET each.
    list_threshold: int = 1
    unknown_status_timeout: float | None = None  # None: UNKNOWN_STATUS_TIMEOUT

    def __post_init__(self) -> None:
        if not 1 <= self.parallelism <= MAX_ACTIVE_JOBS:
            raise ValueError(f"parallelism must be between 1 and {MAX_ACTIVE_JOBS}")

    @property
    def deadline(self) -> float:
        """Seconds a job (or a lookup) may take: ``timeout``, else the default."""
        return DEFAULT_TIMEOUT if self.timeout is None else self.timeout

    @property
    def unknown_status_wait(self) -> float:
        """Seconds a status outside the documented set is waited out before it is refused."""
        wait = self.unknown_status_timeout
        return UNKNOWN_STATUS_TIMEOUT if wait is None else wait


@dataclass(frozen=True)
class JobSettings:
    """What the runner needs of the manifest: the course's name (the state's meta, the
    ids of packed jobs) and how jobs are sent. ``destination`` is called only when a job
    writes to the customer's container, so its SAS is read from the environment then."""

    name: str
    pack: bool
    pack_max_inputs: int
    to_container: bool
    destination: Callable[[], Destination]

    @classmethod
    def of(cls, model: Manifest, destination: Callable[[], Destination]) -> JobSettings:
        service = model.service
        to_container = service.destination_container_url is not None
        return cls(model.name, service.pack, service.pack_max_inputs, to_container, destination)


@dataclass
class Summary:
    counts: Counter[str] = field(default_factory=Counter)
    done: Counter[ActionKind] = field(default_factory=Counter)  # actions carried out, by kind
    characters: int = 0
    avatar_seconds: int = 0
    failed: list[str] = field(default_factory=list)
    timed_out: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.timed_out


@dataclass(frozen=True)
class _Created:
    job: RemoteJob | None
    adopted: bool  # the job existed already (a lost answer, a crash): nothing new was paid
    refused: str | None = None  # why no job was made (throttled, every attempt lost)


def _download_progress(done: int, total: int | None) -> None:
    checkpoint("mid-download")


def _in_container(job: RemoteJob) -> bool:
    """The service wrote the job's output to the customer's container: with a destination
    ``outputs.result`` is a path relative to it, not a signed URL (API reference §4.1)."""
    result = job.result_url
    return bool(result) and not urlsplit(result or "").scheme


def _service_time(moment: datetime | None) -> str | None:
    """A time the service reported, as state keeps it (UTC ISO-8601)."""
    return format_time(moment) if moment is not None else None


def _external_subtitles(request: VideoRequest) -> bool:
    video = request.rendered.video.fields.video
    return video is not None and video.subtitles == "external_file"


def _sidecar_url(video_url: str) -> str:
    """The subtitle file of a video URL: the same folder and signature, ``.vtt``."""
    parts = urlsplit(video_url)
    stem = parts.path.rsplit(".", 1)[0] if "." in parts.path.rsplit("/", 1)[-1] else parts.path
    return urlunsplit(parts._replace(path=stem + SUBTITLE_SUFFIX))


def _record_for(request: VideoRequest, status: str, previous: StateRecord | None) -> StateRecord:
    """A fresh record for a new submission of ``request``."""
    now = utc_now()
    same = previous is not None and previous.input_hash == request.content_hash
    attempt = previous.attempt + 1 if same and previous is not None else 0
    return StateRecord(
        video_id=request.video_id,
        serial=previous.serial if previous else 0,
        status=status,  # type: ignore[arg-type]
        input_hash=request.content_hash,
        synthesis_id=request.synthesis_id,
        surface=request.surface,
        attempt=attempt,
        remote_id=request.job_id(attempt) if request.surface == "ga" else None,
        request=request.recorded_body(),
        sources=dict(request.rendered.sources),
        narration=spoken_text(request.rendered.content, request.rendered.input_kind),
        updated_at=now,
    )


class Runner:
    """Executes one plan against one service with one state."""

    def __init__(
        self,
        workspace: Workspace,
        jobs: JobSettings,
        state: State,
        client: SpeechClient,
        options: RunOptions | None = None,
        on_event: EventSink | None = None,
        stores: VideoStores | None = None,
    ) -> None:
        self.workspace = workspace
        self.stores = stores  # every verified output goes in; fetches try them first
        self.jobs = jobs
        self.state = state
        self.client = client
        self.options = options or RunOptions()
        self.emit: EventSink = on_event or (lambda event: None)
        self.summary = Summary()
        self.stopping = False  # set on Ctrl-C: no new submissions
        self._slots = asyncio.Semaphore(self.options.parallelism)
        self._create_lock = asyncio.Lock()
        self._requests: dict[str, list[VideoRequest]] = {}  # remote id -> its videos
        self._waiters: dict[str, asyncio.Future[RemoteJob | None]] = {}
        self._poller: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._poll_problem: str | None = None  # why the last poll failed, for timeouts
        self._unknown_since: dict[str, float] = {}  # remote id -> first undocumented status
        self.packing = jobs.pack
        # Every job then writes to the customer's container (packs need one).
        self.to_container = jobs.to_container
        self._pack_max_inputs = jobs.pack_max_inputs  # used only when packing
        self._destination: Destination | None = None
        self._repack: list[Action] = []  # packed submits that never reached the service
        self._delivered_by_hash: dict[str, list[StateRecord]] | None = None  # see _delivered

    # -- entry point ---------------------------------------------------------------
    async def run(self, plan: Plan) -> Summary:
        packed = any(
            a.record and a.record.pack_index is not None and a.kind is not ActionKind.FORGET
            for a in plan.changes
        )
        if (self.to_container and plan.paid()) or packed:
            # Without a SAS: a clear error before anything is written or sent.
            self._destination = self.jobs.destination()
        self.state.ensure_meta(self.jobs.name)
        self._remove_partial_downloads()
        await self._check_promises(plan)
        for action in plan.actions:
            if action.kind is ActionKind.FORGET:
                self._remove_output(action)
                self.state.forget(action.video_id)
                self.summary.counts["forgotten"] += 1
                self.emit(Event("forgot", action.video_id, "forgotten (removed from the manifest)"))
        work = [a for a in plan.actions if a.kind not in (ActionKind.NOOP, ActionKind.FORGET)]
        # Videos of the same request as a video rendered here: put in place once it is.
        twins = [a for a in work if a.source == THIS_APPLY]
        work = [a for a in work if a.source != THIS_APPLY]
        # Resume what is already paid for before submitting anything new.
        resumes = [
            a for a in work if a.kind is not ActionKind.CREATE and a.kind is not ActionKind.RERENDER
        ]
        paid = [a for a in work if a.kind in (ActionKind.CREATE, ActionKind.RERENDER)]
        resumes = [a for a in resumes if not self._saved_before_a_crash(a)]
        self._poller = asyncio.create_task(self._poll_loop())
        self.state.batch()  # flushed below, whatever happens
        try:
            await self._gather(self._resumes(resumes))
            if self.packing:
                await self._gather(self._render_packs([*paid, *self._repack]))
            else:
                await self._gather(self._guard([a], partial(self._render, a)) for a in paid)
            await self._gather(self._guard([a], partial(self._reuse_twin, a)) for a in twins)
        finally:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self.workspace.save_hashes()
            self.state.flush()
        unfinished = {*self.summary.failed, *self.summary.timed_out}
        for action in plan.changes:
            if action.video_id not in unfinished:
                self.summary.done[action.kind] += 1
        if self.stores is not None:
            await asyncio.to_thread(self._sync_stores, self.stores)
        return self.summary

    def _sync_stores(self, stores: VideoStores) -> None:
        from .pull import sync_stores

        def report(kind: str, video: str | None, message: str) -> None:
            self.emit(Event(kind, video, message))

        sync_stores(self.workspace, stores, self.state, report)
        self.state.flush()

    async def _check_promises(self, plan: Plan) -> None:
        """Before anything is paid: every job the plan fetches from must still be there.
        A job deleted before its expiry would otherwise need a render the confirmed plan
        did not list as paid; stop instead, say what changed, and let the next plan (which
        knows the job is gone) ask for a fresh confirmation."""
        relied = {
            a.record.remote_id: a
            for a in plan.changes
            if a.kind in (ActionKind.DOWNLOAD, ActionKind.REUSE)
            and a.source == "service"
            and a.record is not None
            and a.record.remote_id
        }
        if not relied:
            return
        seen = await self.poll_jobs(set(relied))
        changed: list[str] = []
        for job_id, action in sorted(relied.items(), key=lambda item: item[1].video_id):
            job = seen.get(job_id)
            if job is None or not job.succeeded:
                self.state.note_gone(job_id)
                changed.append(
                    f"{action.video_id}: its job {job_id} is gone before its expiry and no "
                    "video store has the video, so only a paid render brings it back"
                )
        if changed:
            raise PlanChangedError(
                "the plan no longer holds; nothing was paid. " + "; ".join(changed) + ". "
                "Run plan or apply again to confirm the new plan"
            )

    def _remove_output(self, action: Action) -> None:
        """The output of a video removed from the manifest, if it is still the file
        avatarflow wrote; anything else there is the user's."""
        output = action.record.output if action.record else None
        if output is not None and remove_written(self.workspace, output):
            self.emit(Event("info", action.video_id, f"removed {output.path}"))

    def _saved_before_a_crash(self, action: Action) -> bool:
        """Record a download that the last run saved but died before recording: the
        file on disk matches the hash written ahead of its rename. Costs no request."""
        record = self.state.records.get(action.video_id)
        if action.request is None or record is None or record.status != "succeeded":
            return False
        pending = record.pending_output
        target = self.workspace.output_path(action.request)
        if pending is None or pending.path != self.workspace.display(target):
            return False
        if target.is_symlink() or not target.is_file():
            return False
        if self.workspace.hashes.sha256(pending.path, target, verify=True) != pending.sha256:
            return False
        self.state.put(
            record.model_copy(
                update={"status": "downloaded", "output": pending, "pending_output": None}
            )
        )
        self.summary.counts["downloaded"] += 1
        self.emit(
            Event(
                "downloaded",
                action.video_id,
                f"found {pending.path}, saved before the last run stopped (no download)",
                {"path": pending.path, "size": pending.size, "sha256": pending.sha256},
            )
        )
        return True

    async def _gather(self, coros: Iterable[Any]) -> None:
        tasks = [asyncio.create_task(c) for c in coros]
        if not tasks:
            return
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    @property
    def destination(self) -> Destination:
        """The customer's container; resolved (SAS included) on first use only."""
        if self._destination is None:
            self._destination = self.jobs.destination()
        return self._destination

    def _resumes(self, actions: list[Action]) -> list[Any]:
        """One coroutine per single job, one per packed job in flight."""
        packs: dict[str, list[Action]] = {}
        coros: list[Any] = []
        for action in actions:
            record = action.record
            if action.kind is ActionKind.RESUME and record and record.pack_index is not None:
                packs.setdefault(record.remote_id or "", []).append(action)
            else:
                coros.append(self._guard([action], partial(self._resume, action)))
        coros.extend(
            self._guard(members, partial(self._resume_pack, members)) for members in packs.values()
        )
        return coros

    def _remove_partial_downloads(self) -> None:
        """A crash mid-download leaves a temp file; the lock says nobody else writes."""
        self.state.remove_stale_temp_files()
        self.workspace.remove_partial_downloads()

    async def _put(self, record: StateRecord) -> StateRecord:
        """Persist ``record`` before the caller goes on, off the event loop: an fsynced
        write takes milliseconds, and polls and downloads of other videos need not wait."""
        return await asyncio.to_thread(self.state.put, record)

    # -- the video stores ------------------------------------------------------------
    async def _from_store(self, request: VideoRequest, record: StateRecord) -> bool:
        """Put a recorded video in place from a video store: no request, no committed
        write (the render's record already says everything)."""
        if record.output is None or self.stores is None:
            return False
        placed = await asyncio.to_thread(
            place_from_store, self.workspace, self.stores, record, request
        )
        if placed is None:
            return False
        source, placed_record = placed
        await self._put(placed_record)
        out = placed_record.output
        assert out is not None
        self.state.note_stored(out.sha256, ["local", source])
        self.emit(
            Event(
                "downloaded",
                request.video_id,
                f"put {out.path} in place from the {source} store (no request)",
                {"path": out.path, "size": out.size, "sha256": out.sha256, "from": source},
            )
        )
        return True

    async def _store(self, target: Path, size: int, digest: str, video_id: str | None) -> None:
        """Keep a verified output in every video store; a store that fails is reported
        and tried again by the next apply or pull."""
        if self.stores is None:
            return
        obj = StoredObject(digest, size)
        try:
            await asyncio.to_thread(self.stores.put, target, obj)
        except StorageError as exc:
            self.emit(Event("info", video_id, f"not stored: {exc}"))
            return
        self.state.note_stored(digest, [store.name for store in self.stores.all])

    # -- one video -----------------------------------------------------------------
    async def _resume(self, action: Action) -> None:
        assert action.request is not None and action.record is not None
        request, record = action.request, action.record
        if action.kind in (ActionKind.DOWNLOAD, ActionKind.REUSE):
            if await self._from_store(request, record):
                return
            job = await self._lookup(record)
            if job is None:
                await self._fail(
                    request, GONE_CODE, "the remote job is gone; the next plan re-renders it"
                )
                return
            await self._finish(request, job)
            return
        # In flight: a lost submit is adopted, never repeated.
        if record.status == "submitting":
            job = await self._lookup(record)
            if job is None:
                if self.packing:  # never created: it joins the new packs
                    self._repack.append(action)
                else:
                    await self._render(action)
                return
            await self._adopted(request, job)
        await self._follow(request)

    def _delivered(self) -> dict[str, list[StateRecord]]:
        """The videos delivered of each request, by request hash: taken once, when the
        first twin asks (the paid renders are over by then), not once per twin."""
        if self._delivered_by_hash is None:
            self._delivered_by_hash = {}
            for record in self.state.records.values():
                if record.status == "downloaded" and record.output is not None:
                    self._delivered_by_hash.setdefault(record.input_hash, []).append(record)
        return self._delivered_by_hash

    async def _reuse_twin(self, action: Action) -> None:
        """Put in place the output of a render this apply made for another video of the
        same request: from a video store, else downloaded again from its job (free)."""
        assert action.request is not None
        request = action.request
        delivered = self._delivered().get(request.content_hash, [])
        made = next((r for r in delivered if r.video_id != request.video_id), None)
        if made is None or made.output is None:
            self.summary.failed.append(request.video_id)
            self.emit(
                Event(
                    "failed",
                    request.video_id,
                    f"not put in place: {action.reasons[0].split(':')[0]}, whose render did "
                    "not finish in this apply; the next apply plans both again",
                )
            )
            return
        shown = self.workspace.display(self.workspace.output_path(request))
        twin = made.model_copy(
            update={
                "video_id": request.video_id,
                "sources": dict(request.rendered.sources),
                "output": made.output.model_copy(update={"path": shown}),
            }
        )
        self.state.records[request.video_id] = twin
        reuse = Action(ActionKind.REUSE, request.video_id, action.reasons, request, twin)
        await self._resume(reuse)

    async def _render(self, action: Action) -> None:
        assert action.request is not None
        request = action.request
        async with self._slots:
            if self.stopping:
                return
            job = await self._submit(request)
            if job is None:
                return
            label = "rerendered" if action.kind is ActionKind.RERENDER else "created"
            self.summary.counts[label] += 1
            await self._follow(request)

    # -- packed jobs (service.pack: true) -------------------------------------------
    def _render_packs(self, actions: list[Action]) -> list[Any]:
        """One coroutine per pack of the videos to submit."""
        by_id = {a.video_id: a for a in actions}
        requests = [a.request for a in actions if a.request is not None]
        chunks = group(requests, self._pack_max_inputs)
        packs = [[by_id[r.video_id] for r in chunk] for chunk in chunks]
        return [self._guard(pack, partial(self._render_pack, pack)) for pack in packs]

    async def _render_pack(self, actions: list[Action]) -> None:
        async with self._slots:
            if self.stopping:
                return
            pack = await self._record_pack(actions)
            requests = [m.request for m in pack.members]
            first = self.state.records[requests[0].video_id]
            created = await self._create(pack.job_id, pack.body(self.destination), first)
            if created.job is None:
                for request in requests:
                    await self._not_created(request, created.refused)
                return
            for action, request in zip(actions, requests, strict=True):
                if created.adopted:
                    await self._adopted(request, created.job)
                    continue
                await self._submitted(request, created.job)
                label = "rerendered" if action.kind is ActionKind.RERENDER else "created"
                self.summary.counts[label] += 1
            await self._follow_pack(requests)

    async def _record_pack(self, actions: list[Action]) -> Pack:
        """Persist every member as ``submitting`` in its pack before the create leaves."""
        fresh: list[StateRecord] = []
        for action in actions:
            assert action.request is not None
            previous = self.state.records.get(action.video_id)
            if (
                previous is not None
                and previous.status == "submitting"
                and previous.input_hash == action.request.content_hash
            ):
                fresh.append(previous)  # its create never reached the service: same attempt
            else:
                fresh.append(_record_for(action.request, "submitting", previous))
        job_id = pack_job_id(self.jobs.name, ((r.input_hash, r.attempt) for r in fresh))
        members: list[Member] = []
        for index, (action, record) in enumerate(zip(actions, fresh, strict=True), start=1):
            assert action.request is not None
            await self._put(record.model_copy(update={"remote_id": job_id, "pack_index": index}))
            members.append(Member(action.request, record.attempt, index))
        return Pack(job_id, tuple(members))

    async def _resume_pack(self, actions: list[Action]) -> None:
        """Follow a pack already submitted; a pack whose create was lost is adopted."""
        unsure = [a for a in actions if self.state.records[a.video_id].status == "submitting"]
        unsure_ids = {a.video_id for a in unsure}
        sure = [a for a in actions if a.video_id not in unsure_ids]
        if unsure:
            job = await self._lookup(self.state.records[unsure[0].video_id])
            if job is None:  # never created: these videos join the new packs
                self._repack.extend(unsure)
            else:
                for action in unsure:
                    assert action.request is not None
                    await self._adopted(action.request, job)
                sure = actions
        requests = [a.request for a in sure if a.request is not None]
        if requests:
            await self._follow_pack(requests)

    async def _follow_pack(self, requests: list[VideoRequest]) -> None:
        """Wait for the pack's job, then download and record each video on its own."""
        if all(self.state.records[r.video_id].status == "succeeded" for r in requests):
            job = await self._lookup(self.state.records[requests[0].video_id])
        else:
            job = await self._wait_final(requests)
        if job is None:
            return
        for request in requests:
            await self._finish(request, job)
        self._count_billing(job)
        if self.options.delete_remote and all(
            self.state.records[r.video_id].status == "downloaded" for r in requests
        ):
            await self._delete_remote(requests[0], job)

    async def _record_submitted(
        self, request: VideoRequest, job: RemoteJob, **more: Any
    ) -> StateRecord:
        record = self.state.records[request.video_id]
        update = {"status": "submitted", "remote_id": job.id, "remote_status": job.status}
        return await self._put(record.model_copy(update=update | more))

    async def _submitted(self, request: VideoRequest, job: RemoteJob) -> None:
        record = await self._record_submitted(request, job, submitted_at=_service_time(job.created))
        where = f" as input {record.pack_index}" if record.pack_index is not None else ""
        self.emit(
            Event("submitted", request.video_id, f"submitted{where} as {job.id}", {"job": job.id})
        )

    async def _submit(self, request: VideoRequest) -> RemoteJob | None:
        previous = self.state.records.get(request.video_id)
        if (
            previous is None
            or previous.status != "submitting"
            or previous.input_hash != request.content_hash
        ):
            await self._put(_record_for(request, "submitting", previous))
        record = self.state.records[request.video_id]
        body = request.submit_body(record.attempt)
        if self.to_container:
            body = self.destination.into(body)
        created = await self._create(request.job_id(record.attempt), body, record)
        if created.job is None:
            await self._not_created(request, created.refused)
            return None
        if created.adopted:
            await self._adopted(request, created.job)
            return created.job
        await self._submitted(request, created.job)
        return created.job

    async def _create(self, job_id: str, body: dict[str, Any], record: StateRecord) -> _Created:
        """Send one create, one at a time (the service throttles creates).

        ``record`` (already persisted as ``submitting``) finds the job when the outcome of
        the create is unknown or its id is taken: an existing job is adopted, never paid
        twice. ``job`` is None when the id is taken by a job that cannot be read, or when
        no job was made (``refused`` says why: throttled, or every create lost).
        """
        async with self._create_lock:
            # Retries of throttled or never-sent creates, and their pacing, are the
            # client's; this loop only sends again a create that a lookup proved lost.
            for _ in range(self.client.config.retry.max_attempts):
                try:
                    checkpoint("before-create")
                    job = await self.client.create(job_id, body)
                    checkpoint("after-create")
                    self.summary.counts["jobs"] += 1
                    return _Created(job, adopted=False)
                except ThrottledError as exc:
                    return _Created(None, adopted=False, refused=str(exc))
                except UntrustedAnswerError as exc:
                    if exc.status_code is not None and 200 <= exc.status_code < 300:
                        self.summary.counts["jobs"] += 1  # created, though not as answered
                    raise
                except JobExistsError:
                    return _Created(await self._lookup(record), adopted=True)
                except CreateOutcomeUnknown as exc:
                    found = await self._lookup(record)
                    if found is not None:
                        return _Created(found, adopted=True)
                    unknown = str(exc)  # certainly not created: sending it again is free
            return _Created(None, adopted=False, refused=unknown)

    async def _not_created(self, request: VideoRequest, refused: str | None) -> None:
        record = self.state.records[request.video_id]
        if refused is None:
            job_id = record.remote_id or request.synthesis_id
            await self._fail(request, "Conflict", f"job id {job_id} exists but cannot be read")
            return
        # Nothing was paid; the record stays "submitting", so the next apply looks the job
        # up first and submits it only if it still does not exist.
        self.summary.failed.append(request.video_id)
        message = f"not submitted: {redact(refused)}; the next apply submits it (nothing paid)"
        self.emit(Event("failed", request.video_id, message, {"code": "NotSubmitted"}))

    async def _adopted(self, request: VideoRequest, job: RemoteJob) -> None:
        await self._record_submitted(request, job)
        self.summary.counts["adopted"] += 1
        self.emit(
            Event("adopted", request.video_id, f"adopted existing job {job.id} (no new render)")
        )

    async def _guard(self, actions: Sequence[Action], work: Callable[[], Awaitable[None]]) -> None:
        """Run the work of ``actions``' videos; an answer that does not fit, a local write
        refused or a lookup out of time ends these videos only, never the whole run.
        ``work`` is made here, so a task cancelled before it starts leaves no coroutine
        that was never awaited."""
        try:
            await work()
        except (UntrustedAnswerError, LocalResourceError, JobTimeoutError) as exc:
            for action in actions:
                if action.request is not None:
                    await self._not_finished(action.request, exc)

    async def _not_finished(self, request: VideoRequest, exc: Exception) -> None:
        """Report ``exc`` for a video whose record stays as it is: in flight, adopted by
        its id or hash by the next apply, never marked done nor failed (a new render)."""
        video_id = request.video_id
        record = self.state.records.get(video_id)
        if record is None or record.status == "downloaded":
            return
        if video_id in self.summary.failed or video_id in self.summary.timed_out:
            return
        message = redact(str(exc))
        if isinstance(exc, JobTimeoutError):
            self.summary.timed_out.append(video_id)
            self.emit(Event("timeout", video_id, f"{message}; the next apply resumes it"))
            return
        code = LOCAL_CODE if isinstance(exc, LocalResourceError) else UNTRUSTED_CODE
        await self._put(record.model_copy(update={"error": JobError(code=code, message=message)}))
        self.summary.failed.append(video_id)
        after = (
            "the next apply downloads it (no new render)"
            if record.status == "succeeded"
            else "the next apply looks the job up by its id or hash (no new render)"
        )
        self.emit(Event("failed", video_id, f"failed: {code}: {message}; {after}", {"code": code}))

    async def _lookup(self, record: StateRecord) -> RemoteJob | None:
        """The remote job of ``record``, or None when the service has no such job; within
        the deadline (a listing that never ends is given up on)."""
        limit = self.options.deadline
        try:
            async with asyncio.timeout(limit):
                return await self._lookup_once(record)
        except TimeoutError:
            raise JobTimeoutError(
                f"looking up job {record.remote_id or record.synthesis_id} took more than "
                f"{limit:g} s"
            ) from None

    async def _lookup_once(self, record: StateRecord) -> RemoteJob | None:
        if record.remote_id:
            try:
                return await self.client.get(record.remote_id)
            except NotFoundError:
                return None
        # Preview jobs get their id from the server: find a lost one by its content hash.
        attempt = str(record.attempt)
        async for job in self.client.list_jobs():
            props = job.custom_properties
            if props.get(HASH_PROPERTY) == record.input_hash and (
                props.get(ATTEMPT_PROPERTY, "0") == attempt
            ):
                return job
        return None

    async def _follow(self, request: VideoRequest) -> None:
        """Wait for the job to finish, then download and record it."""
        record = self.state.records[request.video_id]
        if record.status == "succeeded":
            job = await self._lookup(record)
        else:
            job = await self._wait_final([request])
        if job is None:
            return
        await self._finish(request, job)

    async def _wait_final(self, requests: Sequence[VideoRequest]) -> RemoteJob | None:
        """Wait until the job of ``requests`` (one video, or the videos of one pack) ends."""
        record = self.state.records[requests[0].video_id]
        started = time.monotonic()
        timeout = self.options.deadline
        future: asyncio.Future[RemoteJob | None] = asyncio.get_running_loop().create_future()
        remote_id = record.remote_id or record.synthesis_id
        self._requests[remote_id] = list(requests)
        self._waiters[remote_id] = future
        self._wake.set()
        try:
            remaining = max(0.0, timeout - (time.monotonic() - started))
            job = await asyncio.wait_for(future, remaining)
        except TimeoutError:
            for request in requests:
                current = self.state.records[request.video_id]
                status = current.remote_status or current.status
                if current.remote_status and current.remote_status not in DOCUMENTED_STATUSES:
                    status = f"{status!r} (a status the API does not document)"
                problem = f" (last poll: {self._poll_problem})" if self._poll_problem else ""
                message = (
                    f"job {remote_id} still {status} after "
                    f"{timeout:g} s{problem}; it stays recorded and the next apply resumes it"
                )
                self.summary.timed_out.append(request.video_id)
                self.emit(Event("timeout", request.video_id, message))
            return None
        finally:
            self._waiters.pop(remote_id, None)
            self._requests.pop(remote_id, None)
            self._unknown_since.pop(remote_id, None)
        if job is None and record.surface == "preview":
            await self._named_another_job(requests, record)
        if job is None:
            for request in requests:
                await self._fail(
                    request,
                    GONE_CODE,
                    "the remote job disappeared before it was downloaded; "
                    "the next plan re-renders it",
                )
        return job

    async def _named_another_job(
        self, requests: Sequence[VideoRequest], record: StateRecord
    ) -> None:
        """A preview job gone right away may never have existed: its id came from the
        create's answer. When the listing shows a job with this video's content hash, the
        answer was wrong; the record goes back to an unknown outcome, adopted next time."""
        found = await self._lookup(record.model_copy(update={"remote_id": None}))
        if found is None or found.id == record.remote_id:
            return
        for request in requests:
            current = self.state.records[request.video_id]
            await self._put(current.model_copy(update={"status": "submitting", "remote_id": None}))
        raise UntrustedAnswerError(
            f"the create was answered with job id {record.remote_id}, which the service does "
            f"not know; job {found.id} carries this video's content hash"
        )

    async def _finish(self, request: VideoRequest, job: RemoteJob) -> None:
        if job.status == "Failed":
            await self._record_failed(request, job)
            return
        if job.status != "Succeeded":
            raise UntrustedAnswerError(
                f"job {job.id} is {job.status!r} where a finished job was expected"
            )
        record = self.state.records[request.video_id]
        if record.status != "succeeded":
            packed = record.pack_index is not None  # the job's totals are the whole pack's
            record = await self._put(
                record.model_copy(
                    update={
                        "status": "succeeded",
                        "remote_status": job.status,
                        "completed_at": _service_time(job.last_action),
                        "duration_ms": None if packed else job.duration_ms,
                        "billing": {} if packed else dict(job.billing),
                    }
                )
            )
        await self._download(request, job)

    async def _record_failed(self, request: VideoRequest, job: RemoteJob) -> None:
        code = job.error_code or "Failed"
        message = redact(job.error_message or "the service reported a failure")
        await self._fail(
            request, code, message, remote_status=job.status, at=_service_time(job.last_action)
        )

    async def _fail(
        self,
        request: VideoRequest,
        code: str,
        message: str,
        remote_status: str | None = None,
        at: str | None = None,
    ) -> None:
        """``at``: the service's time of the failure; a failure seen only here has none."""
        record = self.state.records.get(request.video_id) or _record_for(request, "failed", None)
        if code == GONE_CODE:
            self.state.note_gone(record.remote_id or record.synthesis_id)
        await self._put(
            record.model_copy(
                update={
                    "status": "failed",
                    "error": JobError(code=code, message=message),
                    "remote_status": remote_status or record.remote_status,
                    "completed_at": at,
                }
            )
        )
        self.summary.failed.append(request.video_id)
        self.emit(Event("failed", request.video_id, f"failed: {code}: {message}", {"code": code}))

    async def _download_failed(self, request: VideoRequest, message: str) -> None:
        """The job is paid for and may still be there: it stays in flight (``succeeded``),
        so the next apply downloads it again instead of planning a new render."""
        record = self.state.records[request.video_id]
        await self._put(
            record.model_copy(update={"error": JobError(code=DOWNLOAD_CODE, message=message)})
        )
        self.summary.failed.append(request.video_id)
        self.emit(
            Event(
                "failed",
                request.video_id,
                f"failed: {DOWNLOAD_CODE}: {message}; the next apply downloads it again "
                "(no new render)",
                {"code": DOWNLOAD_CODE},
            )
        )

    # -- download ------------------------------------------------------------------
    async def _download(self, request: VideoRequest, job: RemoteJob) -> None:
        target = self.workspace.output_path(request)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if exc.errno not in _LOCAL_ERRNOS:
                raise
            raise LocalResourceError(
                self.workspace.display(target.parent), exc.strerror or str(exc)
            ) from None
        index = self.state.records[request.video_id].pack_index
        url, expected = self._result_of(job, index, target)
        if not url:  # the service's fault: the paid job is kept and fetched again later
            await self._download_failed(request, "the job succeeded but returned no result URL")
            return
        gone = False
        subtitles: OutputFile | None = None

        async def refresh(failure: DownloadError) -> tuple[str, int | None] | None:
            """A fresh GET gives a fresh signed URL; a gone job cannot be downloaded."""
            nonlocal job, gone
            self.emit(Event("info", request.video_id, f"download failed: {redact(str(failure))}"))
            try:
                job = await self.client.get(job.id)
            except NotFoundError:
                gone = True
                return None
            fresh, size = self._result_of(job, index, target)
            return (fresh, size) if fresh else None

        async def refresh_sidecar(failure: DownloadError) -> tuple[str, int | None] | None:
            """The subtitles sit beside the video under the same signature: an expired
            one is fetched again from the fresh video URL, which the video then takes."""
            nonlocal url, expected
            fresh = await refresh(failure)
            if fresh is None:
                return None
            url, expected = fresh
            return _sidecar_url(url), None

        try:
            if _external_subtitles(request):
                # Before the video, and recorded at once: a video recorded after a crash
                # (by the hash written ahead of its rename) has them too.
                subtitles = await self._fetch_subtitles(_sidecar_url(url), target, refresh_sidecar)
                record = self.state.records[request.video_id]
                await self._put(record.model_copy(update={"subtitles": subtitles}))
            size, digest = await self._fetch(url, target, expected, request.video_id, refresh)
        except OSError as exc:
            if exc.errno not in _LOCAL_ERRNOS:
                raise
            # The temp file beside the target stands for the target in the message.
            failed = Path(exc.filename) if exc.filename else target
            where = self.workspace.display(target if failed.parent == target.parent else failed)
            raise LocalResourceError(where, exc.strerror or str(exc)) from None
        except DownloadError as exc:
            if gone:
                await self._fail(
                    request, GONE_CODE, "the remote job expired before its video was downloaded"
                )
            else:
                await self._download_failed(request, redact(str(exc)))
            return
        record = self.state.records[request.video_id]
        output = OutputFile(path=self.workspace.display(target), size=size, sha256=digest)
        packed = index is not None
        # On the event loop, with no await since the file was renamed into place: no
        # other video moves on while a file on disk is not yet vouched for by state.
        self.state.put(
            record.model_copy(
                update={
                    "status": "downloaded",
                    "output": output,
                    "pending_output": None,
                    "subtitles": subtitles,
                    "error": None,
                    "duration_ms": record.duration_ms if packed else job.duration_ms,
                    "billing": record.billing if packed else dict(job.billing) or record.billing,
                }
            )
        )
        self.summary.counts["downloaded"] += 1
        if not packed:  # a pack's bill is counted once, for the whole pack
            self._count_billing(job)
        self.emit(
            Event(
                "downloaded",
                request.video_id,
                f"saved {output.path} ({size:,} bytes)",
                {"path": output.path, "size": size, "sha256": digest},
            )
        )
        if self.options.delete_remote and not packed:
            await self._delete_remote(request, job)

    def _result_of(
        self, job: RemoteJob, index: int | None, target: Path
    ) -> tuple[str | None, int | None]:
        """Where the video of ``job`` is, and its size when the job says."""
        if index is not None or _in_container(job):
            # The service wrote input N to {path}/{job id}/000N.{ext} in our container (a
            # single video is input 1); the blob's own length is what the download is
            # checked against.
            ext = target.suffix.lstrip(".")
            return self.destination.output_url(job.id, index or 1, ext), None
        return job.result_url, job.size_in_bytes

    def _count_billing(self, job: RemoteJob) -> None:
        self.summary.characters += sum(v for k, v in job.billing.items() if "Characters" in k)
        self.summary.avatar_seconds += job.billing.get("talkingAvatarDurationSeconds", 0)

    async def _fetch(
        self, url: str, target: Path, expected: int | None, video_id: str, refresh: UrlRefresh
    ) -> tuple[int, str]:
        tmp = atomicfile.new_temp(target)
        try:
            size, digest = await self.client.download(
                url,
                tmp,
                expected_size=expected,
                on_progress=_download_progress,
                kind=target.suffix.lstrip(".") or None,
                refresh=refresh,
            )
            # Write-ahead: state knows the file's hash before the file takes its place.
            pending = OutputFile(path=self.workspace.display(target), size=size, sha256=digest)
            record = self.state.records[video_id]
            self.state.put(record.model_copy(update={"pending_output": pending}))
            atomicfile.commit(tmp, target)
            checkpoint("after-download")
        finally:
            atomicfile.discard(tmp)
        # The file on disk is what state vouches for; hashing it also fills the stat cache.
        hashes = self.workspace.hashes
        if hashes.sha256(self.workspace.display(target), target, verify=True) != digest:
            raise DownloadError(f"{target.name} changed while it was being saved")
        await self._store(target, size, digest, video_id)
        return size, digest

    async def _fetch_subtitles(self, url: str, video: Path, refresh: UrlRefresh) -> OutputFile:
        """The job's external ``.vtt`` beside its video: temp file, checked, renamed."""
        target = video.with_suffix(SUBTITLE_SUFFIX)
        tmp = atomicfile.new_temp(target)
        try:
            size, digest = await self.client.download(
                url, tmp, on_progress=_download_progress, refresh=refresh
            )
            with tmp.open("rb") as handle:
                head = handle.read(16)
            if not head.removeprefix(b"\xef\xbb\xbf").startswith(b"WEBVTT"):
                raise DownloadError(f"{target.name}: the subtitle file is not WebVTT")
            atomicfile.commit(tmp, target)
        finally:
            atomicfile.discard(tmp)
        await self._store(target, size, digest, None)
        return OutputFile(path=self.workspace.display(target), size=size, sha256=digest)

    async def _delete_remote(self, request: VideoRequest, job: RemoteJob) -> None:
        try:
            await self.client.delete(job.id)
        except (ServiceError, TransportError) as exc:
            self.emit(Event("info", request.video_id, f"could not delete job {job.id}: {exc}"))
            return
        self.emit(Event("deleted", request.video_id, f"deleted remote job {job.id}"))

    # -- polling -------------------------------------------------------------------
    async def _poll_loop(self) -> None:
        interval = self.options.poll_interval
        while True:
            if not self._waiters:
                self._wake.clear()
                await self._wake.wait()
                interval = self.options.poll_interval
            changed = await self._poll_once()
            interval = (
                self.options.poll_interval
                if changed
                else min(interval * 1.5, self.options.poll_max_interval)
            )
            if self._waiters:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake_for_new(), interval)

    async def _wake_for_new(self) -> None:
        self._wake.clear()
        await self._wake.wait()

    async def _poll_once(self) -> bool:
        ids = set(self._waiters)
        if not ids:
            return False
        try:
            seen = await self.poll_jobs(ids)
        except (ServiceError, TransportError) as exc:
            self._poll_problem = redact(str(exc))
            self.emit(Event("info", None, f"polling failed, will retry: {self._poll_problem}"))
            return False
        self._poll_problem = None
        # Different jobs, different records: their writes may overlap.
        changes = await asyncio.gather(*(self._observe(i, job) for i, job in seen.items()))
        return any(changes)

    async def poll_jobs(self, ids: set[str]) -> dict[str, RemoteJob | None]:
        """The current state of the jobs ``ids`` (``None``: gone), the cheapest way: one
        list page per 100 jobs (in-flight jobs are the newest, listed first) above
        ``list_threshold`` jobs, one GET per job below."""
        if len(ids) > self.options.list_threshold:
            return await self._poll_by_list(ids)
        return await self._poll_by_get(ids)

    async def _poll_by_get(self, ids: set[str]) -> dict[str, RemoteJob | None]:
        seen: dict[str, RemoteJob | None] = {}
        for remote_id in sorted(ids):
            try:
                seen[remote_id] = await self.client.get(remote_id)
            except NotFoundError:
                seen[remote_id] = None
        return seen

    async def _poll_by_list(self, ids: set[str]) -> dict[str, RemoteJob | None]:
        seen: dict[str, RemoteJob | None] = {}
        listed = 0
        async for job in self.client.list_jobs():
            listed += 1
            if job.id in ids:
                seen[job.id] = job
                if len(seen) == len(ids):
                    break
            # Many newer jobs (another run, another tool) can bury ours: once the pages
            # read outnumber the jobs still unseen, a GET each is the cheaper way.
            if listed % LIST_PAGE == 0 and listed // LIST_PAGE >= len(ids) - len(seen):
                break
        missing = ids - set(seen)
        # Not listed can mean gone, or created after the listing began: confirm with GET.
        seen.update(await self._poll_by_get(missing))
        return seen

    async def _observe(self, remote_id: str, job: RemoteJob | None) -> bool:
        future = self._waiters.get(remote_id)
        requests = self._requests.get(remote_id)
        if future is None or requests is None or future.done():
            return False
        if job is None:
            future.set_result(None)
            return True
        changed = False
        for request in requests:
            record = self.state.records[request.video_id]
            if record.remote_status == job.status:
                continue
            changed = True
            status = "running" if job.status == "Running" else record.status
            if job.status == "NotStarted":
                status = "submitted"
            await self._put(
                record.model_copy(update={"remote_status": job.status, "status": status})
            )
            self.emit(
                Event(
                    "status", request.video_id, f"{job.id} is {job.status}", {"status": job.status}
                )
            )
        checkpoint("polling")
        if job.status not in DOCUMENTED_STATUSES and not future.done():
            since = self._unknown_since.setdefault(remote_id, time.monotonic())
            if time.monotonic() - since >= self.options.unknown_status_wait:
                future.set_exception(
                    UntrustedAnswerError(
                        f"job {job.id} has reported the status {job.status!r} for "
                        f"{self.options.unknown_status_wait:g} s; the API documents only "
                        f"{', '.join(DOCUMENTED_STATUSES)}"
                    )
                )
        if job.is_final and not future.done():  # a timeout may have ended the wait meanwhile
            future.set_result(job)
        return changed


def in_flight(state: State) -> list[StateRecord]:
    return [r for r in state.records.values() if r.status in IN_FLIGHT]

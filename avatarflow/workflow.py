"""The workflow as library functions: ``plan``, ``apply``, ``status``, ``prune``.

Each one takes a manifest path and typed options (:mod:`avatarflow.options`), reports
progress through a callback (:mod:`avatarflow.events`) and returns what it did; errors
are raised from the one tree in :mod:`avatarflow.errors`. The command line only parses
flags, calls one of these and prints.

The path of an apply::

    manifest ─ build_requests ─▶ requests ─┐
    state store ─ load_state ─▶ state ─────┼─ make_plan ─▶ plan ─ Runner ─▶ state, outputs
    workspace ─ output checks ─────────────┘

A plan that finds nothing to do is memoised (:mod:`avatarflow.planmemo`) from what each
reader returned; the next ``plan`` or ``apply`` answers from the memo without parsing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import Location, StalePlanError
from .events import LockWait, PlanReady, ProgressSink, Starting
from .options import ApplyOptions, PlanOptions, PruneOptions, StatusOptions
from .planmemo import Observed, StateRead, recall, remember
from .planner import ActionKind, Plan, make_plan, select
from .pricing import Prices, check_budget, prices_for
from .workspace import TargetName, Workspace, target_name

if TYPE_CHECKING:  # loaded when a plan is made in full: a recalled plan needs none of it
    from .build import Built
    from .lock import HeldLock, LockInfo
    from .manifest import LoadedManifest
    from .payload import VideoRequest
    from .planmemo import Recalled
    from .runner import RunOptions, Summary
    from .service import Service
    from .state import State, StateRecord, StateStore

Confirm = Callable[[Plan], bool]


def _quiet(event: object) -> None:
    """The default progress callback: a script that passes none hears nothing."""


def _lock(store: StateStore, timeout: float, emit: ProgressSink) -> HeldLock:
    """The state lock of ``store``, reporting each wait for it as a ``LockWait``."""
    from .lock import command_line

    return store.lock(command_line(), timeout, lambda message: emit(LockWait(message)))


# -- opening a manifest ---------------------------------------------------------------
def open_manifest(
    path: Path | str, target: TargetName = "azure"
) -> tuple[LoadedManifest, Workspace]:
    """The manifest at ``path`` and the folders of ``target`` beside it (checked to be
    inside the manifest's folder)."""
    from .manifest import load_manifest

    path = Path(path)
    manifest = load_manifest(path, display_path=path.name)
    return manifest, Workspace.of(manifest, target)


def pack_max_inputs(manifest: LoadedManifest) -> int | None:
    """Inputs per packed job, or None when videos are not packed."""
    service = manifest.model.service
    return service.pack_max_inputs if service.pack else None


def full_plan(
    manifest: LoadedManifest,
    workspace: Workspace,
    built: Built,
    state: State,
    state_read: StateRead | None,
    *,
    remote_gone: frozenset[str] = frozenset(),
    replace: frozenset[str] = frozenset(),
    verify: bool = False,
) -> tuple[Plan, Observed | None]:
    """The plan of ``built`` against ``state``, the outputs on disk and the video stores,
    with what it read (None when it read something a memo cannot vouch for: a remote
    state, the service)."""
    from .stores import fetch_source, video_stores

    outputs = workspace.output_checker(verify=verify)
    fetch_from = fetch_source(state, video_stores(manifest, workspace))
    plan = make_plan(
        built.requests,
        state,
        outputs,
        remote_gone=remote_gone,
        replace=replace,
        fetch_from=fetch_from,
    )
    workspace.save_hashes()
    if state_read is None or remote_gone or replace:
        return plan, None
    return plan, Observed(manifest.sha256, built.read, state_read, outputs.read)


# -- plan ---------------------------------------------------------------------------
@dataclass(frozen=True)
class PlanResult:
    plan: Plan
    warnings: list[str]
    pack_max_inputs: int | None = None  # set when the videos to render travel in packs
    recalled: bool = False  # answered from the plan memo
    rendered: int = 0  # videos this plan rendered (the others came from a cache)
    prices: Prices | None = None  # the manifest's (None when recalled: nothing to pay)


def plan(manifest: Path | str, options: PlanOptions | None = None) -> PlanResult:
    """What ``apply`` would do for every video, and why. Reads, never writes the state."""
    options = options or PlanOptions()
    path, target = Path(manifest), target_name(options.emulator)
    recalled = None if options.verify or options.refresh else recall(path, target)
    if recalled is not None:
        return PlanResult(recalled.plan, recalled.warnings, recalled=True)
    from .build import build_requests
    from .incremental import RequestCache, plan_incremental, refill
    from .stores import load_state, open_store

    cache = RequestCache.open(path, target)
    skip = options.verify or options.refresh
    quick, reading = (None, None) if skip else plan_incremental(path, target, cache)
    if quick is not None:  # only the videos whose inputs changed were rendered
        return PlanResult(
            quick.plan, quick.warnings, quick.pack_max_inputs, False, quick.rendered, quick.prices
        )
    loaded, workspace = open_manifest(path, target)
    built = build_requests(loaded)
    workspace.check_output_paths(loaded, built.requests)
    state, read = load_state(open_store(loaded, workspace), workspace, built)
    gone: frozenset[str] = frozenset()
    if options.refresh:
        from .service import Service

        with Service(loaded.model.service, workspace) as service:
            gone = _refresh(service, workspace, built, state)
    the_plan, observed = full_plan(
        loaded, workspace, built, state, read, remote_gone=gone, verify=options.verify
    )
    if observed is not None:
        remember(path, target, the_plan, observed, built.warnings)
    outputs_read = observed.outputs if observed is not None else None
    refill(cache, reading, loaded, workspace, built, state, read, the_plan, outputs_read)
    rendered = len(built.requests)
    return PlanResult(
        the_plan, built.warnings, pack_max_inputs(loaded), False, rendered, prices_for(loaded.model)
    )


# -- apply --------------------------------------------------------------------------
@dataclass(frozen=True)
class ApplyResult:
    plan: Plan
    summary: Summary | None  # None when nothing was run (no changes, not confirmed)
    prices: Prices | None = None  # the manifest's, for what the summary's billing cost

    @property
    def ok(self) -> bool:
        """No video failed or timed out."""
        return self.summary is None or self.summary.ok


def apply(
    manifest: Path | str,
    options: ApplyOptions | None = None,
    *,
    on_event: ProgressSink | None = None,
    confirm: Confirm | None = None,
) -> ApplyResult:
    """Render what is new or changed, resuming anything already paid for.

    ``confirm`` is asked once the plan is known and has changes; without it the plan is
    applied as it is."""
    from .savedplan import SavedPlan, check, is_saved_plan, load

    options = options or ApplyOptions()
    emit = on_event or _quiet
    path, target = Path(manifest), target_name(options.emulator)
    saved: SavedPlan | None = None
    if is_saved_plan(path):  # applied exactly, or refused; it is its own confirmation
        saved = load(path)
        path, target = saved.manifest, saved.target  # type: ignore[assignment]
        confirm = None
    if not (options.selects or options.refresh or saved):
        recalled = _recall_locked(path, target, options.lock_timeout, emit)
        if recalled is not None:  # nothing to do: no request, no write
            emit(PlanReady(recalled.plan))
            return ApplyResult(recalled.plan, None)
    import asyncio  # here, not above: a plan recalled from its memo never loads it

    from .backends.rendered import RenderKeyedStore
    from .build import build_requests, find_request
    from .service import Service
    from .stores import load_state, migrate, open_store

    loaded, workspace = open_manifest(path, target)
    built = build_requests(loaded)
    for video_id in options.replace:
        find_request(loaded, built, video_id)  # unknown id: clear error before anything else
    workspace.check_output_paths(loaded, built.requests)  # so is a path apply could not write
    prices = prices_for(loaded.model)
    with Service(loaded.model.service, workspace) as service:
        store = open_store(loaded, workspace)
        with _lock(store, options.lock_timeout, emit):
            state, read = load_state(open_store(loaded, workspace), workspace, built)
            migrate(state)
            limited = _budget_check(loaded, options, prices)
            if limited is not None:  # over budget offline already: not even a status read
                offline, _ = full_plan(
                    loaded, workspace, built, state, None, replace=frozenset(options.replace)
                )
                limited(select(offline, options.only, options.exclude, built.ids()))
            gone: frozenset[str] = frozenset()
            if options.refresh or not isinstance(state.store, RenderKeyedStore):
                # A state kept by render knows offline when its jobs expire: apply plans
                # exactly as plan does. A state kept per video must ask.
                gone = _refresh(service, workspace, built, state)
            planned, observed = full_plan(
                loaded,
                workspace,
                built,
                state,
                read,
                remote_gone=gone,
                replace=frozenset(options.replace),
            )
            the_plan = select(planned, options.only, options.exclude, built.ids())
            if saved is not None:
                check(saved, the_plan)
            emit(PlanReady(the_plan, pack_max_inputs(loaded), prices=prices))
            if not the_plan.has_changes:
                if observed is not None and not options.selects:
                    remember(path, target, the_plan, observed, built.warnings)
                return ApplyResult(the_plan, None, prices)
            if limited is not None:
                limited(the_plan)
            if confirm is not None and not confirm(the_plan):
                return ApplyResult(the_plan, None, prices)
            _check_unchanged(open_store(loaded, workspace), the_plan, workspace, built)
            run_options = service.options(
                parallelism=options.parallelism,
                timeout=options.timeout,
                delete_remote=options.delete_remote,
            )
            emit(Starting(the_plan))
            summary = asyncio.run(
                _run(loaded, workspace, state, service, the_plan, run_options, emit)
            )
            if isinstance(state.store, RenderKeyedStore):
                state.store.share()  # while the lock is held: one writer of the index
    return ApplyResult(the_plan, summary, prices)


def _budget_check(
    manifest: LoadedManifest, options: ApplyOptions, prices: Prices
) -> Callable[[Plan], None] | None:
    """The check of ``--max-cost``/``--max-renders`` and the manifest's ``budget``, or
    None when there is no limit."""
    budget = manifest.model.budget
    if options.max_cost is None and options.max_renders is None and budget is None:
        return None

    def check(plan: Plan) -> None:
        check_budget(plan, prices, options, budget)

    return check


def _recall_locked(
    manifest: Path, target: TargetName, timeout: float, emit: ProgressSink
) -> Recalled | None:
    """The plan memo of a no-op apply, checked while holding the state lock: a running
    apply is reported as it would be without a memo, and cannot change the state between
    the check and the answer."""
    from .backends.local import LocalStore
    from .planmemo import read

    memo = read(manifest, target)
    if memo is None:
        return None
    store = LocalStore(manifest.resolve().parent / memo.state_dir, memo.state_dir)
    with _lock(store, timeout, emit):
        return memo.check()


def _refresh(service: Service, workspace: Workspace, built: Built, state: State) -> frozenset[str]:
    """Ask the service which jobs the plan relies on are gone; this checkout remembers
    them, so that the next offline plan knows too."""
    import asyncio

    from .remote import gone_jobs

    gone = asyncio.run(gone_jobs(service, workspace, built, state))
    for video_id in gone:
        record = state.records.get(video_id)
        if record is not None:
            state.note_gone(record.remote_id or record.synthesis_id)
    return gone


def _check_unchanged(store: StateStore, plan: Plan, workspace: Workspace, built: Built) -> None:
    """Refuse a plan whose state was changed meanwhile (a git pull, a hand edit, a push)."""
    from .stores import video_uses

    now = store.load()
    now.bind(video_uses(workspace, built))
    lineage = now.meta.lineage if now.meta else None
    if now.serials() != plan.serials or (plan.lineage and lineage != plan.lineage):
        raise StalePlanError(
            "the state changed since the plan was made; run apply again", Location(now.display)
        )


async def _run(
    manifest: LoadedManifest,
    workspace: Workspace,
    state: State,
    service: Service,
    plan: Plan,
    options: RunOptions,
    emit: ProgressSink,
) -> Summary:
    from .runner import JobSettings, Runner
    from .stores import video_stores

    jobs = JobSettings.of(manifest.model, service.destination)
    async with service.client() as client:
        runner = Runner(
            workspace, jobs, state, client, options, emit, video_stores(manifest, workspace)
        )
        return await runner.run(plan)


# -- status -------------------------------------------------------------------------
@dataclass(frozen=True)
class VideoStatus:
    """One video of the manifest or the state, as ``status`` reports it."""

    video: str
    status: str  # the recorded status, or "not rendered"
    in_manifest: bool
    current: bool  # False when the manifest now asks for another request than recorded
    output: str  # ok, missing, modified, none
    job: str | None
    remote: str | None  # with ``refresh``: the job's status at the service, or "gone"
    error: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def status(manifest: Path | str, options: StatusOptions | None = None) -> list[VideoStatus]:
    """Per video: recorded status, output present and intact, remote job state."""
    import asyncio

    from .build import build_requests
    from .incremental import RecordSummary, requested
    from .remote import job_statuses
    from .service import Service
    from .stores import load_state, open_store

    options = options or StatusOptions()
    target = target_name(options.emulator)
    known = requested(Path(manifest), target)  # from the request cache, when it can tell
    loaded, workspace = (
        (known.manifest, known.workspace) if known else open_manifest(manifest, target)
    )
    records = known.records() if known and not options.refresh else None
    remote: dict[str, str] = {}
    built = None
    if records is None:  # the state in full: a remote or per-video one, or asked of the service
        # Records kept by render are bound to the videos: that needs every request (the
        # cache's manifest is its head only).
        built = build_requests(open_manifest(manifest, target)[0] if known else loaded)
        state, _ = load_state(open_store(loaded, workspace), workspace, built)
        records = {vid: RecordSummary.of(r) for vid, r in state.records.items()}
        # A video whose request has no render yet: the render it had before, if any.
        for vid, r in state.previous.items():
            records.setdefault(vid, RecordSummary.of(r))
        if options.refresh and state.records:
            with Service(loaded.model.service, workspace) as service:
                remote = asyncio.run(job_statuses(service, state))
    wanted = (
        known.hashes
        if known
        else {r.video_id: r.content_hash for r in (built or build_requests(loaded)).requests}
    )
    outputs = workspace.output_checker(verify=options.verify)
    rows = []
    for video_id in sorted(wanted.keys() | records.keys()):
        record = records.get(video_id)
        rows.append(
            VideoStatus(
                video=video_id,
                status=record.status if record else "not rendered",
                in_manifest=video_id in wanted,
                current=record is not None and wanted.get(video_id) == record.input_hash,
                output=outputs.check(record.output, record.subtitles)
                if record and record.output
                else "none",
                job=record.job if record else None,
                remote=remote.get(video_id),
                error=record.error if record else None,
            )
        )
    workspace.save_hashes()
    return rows


# -- prune --------------------------------------------------------------------------
def prune(
    manifest: Path | str,
    options: PruneOptions | None = None,
    *,
    on_event: ProgressSink | None = None,
    confirm: Callable[[Pruning], bool] | None = None,
) -> list[str]:
    """Forget videos removed from the manifest (optionally their files and remote jobs)
    and remove renders unused for ``keep_days``; the ids forgotten. ``confirm`` is asked
    with all that is about to go, videos and renders alike: a render removed is a video
    paid again if a branch needs it back."""
    import asyncio

    from .build import build_requests
    from .remote import delete_jobs
    from .service import Service
    from .stores import load_state, open_store

    options = options or PruneOptions()
    emit = on_event or _quiet
    loaded, workspace = open_manifest(manifest, target_name(options.emulator))
    with Service(loaded.model.service, workspace) as service:
        store = open_store(loaded, workspace)
        with _lock(store, options.lock_timeout, emit):
            built = build_requests(loaded)
            state, read = load_state(open_store(loaded, workspace), workspace, built)
            the_plan, _ = full_plan(loaded, workspace, built, state, read)
            removed = [
                a.record for a in the_plan.actions if a.kind is ActionKind.FORGET and a.record
            ]
            unused = _unused_renders(built, state, options.keep_days)
            proposal = Pruning(removed, unused)
            if not (removed or unused) or (confirm is not None and not confirm(proposal)):
                return []
            _prune_renders(loaded, workspace, state, unused, options.store, emit)
            if options.remote:
                # A packed job also holds videos that stay: it is not this prune's to delete.
                gone = {r.video_id for r in removed}
                kept = {r.remote_id for r in state.records.values() if r.video_id not in gone}
                doomed = [r for r in removed if r.remote_id not in kept]
                asyncio.run(delete_jobs(service, doomed))
            for record in removed:
                if options.delete_files and record.output:
                    (loaded.root / record.output.path).unlink(missing_ok=True)
                state.forget(record.video_id)
    return [r.video_id for r in removed]


@dataclass(frozen=True)
class UnusedRender:
    """A final render no video of the manifest uses, as a prune's confirmation shows it."""

    request_hash: str
    synthesis_id: str  # names the video it was made for
    job_id: str | None
    ended: str  # the service's time


@dataclass(frozen=True)
class Pruning:
    """What a prune is about to do: the videos it forgets, the renders it removes."""

    videos: list[StateRecord]
    renders: list[UnusedRender]


def _unused_renders(built: Built, state: State, keep_days: float) -> list[UnusedRender]:
    """Final renders no video of the manifest uses that ended more than ``keep_days``
    ago by the service's clock: like ``git gc``, the window keeps what a branch needs."""
    from datetime import UTC, datetime, timedelta

    from .backends.rendered import RenderKeyedStore
    from .renders import parse_time

    store = state.store
    if not isinstance(store, RenderKeyedStore):
        return []
    used = {r.content_hash for r in built.requests}
    cutoff = datetime.now(UTC) - timedelta(days=keep_days)
    unused = []
    for request_hash, render in sorted(store.renders.items()):
        when = render.completed_at or render.submitted_at
        ended = parse_time(when)
        if request_hash not in used and render.is_final and ended is not None and ended <= cutoff:
            assert when is not None  # parsed above
            unused.append(UnusedRender(request_hash, render.synthesis_id, render.job_id, when))
    return unused


def _prune_renders(
    manifest: LoadedManifest,
    workspace: Workspace,
    state: State,
    unused: list[UnusedRender],
    from_store: bool,
    emit: ProgressSink,
) -> None:
    """Remove the records of ``unused`` renders (and their videos from the local store,
    once no render left delivered the same bytes)."""
    from collections import Counter

    from .backends.rendered import RenderKeyedStore
    from .events import Event
    from .stores import video_stores
    from .videostore import StoredObject

    store = state.store
    assert isinstance(store, RenderKeyedStore)
    local = video_stores(manifest, workspace).local
    # Counted once: a prune of thousands of renders must not scan them all per render.
    users = Counter(r.output.sha256 for r in store.renders.values() if r.output is not None)
    for unused_render in unused:
        request_hash = unused_render.request_hash
        render = store.renders[request_hash]
        store.delete_render(request_hash)
        emit(Event("pruned", None, f"removed render {request_hash[:12]} (job {render.job_id})"))
        if render.output is None:
            continue
        users[render.output.sha256] -= 1
        if from_store and users[render.output.sha256] == 0:
            local.delete(StoredObject(render.output.sha256, render.output.size))


# -- the smaller commands -----------------------------------------------------------
def validate(manifest: Path | str) -> Built:
    """Load, render and check every video; no network, no state. A manifest that passes
    leaves its answer for the next ``validate`` of the same files (:mod:`validatememo`)."""
    from .build import build_requests
    from .validatememo import remember

    loaded, _ = open_manifest(manifest)
    built = build_requests(loaded)
    read, found = built.read, len(built.requests)
    remember(
        loaded.path,
        loaded.sha256,
        read.templates_dir,
        read.templates,
        read.inputs,
        found,
        built.warnings,
    )
    return built


def render_request(manifest: Path | str, video_id: str) -> VideoRequest:
    """The rendered input and exact request of one video."""
    from .build import build_requests, find_request

    loaded, _ = open_manifest(manifest)
    return find_request(loaded, build_requests(loaded), video_id)


def force_unlock(manifest: Path | str, lock_id: str, *, emulator: bool = False) -> LockInfo:
    """Break a state lock left behind by a process that is gone."""
    from .stores import open_store

    loaded, workspace = open_manifest(manifest, target_name(emulator))
    return open_store(loaded, workspace).force_unlock(lock_id)


@dataclass(frozen=True)
class Copied:
    count: int
    source: str
    destination: str


def copy_state(
    manifest: Path | str,
    *,
    pull: bool,
    force: bool = False,
    lock_timeout: float = 0.0,
    on_event: ProgressSink | None = None,
) -> Copied:
    """Copy the remote state into the local files (``pull``) or the local files into the
    remote state; ``force`` overwrites a destination of another lineage."""
    from contextlib import ExitStack

    from .backends import copy_state as copy_records
    from .build import build_requests
    from .errors import ConfigError
    from .stores import local_store, remote_store, video_uses

    emit = on_event or _quiet
    loaded, workspace = open_manifest(manifest)
    remote = remote_store(loaded, workspace)
    if remote is None:
        raise ConfigError(
            "the manifest keeps its state locally; set service.state.backend: azureblob "
            "to pull or push a remote state"
        )
    local = local_store(workspace)
    source, destination = (remote, local) if pull else (local, remote)
    # Always remote first, then local: two commands can never hold one each and wait.
    with ExitStack() as locks:
        for store in (remote, local):
            locks.enter_context(_lock(store, lock_timeout, emit))
        uses = video_uses(workspace, build_requests(loaded))
        count = copy_records(source, destination, force=force, uses=uses)
    return Copied(count, source.display, destination.display)

"""Commands that talk to the service: apply, status, prune, emulator, force-unlock."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click
from rich.table import Table

from .cli import verify_option
from .display import ApplyProgress, print_plan, print_rows
from .errors import ConfigError, Location, StalePlanError
from .lock import HeldLock, command_line
from .planner import ActionKind, Plan, select
from .pricing import Prices, billed_cost, check_budget, prices_for
from .project import Project, TargetName
from .state import IN_FLIGHT, State, StateRecord

if TYPE_CHECKING:  # loaded when a command talks to the service: plan never does
    from .planmemo import Recalled
    from .runner import ApplyOptions, Event, Summary

COMMANDS: list[click.Command] = []
EMULATOR_KEY = "emulator-local-key"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def _command(func: click.Command) -> click.Command:
    COMMANDS.append(func)
    return func


# -- the service connection -----------------------------------------------------------
class Service:
    """Opens the client lazily, so a run with nothing to do makes no request at all."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self._stack = ExitStack()
        self._endpoint: tuple[str, str | None] | None = None

    def endpoint(self) -> tuple[str, str | None]:
        """(base URL, key) — starting the embedded emulator for the draft target."""
        if self._endpoint is None:
            if self.project.target.is_emulator:
                from .emulator import Emulator, EmulatorConfig

                emulator = Emulator(self.project.emulator_data_dir, EmulatorConfig.from_env())
                self._stack.enter_context(emulator)
                self._endpoint = (emulator.url, EMULATOR_KEY)
            else:
                self._endpoint = ("", None)
        return self._endpoint

    @asynccontextmanager
    async def client(self) -> AsyncIterator[Any]:
        from .client import ServiceConfig, SpeechClient
        from .credentials import KeyCredential

        service = self.project.manifest.model.service
        url, key = self.endpoint()
        if url:
            config = ServiceConfig(
                endpoint=url,
                api_version=service.api_version,
                credential=KeyCredential(key or EMULATOR_KEY),
            )
        else:
            config = ServiceConfig.from_env(
                service.api_version, region=service.region, endpoint=service.endpoint
            )
        async with SpeechClient(config) as client:
            yield client

    def options(self, **kw: Any) -> ApplyOptions:
        from .runner import ApplyOptions

        if self._is_local():  # a service on this machine: poll briskly
            return ApplyOptions(poll_interval=0.2, poll_max_interval=1.0, **kw)
        return ApplyOptions(**kw)

    def _is_local(self) -> bool:
        """The draft target, or an endpoint on loopback (``avatarflow emulator``)."""
        if self.project.target.is_emulator:
            return True
        from .client import ENV_ENDPOINT

        service = self.project.manifest.model.service
        url = service.endpoint or ("" if service.region else os.environ.get(ENV_ENDPOINT, ""))
        return urlsplit(url.strip()).hostname in LOOPBACK_HOSTS

    def close(self) -> None:
        self._stack.close()


def _needs_refresh(project: Project, record: StateRecord) -> bool:
    return record.status in IN_FLIGHT or (
        record.status == "downloaded" and project.check_output(record) != "ok"
    )


async def _gone(service: Service, project: Project, state: State) -> frozenset[str]:
    """Video ids whose remote job no longer exists (only asked when it matters)."""
    from .errors import NotFoundError
    from .payload import HASH_PROPERTY

    wanted = {r.video_id for r in project.requests}
    # A "submitting" record is never gone: the runner adopts its job, or submits it under
    # the same id when the create never reached the service (no expiry to report).
    records = [
        r
        for r in state.records.values()
        if r.video_id in wanted and r.status != "submitting" and _needs_refresh(project, r)
    ]
    if not records:
        return frozenset()
    gone: set[str] = set()
    async with service.client() as client:
        listed: dict[str, Any] | None = None
        exists: dict[str, bool] = {}  # the videos of one pack share one job: ask once
        for record in records:
            if record.remote_id:
                if record.remote_id not in exists:
                    try:
                        await client.get(record.remote_id)
                        exists[record.remote_id] = True
                    except NotFoundError:
                        exists[record.remote_id] = False
                if not exists[record.remote_id]:
                    gone.add(record.video_id)
                continue
            if listed is None:  # preview submit lost before the id was known
                listed = {
                    j.custom_properties.get(HASH_PROPERTY): j async for j in client.list_jobs()
                }
            if record.input_hash not in listed:
                gone.add(record.video_id)
    return frozenset(gone)


def _plan_with_refresh(
    project: Project, service: Service, state: State, replace: frozenset[str]
) -> Plan:
    gone = asyncio.run(_gone(service, project, state))
    return project.plan(state, remote_gone=gone, replace=replace)


# -- reporting ------------------------------------------------------------------------
def _reporter(as_json: bool, err: Any) -> Callable[[Event], None]:
    def report(event: Event) -> None:
        if as_json:
            line = {
                "event": event.kind,
                "video": event.video_id,
                "message": event.message,
                **event.data,
            }
            click.echo(json.dumps(line, ensure_ascii=False))
            return
        who = f"[bold]{event.video_id}[/]: " if event.video_id else ""
        style = {"failed": "red", "timeout": "red", "downloaded": "green"}.get(event.kind, "")
        text = f"[{style}]{event.message}[/]" if style else event.message
        err.print(f"{who}{text}", highlight=False)

    return report


def _summary_table(summary: Summary, prices: Prices) -> Table:
    table = Table(title="Apply summary", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    c = summary.counts
    for label, value in (
        ("created", c["created"]),
        ("re-rendered", c["rerendered"]),
        ("adopted (no new render)", c["adopted"]),
        ("jobs created (paid creates)", c["jobs"]),
        ("downloaded", c["downloaded"]),
        ("forgotten", c["forgotten"]),
        ("failed", len(summary.failed)),
        ("timed out (resumable)", len(summary.timed_out)),
        ("characters billed", summary.characters),
        ("avatar seconds billed", summary.avatar_seconds),
    ):
        table.add_row(label, f"{value:,}")
    billed = {
        "neuralCharacters": summary.characters,
        "talkingAvatarDurationSeconds": summary.avatar_seconds,
    }
    table.add_row(
        f"cost billed (list prices as of {prices.as_of})",
        prices.money(billed_cost(billed, prices)),
    )
    return table


def _confirm(yes: bool, command: str = "apply", question: str = "Apply this plan?") -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise ConfigError(f"{command} needs confirmation: run it on a terminal or pass --yes")
    if not click.confirm(question, default=False):
        raise click.exceptions.Abort()


def _lock(project: Project, timeout: float, err: Any) -> HeldLock:
    return project.store().lock(
        command_line(), timeout, on_wait=lambda msg: err.print(msg, highlight=False)
    )


def _recall_locked(manifest: Path, target: TargetName, timeout: float, err: Any) -> Recalled | None:
    """The plan memo of a no-op apply, checked while holding the state lock: a running
    apply is reported as it would be without a memo, and cannot change the state between
    the check and the answer."""
    from .backends.local import LocalStore
    from .planmemo import read

    memo = read(manifest, target)
    if memo is None:
        return None
    store = LocalStore(manifest.resolve().parent / memo.state_dir, memo.state_dir)
    with store.lock(command_line(), timeout, on_wait=lambda msg: err.print(msg, highlight=False)):
        return memo.check()


def _check_unchanged(project: Project, plan: Plan) -> None:
    """Refuse a plan whose state was changed meanwhile (a git pull, a hand edit, a push)."""
    now = project.load_state()
    lineage = now.meta.lineage if now.meta else None
    if now.serials() != plan.serials or (plan.lineage and lineage != plan.lineage):
        raise StalePlanError(
            "the state changed since the plan was made; run apply again", Location(now.display)
        )


def _ids(values: tuple[str, ...]) -> frozenset[str]:
    return frozenset(values)


# -- commands -------------------------------------------------------------------------
def _target(emulator: bool) -> TargetName:
    return "emulator" if emulator else "azure"


@_command
@click.command()
@click.argument("manifest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--emulator", is_flag=True, help="Render drafts on the embedded emulator.")
@click.option("--yes", "-y", is_flag=True, help="Apply without asking (for CI).")
@click.option("--only", multiple=True, metavar="GLOB", help="Only these video ids (repeatable).")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Skip these video ids (repeatable).")
@click.option(
    "--replace", multiple=True, metavar="ID", help="Render this video again even if unchanged."
)
@click.option(
    "--parallelism",
    type=click.IntRange(1, 200),
    default=20,
    show_default=True,
    help="Jobs in flight at once (the service allows 200 per resource).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds a job may take from submission before apply stops waiting.",
)
@click.option("--delete-remote", is_flag=True, help="Delete each remote job after its download.")
@click.option(
    "--lock-timeout",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds to wait for the state lock.",
)
@click.option(
    "--max-cost",
    type=click.FloatRange(min=0),
    default=None,
    help="Refuse, before sending anything, a plan estimated above this amount.",
)
@click.option(
    "--max-renders",
    type=click.IntRange(min=0),
    default=None,
    help="Refuse, before sending anything, a plan with more paid renders than this.",
)
@click.option("--json", "as_json", is_flag=True, help="Print events as JSON lines on stdout.")
@click.pass_obj
def apply(
    ctx: Any,
    manifest: Path,
    emulator: bool,
    yes: bool,
    only: tuple[str, ...],
    exclude: tuple[str, ...],
    replace: tuple[str, ...],
    parallelism: int,
    timeout: float | None,
    delete_remote: bool,
    lock_timeout: float,
    max_cost: float | None,
    max_renders: int | None,
    as_json: bool,
) -> int:
    """Render what is new or changed, resuming anything already paid for."""
    if not (only or exclude or replace):
        recalled = _recall_locked(manifest, _target(emulator), lock_timeout, ctx.err)
        if recalled is not None:  # nothing to do: no request, no write
            if not as_json:
                print_plan(ctx.out, recalled.plan)
            return 0
    project = Project.open(manifest, _target(emulator))
    prices = prices_for(project.manifest.model)
    known = [r.video_id for r in project.requests]
    for video_id in replace:
        project.request(video_id)  # unknown id: clear error before anything else
    project.check_output_paths()  # so is a path apply could not safely write
    service = Service(project)
    try:
        with _lock(project, lock_timeout, ctx.err):
            state = project.load_state()
            budget = project.manifest.model.budget

            def within_budget(plan: Plan) -> None:
                check_budget(
                    plan, prices, max_cost=max_cost, max_renders=max_renders, budget=budget
                )

            if max_cost is not None or max_renders is not None or budget is not None:
                # Over budget offline already: refused before even asking about old jobs.
                within_budget(
                    select(project.plan(state, replace=_ids(replace)), only, exclude, known)
                )
            plan = select(
                _plan_with_refresh(project, service, state, _ids(replace)), only, exclude, known
            )
            if not as_json:
                print_plan(ctx.out, plan, project.pack_max_inputs, prices)
            if not plan.has_changes:
                if not (only or exclude or replace):  # a selection says nothing of the rest
                    project.remember(plan, project.warnings())
                return 0
            within_budget(plan)
            _confirm(yes)
            _check_unchanged(project, plan)
            options = service.options(
                parallelism=parallelism, timeout=timeout, delete_remote=delete_remote
            )
            if as_json:
                click.echo(json.dumps({"event": "plan", **plan.to_json()}, ensure_ascii=False))
            if not as_json and ctx.err.is_terminal:
                with ApplyProgress(ctx.err, len(plan.changes)) as progress:
                    summary = asyncio.run(_run(project, state, service, plan, options, progress))
            else:
                report = _reporter(as_json, ctx.err)
                summary = asyncio.run(_run(project, state, service, plan, options, report))
    finally:
        service.close()
    if not as_json:
        ctx.err.print(_summary_table(summary, prices))
    return 0 if summary.ok else 3


async def _run(
    project: Project,
    state: State,
    service: Service,
    plan: Plan,
    options: ApplyOptions,
    report: Callable[[Event], None],
) -> Summary:
    from .runner import Runner

    async with service.client() as client:
        runner = Runner(project, state, client, options, report)
        return await runner.run(plan)


@_command
@click.command()
@click.argument("manifest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--emulator", is_flag=True, help="Show the draft target.")
@click.option("--refresh", is_flag=True, help="Ask the service for each job's current state.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
@verify_option
@click.pass_obj
def status(
    ctx: Any, manifest: Path, emulator: bool, refresh: bool, as_json: bool, verify: bool
) -> int:
    """Per video: recorded status, output present and intact, remote job state."""
    project = Project.open(manifest, _target(emulator))
    prices = prices_for(project.manifest.model)
    state = project.load_state()
    remote: dict[str, str] = {}
    if refresh and state.records:
        service = Service(project)
        try:
            remote = asyncio.run(_remote_status(service, state))
        finally:
            service.close()
    rows = []
    wanted = {r.video_id: r.content_hash for r in project.requests}
    for video_id in sorted(wanted.keys() | state.records.keys()):
        record = state.records.get(video_id)
        rows.append(
            {
                "video": video_id,
                "status": record.status if record else "not rendered",
                "in_manifest": video_id in wanted,
                # False when the manifest now asks for another request than the recorded one
                "current": record is not None and wanted.get(video_id) == record.input_hash,
                "output": (
                    project.check_output(record, verify=verify)
                    if record and record.output
                    else "none"
                ),
                "job": (record.remote_id or record.synthesis_id) if record else None,
                "remote": remote.get(video_id),
                # What the service billed for this render (packed members carry none).
                "cost": round(billed_cost(record.billing, prices), 4)
                if record and record.billing
                else None,
                "error": f"{record.error.code}: {record.error.message}"
                if record and record.error
                else None,
            }
        )
    project.output_hashes.save()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return 0
    headers = [
        "video",
        "status",
        "output",
        "job",
        *(["remote"] if refresh else []),
        "billed",
        "note",
    ]
    cells = [
        [
            row["video"],
            row["status"],
            row["output"],
            row["job"] or "",
            *([row["remote"] or ""] if refresh else []),
            prices.money(row["cost"]) if isinstance(row["cost"], float) else "",
            row["error"] or _status_note(row),
        ]
        for row in rows
    ]
    print_rows(ctx.out, headers, [[str(c) for c in line] for line in cells])
    return 0


def _status_note(row: dict[str, Any]) -> str:
    if not row["in_manifest"]:
        return "removed from manifest"
    if row["status"] != "not rendered" and not row["current"]:
        return "changed: see plan"
    return ""


async def _remote_status(service: Service, state: State) -> dict[str, str]:
    from .errors import NotFoundError

    result: dict[str, str] = {}
    by_job: dict[str, str] = {}  # the videos of one pack share one job: ask once
    async with service.client() as client:
        for record in state.records.values():
            if not record.remote_id:
                result[record.video_id] = "unknown id"
                continue
            if record.remote_id not in by_job:
                try:
                    by_job[record.remote_id] = (await client.get(record.remote_id)).status
                except NotFoundError:
                    by_job[record.remote_id] = "gone"
            result[record.video_id] = by_job[record.remote_id]
    return result


@_command
@click.command()
@click.argument("manifest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--emulator", is_flag=True, help="Prune the draft target.")
@click.option("--delete-files", is_flag=True, help="Also delete the outputs of removed videos.")
@click.option("--remote", is_flag=True, help="Also delete the remote jobs of removed videos.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask.")
@click.option("--lock-timeout", type=click.FloatRange(min=0), default=0.0)
@click.pass_obj
def prune(
    ctx: Any,
    manifest: Path,
    emulator: bool,
    delete_files: bool,
    remote: bool,
    yes: bool,
    lock_timeout: float,
) -> int:
    """Forget videos removed from the manifest (optionally their files and jobs)."""
    project = Project.open(manifest, _target(emulator))
    service = Service(project)
    try:
        with _lock(project, lock_timeout, ctx.err):
            state = project.load_state()
            plan = project.plan(state)
            removed = [a.record for a in plan.actions if a.kind is ActionKind.FORGET and a.record]
            if not removed:
                ctx.out.print("Nothing to prune.")
                return 0
            for record in removed:
                ctx.out.print(f"  - {record.video_id}")
            _confirm(yes, "prune", "Prune these videos?")
            if remote:
                # A packed job also holds videos that stay: it is not this prune's to delete.
                gone = {r.video_id for r in removed}
                kept = {r.remote_id for r in state.records.values() if r.video_id not in gone}
                asyncio.run(_delete_jobs(service, [r for r in removed if r.remote_id not in kept]))
            for record in removed:
                if delete_files and record.output:
                    (project.manifest.root / record.output.path).unlink(missing_ok=True)
                state.forget(record.video_id)
            ctx.out.print(f"Pruned {len(removed)} video(s).")
    finally:
        service.close()
    return 0


async def _delete_jobs(service: Service, records: list[StateRecord]) -> None:
    async with service.client() as client:
        for record in records:
            if record.remote_id:
                await client.delete(record.remote_id)


@_command
@click.command("force-unlock")
@click.argument("lock_id")
@click.argument("manifest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--emulator", is_flag=True, help="Unlock the draft target's state.")
@click.pass_obj
def force_unlock_command(ctx: Any, lock_id: str, manifest: Path, emulator: bool) -> int:
    """Break a state lock left behind by a process that is gone."""
    project = Project.open(manifest, _target(emulator))
    info = project.store().force_unlock(lock_id)
    ctx.err.print(f"Removed {info.describe()}")
    return 0


@_command
@click.command("emulator")
@click.option("--port", type=int, default=0, help="Port on 127.0.0.1 (0: any free port).")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".avatarflow-emulator"),
    show_default=True,
    help="Where jobs and videos are kept between runs.",
)
@click.option("--key", default=None, help="Require this key (default: any non-empty key).")
@click.option("--faults", default=None, help="Fault injection spec (see the docs).")
def emulator_command(port: int, data_dir: Path, key: str | None, faults: str | None) -> int:
    """Serve the local Azure-compatible batch avatar API on a loopback port."""
    from .emulator import EmulatorConfig, Faults
    from .emulator.serve import serve

    config = EmulatorConfig.from_env()
    updates: dict[str, Any] = {}
    if key:
        updates["key"] = key
    if faults:
        updates["faults"] = Faults.parse(faults)
    if updates:
        from dataclasses import replace as dc_replace

        config = dc_replace(config, **updates)
    serve(data_dir, config, port=port)
    return 0

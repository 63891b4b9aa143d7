"""Commands that talk to the service: apply, status, prune, emulator, force-unlock."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from . import workflow
from .cli import EXIT_FAILED, EXIT_OK, lock_timeout_option, verify_option
from .display import ApplyProgress, lock_waits, plan_json, print_plan, print_rows
from .errors import ConfigError
from .events import Event, LockWait, PlanReady, Progress, Starting
from .options import ApplyOptions, PruneOptions, StatusOptions
from .planner import ActionKind
from .pricing import Prices, billed_cost, shipped

if TYPE_CHECKING:
    from .runner import Summary
    from .workflow import Pruning, VideoStatus

COMMANDS: list[click.Command] = []


def _command(func: click.Command) -> click.Command:
    COMMANDS.append(func)
    return func


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


def _summary_table(summary: Summary, prices: Prices | None) -> Table:
    table = Table(title="Apply summary", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    c, done = summary.counts, summary.done
    for label, value in (
        # The plan's words, for what the plan listed and apply carried out.
        ("created", done[ActionKind.CREATE]),
        ("re-rendered", done[ActionKind.RERENDER]),
        ("resumed", done[ActionKind.RESUME]),
        ("fetched", done[ActionKind.DOWNLOAD]),
        ("reused", done[ActionKind.REUSE]),
        ("forgotten", done[ActionKind.FORGET]),
        ("jobs created (paid creates)", c["jobs"]),
        ("failed", len(summary.failed)),
        ("timed out (resumable)", len(summary.timed_out)),
        ("characters billed", summary.characters),
        ("avatar seconds billed", summary.avatar_seconds),
    ):
        table.add_row(label, f"{value:,}")
    prices = prices or shipped()
    billed = {
        "neuralCharacters": summary.characters,
        "talkingAvatarDurationSeconds": summary.avatar_seconds,
    }
    table.add_row(
        f"cost billed (list prices as of {prices.as_of})",
        prices.money(billed_cost(billed, prices)),
    )
    return table


def _confirm(yes: bool, command: str = "apply", question: str = "Apply this plan?") -> bool:
    """True to go on; a refusal aborts the command (exit 130), as Ctrl-C does."""
    if yes:
        return True
    if not sys.stdin.isatty():
        raise ConfigError(f"{command} needs confirmation: run it on a terminal or pass --yes")
    if not click.confirm(question, default=False):
        raise click.exceptions.Abort()
    return True


class _ApplyScreen:
    """Shows apply's progress: the plan on stdout, then a bar on a terminal, lines in a
    pipe, or JSON lines with ``--json``."""

    def __init__(self, ctx: Any, as_json: bool) -> None:
        self.ctx, self.as_json = ctx, as_json
        self.report: Callable[[Event], None] = _reporter(as_json, ctx.err)
        self.stack = ExitStack()
        self.prices: Prices | None = None

    def __enter__(self) -> _ApplyScreen:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.close()

    def __call__(self, event: Progress) -> None:
        ctx = self.ctx
        if isinstance(event, LockWait):
            ctx.err.print(event.message, highlight=False)
        elif isinstance(event, PlanReady):
            self.prices = event.prices
            if not self.as_json:
                print_plan(ctx.out, event.plan, event.pack_max_inputs, event.prices)
        elif isinstance(event, Starting):
            if self.as_json:
                line = {"event": "plan", **plan_json(event.plan, self.prices)}
                click.echo(json.dumps(line, ensure_ascii=False))
            elif ctx.err.is_terminal:
                progress = ApplyProgress(ctx.err, len(event.plan.changes))
                self.report = self.stack.enter_context(progress)
        else:
            self.report(event)


# -- commands -------------------------------------------------------------------------
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
    help="Seconds a job (or a lookup) may take before apply stops waiting (default 12 hours).",
)
@click.option("--delete-remote", is_flag=True, help="Delete each remote job after its download.")
@lock_timeout_option
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
@click.option(
    "--refresh", is_flag=True, help="Ask the service about the jobs the plan relies on first."
)
@click.pass_obj
def apply(ctx: Any, /, manifest: Path, yes: bool, as_json: bool, **flags: Any) -> int:
    """Render what is new or changed, resuming anything already paid for.

    MANIFEST may be a plan saved by ``plan -o``: it is applied exactly, or refused."""
    options = ApplyOptions(**flags)  # every other flag is a field of the same name
    with _ApplyScreen(ctx, as_json) as screen:
        result = workflow.apply(manifest, options, on_event=screen, confirm=lambda _: _confirm(yes))
    if not as_json and result.summary is not None:
        ctx.err.print(_summary_table(result.summary, result.prices))
    return EXIT_OK if result.ok else EXIT_FAILED


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
    rows = workflow.status(manifest, StatusOptions(emulator, refresh, verify))
    if as_json:
        click.echo(json.dumps([row.to_json() for row in rows], indent=2))
        return EXIT_OK
    headers = [
        "video",
        "status",
        "output",
        "job",
        *(["remote"] if refresh else []),
        "note",
    ]

    cells = [
        [
            row.video,
            row.status,
            row.output,
            row.job or "",
            *([row.remote or ""] if refresh else []),
            row.error or _status_note(row),
        ]
        for row in rows
    ]
    print_rows(ctx.out, headers, [[str(c) for c in line] for line in cells])
    return EXIT_OK


def _status_note(row: VideoStatus) -> str:
    if not row.in_manifest:
        return "removed from manifest"
    if row.status != "not rendered" and not row.current:
        return "changed: see plan"
    return ""


@_command
@click.command()
@click.argument("manifest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--emulator", is_flag=True, help="Prune the draft target.")
@click.option("--delete-files", is_flag=True, help="Also delete the outputs of removed videos.")
@click.option("--remote", is_flag=True, help="Also delete the remote jobs of removed videos.")
@click.option(
    "--keep-days",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Keep unused renders that ended more recently than this.",
)
@click.option("--store", is_flag=True, help="Also drop pruned videos from the local store.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask.")
@click.option("--lock-timeout", type=click.FloatRange(min=0), default=0.0)
@click.pass_obj
def prune(ctx: Any, /, manifest: Path, yes: bool, **flags: Any) -> int:
    """Forget removed videos and remove renders unused for --keep-days."""

    options = PruneOptions(**flags)  # every other flag is a field of the same name

    def confirm(pruning: Pruning) -> bool:
        if pruning.videos:
            ctx.out.print(f"Forget {len(pruning.videos)} video(s) removed from the manifest:")
            for record in pruning.videos:
                ctx.out.print(f"  - {record.video_id}", highlight=False, markup=False)
        if pruning.renders:
            ctx.out.print(
                f"Remove {len(pruning.renders)} render(s) no video uses, ended over "
                f"{options.keep_days:g} day(s) ago (a video that needs one again is paid again):"
            )
            for render in pruning.renders:
                ctx.out.print(
                    f"  - {render.synthesis_id} (job {render.job_id}, ended {render.ended})",
                    highlight=False,
                    markup=False,
                )
        return _confirm(yes, "prune", "Prune these?")

    renders: list[str] = []

    def show(event: Progress) -> None:
        if isinstance(event, Event) and event.kind == "pruned":
            renders.append(event.message)  # each one was listed before the question
        else:
            lock_waits(ctx.err)(event)

    pruned = workflow.prune(manifest, options, on_event=show, confirm=confirm)
    if renders:
        ctx.out.print(f"Pruned {len(renders)} unused render(s).")
    if pruned:
        ctx.out.print(f"Pruned {len(pruned)} video(s).")
    elif not renders:
        ctx.out.print("Nothing to prune.")
    return EXIT_OK


@_command
@click.command("force-unlock")
@click.argument("lock_id")
@click.argument("manifest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--emulator", is_flag=True, help="Unlock the draft target's state.")
@click.pass_obj
def force_unlock_command(ctx: Any, lock_id: str, manifest: Path, emulator: bool) -> int:
    """Break a state lock left behind by a process that is gone."""
    info = workflow.force_unlock(manifest, lock_id, emulator=emulator)
    ctx.err.print(f"Removed {info.describe()}")
    return EXIT_OK


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
    return EXIT_OK

"""How plans, statuses and summaries look on a terminal (rich) or in a pipe (plain)."""

from __future__ import annotations

import os
import sys
from typing import IO, TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from .planner import ActionKind, Plan

if TYPE_CHECKING:  # the runner pulls in the HTTP stack, which plan never needs
    from rich.progress import TaskID

    from .events import Event
    from .pricing import Prices

SYMBOLS: dict[ActionKind, str] = {
    ActionKind.CREATE: "+",
    ActionKind.RERENDER: "~",
    ActionKind.RESUME: ">",
    ActionKind.DOWNLOAD: "↓",
    ActionKind.FORGET: "-",
}
LEGEND: dict[ActionKind, str] = {
    ActionKind.CREATE: "create (render a new video)",
    ActionKind.RERENDER: "re-render (the request changed)",
    ActionKind.RESUME: "resume a job already submitted",
    ActionKind.DOWNLOAD: "download again (no new render)",
    ActionKind.FORGET: "forget a video removed from the manifest",
}
FOOTER: dict[ActionKind, str] = {
    ActionKind.CREATE: "to create",
    ActionKind.RERENDER: "to re-render",
    ActionKind.RESUME: "to resume",
    ActionKind.DOWNLOAD: "to download",
    ActionKind.FORGET: "to forget",
}
_STYLES = {
    ActionKind.CREATE: "green",
    ActionKind.RERENDER: "yellow",
    ActionKind.RESUME: "cyan",
    ActionKind.DOWNLOAD: "blue",
    ActionKind.FORGET: "red",
}


def make_console(stream: IO[str] | None = None, color: str = "auto") -> Console:
    """A console honouring ``--color``, ``NO_COLOR`` and ``TERM=dumb``."""
    stream = stream or sys.stdout
    if color == "never" or (
        color == "auto" and (os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb")
    ):
        return Console(
            file=stream,
            no_color=True,
            highlight=False,
            soft_wrap=True,
            force_terminal=False,
            color_system=None,
        )
    force = True if color == "always" else None
    return Console(file=stream, highlight=False, soft_wrap=True, force_terminal=force)


def symbol(kind: ActionKind) -> str:
    return SYMBOLS.get(kind, " ")


def footer(plan: Plan) -> str:
    counts = plan.counts()
    if not counts:
        return "No changes. Every video is up to date."
    parts = [f"{counts.get(kind, 0)} {FOOTER[kind]}" for kind in FOOTER]
    return "Plan: " + ", ".join(parts) + "."


def plan_json(plan: Plan, prices: Prices | None = None) -> dict[str, Any]:
    """The plan as ``plan --json`` prints it (format 1); money at ``prices`` (the
    shipped table by default)."""
    from . import pricing

    chars, minutes = plan.estimate()
    prices = prices or pricing.shipped()
    money = pricing.plan_estimate(plan, prices)
    counts = plan.counts()
    return {
        "format": 1,
        "lineage": plan.lineage,
        "serials": dict(plan.serials),
        "summary": {kind.value: counts.get(kind, 0) for kind in FOOTER},
        "estimate": {
            "characters": chars,
            "minutes": round(minutes, 2),
            "seconds": round(money.seconds, 1),
            "cost": round(money.cost, 4),
            "currency": prices.currency,
            "prices_as_of": prices.as_of,
        },
        "actions": [
            {
                "video": a.video_id,
                "action": a.kind.value,
                "symbol": symbol(a.kind),
                "reasons": list(a.reasons),
                "synthesis_id": a.synthesis_id,
                "input_hash": a.input_hash,
            }
            for a in plan.actions
        ],
    }


def print_plan(
    console: Console, plan: Plan, pack_max_inputs: int | None = None, prices: Prices | None = None
) -> None:
    """Print ``plan``; ``pack_max_inputs`` when the videos to render travel in packs;
    ``prices`` for its money (the shipped table by default)."""
    changes = plan.changes
    if not changes:
        console.print("No changes. Every video is up to date.")
        return
    used = [kind for kind in SYMBOLS if any(a.kind is kind for a in changes)]
    console.print("Symbols:")
    for kind in used:
        console.print(f"  [{_STYLES[kind]}]{escape(SYMBOLS[kind])}[/] {LEGEND[kind]}")
    console.print()
    width = max(len(a.video_id) for a in changes)
    for action in changes:
        style = _STYLES[action.kind]
        reasons = "; ".join(action.reasons)
        target = ""
        paid = action.kind in (ActionKind.CREATE, ActionKind.RERENDER)
        if action.request is not None and paid and pack_max_inputs is None:
            target = f"  [dim]→ {escape(action.request.synthesis_id)}[/]"
        console.print(
            f"  [{style}]{escape(symbol(action.kind))} {escape(action.video_id.ljust(width))}[/]"
            f"  {escape(reasons)}{target}"
        )
    console.print()
    if plan.paid():
        jobs = f"{len(plan.paid())} job(s)"
        if pack_max_inputs is not None:
            from .packing import group  # rendering's modules: only when there is work

            requests = [a.request for a in plan.paid() if a.request is not None]
            jobs = (
                f"{len(requests)} video(s) in {len(group(requests, pack_max_inputs))} packed job(s)"
            )
        from . import pricing

        prices = prices or pricing.shipped()
        found = pricing.plan_estimate(plan, prices)
        console.print(
            f"Estimated render: {jobs}, {found.characters:,} characters, "
            f"{pricing.duration(found.seconds)} of video, about {prices.money(found.cost)} "
            f"(prices as of {prices.as_of}).",
            highlight=False,
            markup=False,
        )
    console.print(f"[bold]{escape(footer(plan))}[/]")


# Above this many rows a rich table costs seconds (~0.5 ms a row): plain columns instead.
RICH_TABLE_ROWS = 1000


def print_rows(console: Console, headers: list[str], rows: list[list[str]]) -> None:
    """A table: drawn by rich on a terminal; in a pipe, or beyond ``RICH_TABLE_ROWS``,
    plain columns separated by two spaces, one line per row, easy to grep or cut."""
    if console.is_terminal and len(rows) <= RICH_TABLE_ROWS:
        from rich.table import Table

        table = Table(show_header=True)
        for header in headers:
            table.add_column(header)
        for row in rows:
            table.add_row(*row)
        console.print(table)
        return
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = (
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in (headers, *rows)
    )
    console.file.write("\n".join(lines) + "\n")  # as it is: no markup, no wrapping


class ApplyProgress:
    """On a terminal: one bar for the whole apply and one line per active video."""

    _DONE = frozenset({"downloaded", "failed", "timeout"})

    def __init__(self, console: Console, total: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self.overall = self.progress.add_task("[bold]videos[/]", total=total)
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> ApplyProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, event: Event) -> None:
        video = event.video_id
        if video is None:
            self.progress.console.print(escape(event.message))
            return
        label = f"{escape(video)}: {escape(event.message)}"
        if event.kind in self._DONE:
            task = self.tasks.pop(video, None)
            if task is not None:
                self.progress.remove_task(task)
            self.progress.advance(self.overall)
            style = "green" if event.kind == "downloaded" else "red"
            self.progress.console.print(f"[{style}]{label}[/]")
        elif video in self.tasks:
            self.progress.update(self.tasks[video], description=label)
        else:
            self.tasks[video] = self.progress.add_task(label, total=None)

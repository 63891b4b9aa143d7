"""How plans, statuses and summaries look on a terminal (rich) or in a pipe (plain)."""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from .planner import ActionKind, Plan
from .worddiff import Chunk, elide, narration_diff

if TYPE_CHECKING:  # the runner pulls in the HTTP stack, which plan never needs
    from .events import Event, Progress
    from .pricing import Prices

LINE_WIDTH = 100  # plan lines fit a 100-column terminal or PR view
ID_WIDTH = 36
JOB_SUFFIX = 12  # the hash part of a job id
DIFF_CONTEXT = 6  # unchanged words kept each side of a narration change

# Per kind of change: its symbol, its line in the legend, its words in the footer.
_WORDS: dict[ActionKind, tuple[str, str, str]] = {
    ActionKind.CREATE: ("+", "create (render a new video)", "to create"),
    ActionKind.RERENDER: ("~", "re-render (the request changed)", "to re-render"),
    ActionKind.RESUME: (">", "resume a job already submitted", "to resume"),
    ActionKind.DOWNLOAD: ("↓", "fetch again from a store or the service (free)", "to fetch"),
    ActionKind.REUSE: ("=", "reuse an existing render (free)", "to reuse"),
    ActionKind.FORGET: ("-", "forget a video removed from the manifest", "to forget"),
}
SYMBOLS = {kind: words[0] for kind, words in _WORDS.items()}
LEGEND = {kind: words[1] for kind, words in _WORDS.items()}
FOOTER = {kind: words[2] for kind, words in _WORDS.items()}
_STYLES = {
    ActionKind.CREATE: "green",
    ActionKind.RERENDER: "yellow",
    ActionKind.RESUME: "cyan",
    ActionKind.DOWNLOAD: "blue",
    ActionKind.REUSE: "magenta",
    ActionKind.FORGET: "red",
}


def shorten(text: str, width: int, middle: bool = False) -> str:
    """``text`` in at most ``width`` characters, an ellipsis marking what was cut."""
    if len(text) <= width:
        return text
    if middle:
        head = (width - 1) // 2
        return text[:head] + "…" + text[len(text) - (width - 1 - head) :]
    return text[: width - 1] + "…"


def _print_diff(console: Console, chunks: list[Chunk]) -> None:
    """The narration's word diff under its plan line, wrapped to the plan's width."""
    styles = {"removed": "red strike", "added": "green"}
    marks = {"removed": ("[-", "-]"), "added": ("{+", "+}")}
    line, used = "      [dim]narration:[/]", 16
    for index, chunk in enumerate(chunks):
        text = chunk.text
        if chunk.op == "same":
            text = elide(text, DIFF_CONTEXT, index == 0, index == len(chunks) - 1)
        words = text.split()
        if chunk.op != "same":
            words[0] = marks[chunk.op][0] + words[0]
            words[-1] += marks[chunk.op][1]
        for word in words:
            if used + 1 + len(word) > LINE_WIDTH:
                console.print(line)
                line, used = "       ", 7
            style = styles.get(chunk.op)
            line += " " + (f"[{style}]{escape(word)}[/]" if style else escape(word))
            used += 1 + len(word)
    console.print(line)


def make_console(stream: IO[str] | None = None, color: str = "auto") -> Console:
    """A console honouring ``--color``, ``NO_COLOR`` and ``TERM=dumb``."""
    plain = color == "never" or (
        color == "auto" and (os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb")
    )
    # Plain: no colour and never a terminal; else rich decides, unless --color always.
    force = False if plain else True if color == "always" else None
    return Console(
        file=stream or sys.stdout,
        highlight=False,
        soft_wrap=True,
        force_terminal=force,
        no_color=True if plain else None,
        color_system=None if plain else "auto",
    )


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
        "summary": {
            **{kind.value: counts.get(kind, 0) for kind in FOOTER},
            "paid": len(plan.paid()),
        },
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
                "paid": a.paid,
                "source": a.source,
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
    width = min(ID_WIDTH, max(len(a.video_id) for a in changes))
    for action in changes:
        style = _STYLES[action.kind]
        target = ""
        paid = action.kind in (ActionKind.CREATE, ActionKind.RERENDER)
        if action.request is not None and paid and pack_max_inputs is None:
            # The job id's hash tells renders apart; the full id is in --json.
            target = f"  → …{action.request.synthesis_id[-JOB_SUFFIX:]}"
        room = LINE_WIDTH - len(f"  {symbol(action.kind)} ") - width - 2 - len(target)
        reasons = shorten("; ".join(action.reasons), max(12, room))
        video = shorten(action.video_id, width, middle=True).ljust(width)
        console.print(
            f"  [{style}]{escape(symbol(action.kind))} {escape(video)}[/]"
            f"  {escape(reasons)}[dim]{escape(target)}[/]"
        )
        diff = narration_diff(action)
        if diff:
            _print_diff(console, diff)
    console.print()
    if plan.paid():
        jobs = f"{len(plan.paid())} job(s)"
        packs = pack_jobs(plan, pack_max_inputs)
        if packs is not None:
            jobs = f"{len(plan.paid())} video(s) in {packs} packed job(s)"
        from . import pricing

        prices = prices or pricing.shipped()
        found = pricing.plan_estimate(plan, prices)
        console.print(
            f"Estimated render: {jobs}, {found.characters:,} characters, "
            f"{pricing.duration(found.seconds)} of video.",
            highlight=False,
            markup=False,
        )
        console.print(
            f"Estimated cost: about {prices.money(found.cost)} at the prices of {prices.as_of}.",
            highlight=False,
            markup=False,
        )
    console.print(f"[bold]{escape(footer(plan))}[/]")


def pack_jobs(plan: Plan, pack_max_inputs: int | None) -> int | None:
    """How many packed jobs the plan's paid renders travel in (None: not packed)."""
    if pack_max_inputs is None or not plan.paid():
        return None
    from .packing import group  # rendering's modules: only when there is work

    requests = [a.request for a in plan.paid() if a.request is not None]
    return len(group(requests, pack_max_inputs))


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


def lock_waits(console: Console) -> Callable[[Progress], None]:
    """Progress of a command that shows only its waits for the state lock."""
    from .events import LockWait

    def show(event: Progress) -> None:
        if isinstance(event, LockWait):
            console.print(event.message, highlight=False)

    return show


# What the service's status means for where a video is on its way.
_STAGE_OF_STATUS = {"NotStarted": "queued", "Running": "rendering", "Succeeded": "downloading"}


class ApplyProgress:
    """On a terminal: one live display for the whole apply — a bar of videos done out of
    all, how many are at each stage, elapsed time and an estimate of the time left.
    Finished videos are printed above it, one line each."""

    _DONE = frozenset({"downloaded", "failed", "timeout"})
    STAGES = ("waiting", "submitted", "queued", "rendering", "downloading", "done", "failed")

    def __init__(self, console: Console, total: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]videos[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.description}"),
            console=console,
        )
        self.total = total
        self.stage: dict[str, str] = {}
        self.overall = self.progress.add_task(self.stages(), total=total)

    def stages(self) -> str:
        """``2 submitted · 3 rendering · 1 done``: the stages that hold videos now."""
        counts = Counter(self.stage.values())
        counts["waiting"] = self.total - len(self.stage)
        return " · ".join(f"{counts[s]} {s}" for s in self.STAGES if counts[s] > 0)

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
        if event.kind in self._DONE:
            self.stage[video] = "done" if event.kind == "downloaded" else "failed"
            self.progress.advance(self.overall)
            style = "green" if event.kind == "downloaded" else "red"
            self.progress.console.print(f"[{style}]{escape(video)}: {escape(event.message)}[/]")
        elif event.kind in ("submitted", "adopted"):
            self.stage[video] = "submitted"
        elif event.kind == "status":
            status = str(event.data.get("status", ""))
            self.stage[video] = _STAGE_OF_STATUS.get(status, self.stage.get(video, "queued"))
        elif event.kind == "info":
            self.progress.console.print(f"[dim]{escape(video)}: {escape(event.message)}[/]")
        self.progress.update(self.overall, description=self.stages())

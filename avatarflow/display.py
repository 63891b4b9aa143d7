"""How plans, statuses and summaries look on a terminal (rich) or in a pipe (plain)."""

from __future__ import annotations

import os
import sys
from typing import IO

from rich.console import Console
from rich.markup import escape

from .planner import LEGEND, SYMBOLS, ActionKind, Plan

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


def print_plan(console: Console, plan: Plan) -> None:
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
        if action.request is not None and action.kind in (ActionKind.CREATE, ActionKind.RERENDER):
            target = f"  [dim]→ {escape(action.request.synthesis_id)}[/]"
        console.print(
            f"  [{style}]{escape(action.symbol)} {escape(action.video_id.ljust(width))}[/]"
            f"  {escape(reasons)}{target}"
        )
    console.print()
    chars, minutes = plan.estimate()
    if plan.paid():
        console.print(
            f"Estimated render: {len(plan.paid())} job(s), {chars:,} characters, "
            f"about {minutes:.1f} minutes of video."
        )
    console.print(f"[bold]{escape(plan.footer())}[/]")

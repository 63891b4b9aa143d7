"""A plan as GitHub-flavoured Markdown, for a pull request comment.

A summary table (counts and the estimate), then one row per change: symbol, video,
action, reasons and the narration's word diff (~~removed~~ **added**). Every cell is
escaped, so a narration holding ``|``, ``*`` or ``<tags>`` cannot break the table.
"""

from __future__ import annotations

import re

from . import pricing
from .display import FOOTER, footer, symbol
from .planner import ActionKind, Plan
from .pricing import Prices
from .worddiff import Chunk, elide, narration_diff

MARKER = "<!-- avatarflow-plan -->"  # lets CI find and update its own comment
DIFF_CONTEXT_WORDS = 6
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")
_LABEL = {
    ActionKind.CREATE: "create",
    ActionKind.RERENDER: "re-render",
    ActionKind.RESUME: "resume",
    ActionKind.DOWNLOAD: "fetch",
    ActionKind.REUSE: "reuse",
    ActionKind.FORGET: "forget",
}


def escape(text: str) -> str:
    """Text as literal Markdown inside a table cell (one line)."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def diff_markdown(chunks: list[Chunk], context: int = DIFF_CONTEXT_WORDS) -> str:
    parts: list[str] = []
    for index, chunk in enumerate(chunks):
        if chunk.op == "removed":
            parts.append(f"~~{escape(chunk.text)}~~")
        elif chunk.op == "added":
            parts.append(f"**{escape(chunk.text)}**")
        else:
            first, last = index == 0, index == len(chunks) - 1
            parts.append(escape(elide(chunk.text, context, first, last)))
    return " ".join(p for p in parts if p)


def plan_markdown(
    plan: Plan, title: str, pack_jobs: int | None = None, prices: Prices | None = None
) -> str:
    """``plan`` as Markdown; ``pack_jobs`` is the number of packed jobs, when packing;
    ``prices`` for its money (the shipped table by default)."""
    lines = [MARKER, f"### avatarflow plan: {escape(title)}", ""]
    changes = plan.changes
    if not changes:
        lines.append("**No changes.** Every video is up to date.")
        return "\n".join(lines) + "\n"
    counts = plan.counts()
    chars, minutes = plan.estimate()
    paid = len(plan.paid())
    jobs = f"{paid} in {pack_jobs} packed job(s)" if pack_jobs is not None else str(paid)
    lines += [
        "| " + " | ".join(FOOTER[kind] for kind in FOOTER) + " | paid renders | characters "
        "| minutes |",
        "|" + "---:|" * (len(FOOTER) + 3),
        "| "
        + " | ".join(str(counts.get(kind, 0)) for kind in FOOTER)
        + f" | {jobs} | {chars:,} | {minutes:.1f} |",
        "",
        "| | video | action | reason | narration |",
        "|:-:|---|---|---|---|",
    ]
    for action in changes:
        mark = escape(symbol(action.kind))
        reasons = "; ".join(action.reasons)
        diff = diff_markdown(narration_diff(action) or [])
        lines.append(
            f"| {mark} | `{action.video_id}` | {_LABEL[action.kind]} | {escape(reasons)} | {diff} |"
        )
    prices = prices or pricing.shipped()
    found = pricing.plan_estimate(plan, prices)
    lines += [
        "",
        f"**Estimate:** {paid} paid render(s), {chars:,} characters, "
        f"{pricing.duration(found.seconds)} of video, about {escape(prices.money(found.cost))} "
        f"(prices as of {escape(prices.as_of)}).",
        f"**{escape(footer(plan))}**",
    ]
    return "\n".join(lines) + "\n"

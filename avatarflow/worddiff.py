"""The narration as words: what a video says, and a word diff of two narrations.

A render's record keeps its spoken text (``StateRecord.narration``) because the request it
keeps holds only a digest of the input; the plan, the Markdown plan and the review page
diff that text against the narration the manifest asks for now.
"""

from __future__ import annotations

import difflib
import html
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from .planner import Action

_TAG_RE = re.compile(r"<[^>]+>")
# A diff of two very long narrations is quadratic in the worst case: past this many
# words a side, the changed middle is shown as one replacement.
MAX_DIFF_WORDS = 20_000

Op = Literal["same", "added", "removed"]


def spoken_text(content: str, input_kind: str = "SSML") -> str:
    """The words an input says: tags dropped, entities decoded, whitespace collapsed."""
    text = _TAG_RE.sub(" ", content) if input_kind == "SSML" else content
    return " ".join(html.unescape(text).split())


@dataclass(frozen=True)
class Chunk:
    op: Op
    text: str


def word_diff(old: str, new: str) -> list[Chunk]:
    """``old`` → ``new`` as runs of kept, removed and added words (removed before added)."""
    a, b = old.split(), new.split()
    if len(a) > MAX_DIFF_WORDS or len(b) > MAX_DIFF_WORDS:
        return _coarse(a, b)
    chunks: list[Chunk] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            chunks.append(Chunk("same", " ".join(a[i1:i2])))
            continue
        if i2 > i1:
            chunks.append(Chunk("removed", " ".join(a[i1:i2])))
        if j2 > j1:
            chunks.append(Chunk("added", " ".join(b[j1:j2])))
    return chunks


def _coarse(a: list[str], b: list[str]) -> list[Chunk]:
    head = 0
    while head < min(len(a), len(b)) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < min(len(a), len(b)) - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    chunks = [Chunk("same", " ".join(a[:head]))] if head else []
    if a[head : len(a) - tail]:
        chunks.append(Chunk("removed", " ".join(a[head : len(a) - tail])))
    if b[head : len(b) - tail]:
        chunks.append(Chunk("added", " ".join(b[head : len(b) - tail])))
    if tail:
        chunks.append(Chunk("same", " ".join(a[len(a) - tail :])))
    return chunks


def changed(chunks: list[Chunk]) -> bool:
    return any(c.op != "same" for c in chunks)


def elide(text: str, context: int | None, first: bool, last: bool) -> str:
    """Kept words around a change: ``context`` of them next to each change, "…" between."""
    words = text.split()
    if context is None or len(words) <= 2 * context:
        return text
    head = [] if first else words[:context]
    tail = [] if last else words[-context:]
    return " ".join([*head, "…", *tail])


def narration_diff(action: Action) -> list[Chunk] | None:
    """A re-render's narration against the last render's: ``[]`` when the action is no
    re-render or the words are the same, ``None`` when the last render's words were
    not recorded (a record written before records kept them)."""
    from .planner import ActionKind

    record, request = action.record, action.request
    if action.kind is not ActionKind.RERENDER or record is None or request is None:
        return []
    if record.narration is None:
        return None
    new = spoken_text(request.rendered.content, request.rendered.input_kind)
    chunks = word_diff(record.narration, new)
    return chunks if changed(chunks) else []

"""The manifest cut into its ``videos`` items as text, so that one item can be parsed alone.

An author's edit touches one item of ``videos``; everything else in the file is the
*head* (``defaults``, ``service``...). :func:`split_videos` finds the items by their
indentation alone, without parsing, and only when the file is laid out in the plain block
style that makes that safe:

- every line at column 0 is a plain ``key:`` of the top-level mapping, a comment or blank,
  and exactly one of them is ``videos:`` with nothing after it;
- the items of ``videos`` start with ``-`` at one indentation, and every other line of the
  list is a comment, blank, or indented further (a line indented less ends any block
  scalar or nested mapping, so the items cannot run into each other).

Anything else (flow style at the top, a document marker, tabs, ``videos: []``) is no
split: the caller parses the whole file. An item that is still not self-contained (an
alias to an anchor of another item, a quote left open) fails to parse on its own, and
the caller again falls back to the whole file; an item that parses alone means the same
as it does in the whole file, because nothing in block YAML reaches out of an item but
aliases.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, overload

# Patterns start with a newline rather than ``^``: the engine then skips ahead by that
# literal instead of trying every position of a multi-megabyte catalogue.
_VIDEOS_LINE = re.compile(r"\nvideos:[ \t]*(?:#[^\n]*)?(?=\n)")
_FIRST_LINE_VIDEOS = re.compile(r"videos:")
# The end of the list: the next line at column 0 that is not an item, a comment or blank.
_SECTION_END = re.compile(r"\n[^ \n#-]")
_FIRST_ITEM = re.compile(r"\n( *)-(?: |\n|$)")
_BLANK_OR_COMMENTS = re.compile(r"(?:\n[ \t]*(?:#[^\n]*)?)*")
# A line at column 0 of the head that is not a plain key, a comment, an indented line or
# blank: a document marker, a directive, flow style, a tag or an anchor at the top.
_ODD_TOP_LINE = re.compile(r"\n(?![A-Za-z_][A-Za-z0-9_-]*:(?:[ \t]|\n|$)|[ #\n]|$)")


class Item(NamedTuple):
    """One item of ``videos``: where its text is in the manifest (from its ``-``) and the
    line it starts on. Offsets, not copies: a large catalogue is megabytes of items (and
    a tuple, not a dataclass: a plan of 50,000 videos makes 50,000 of them)."""

    source: str
    start: int
    end: int
    line: int

    def __repr__(self) -> str:  # not the whole manifest
        return f"Item(start={self.start}, end={self.end}, line={self.line})"

    @property
    def text(self) -> str:
        return self.source[self.start : self.end]

    def document(self) -> str:
        """The item alone as a YAML document whose lines are those of the manifest."""
        return "\n" * (self.line - 1) + self.text


@dataclass(frozen=True)
class Split:
    head: str  # the manifest without the items of ``videos``
    head_document: str  # the same with the items' lines left blank: lines stay in place
    items: Sequence[Item]  # a tuple, or the items of a layout made when asked (``cut_again``)
    span: tuple[int, int] = (0, 0)  # where the list of items is in the text

    @property
    def layout(self) -> Layout:
        """Where this split found everything, to cut the same text again (``cut_again``)."""
        items = self.items
        if isinstance(items, LaidOut):
            return items.layout
        starts, ends = tuple(i.start for i in items), tuple(i.end for i in items)
        return Layout(self.span, starts, ends, tuple(i.line for i in items))


class Layout(NamedTuple):
    """A split as offsets: the list's span, and each item's start, end and line."""

    span: tuple[int, int]
    starts: tuple[int, ...]
    ends: tuple[int, ...]
    lines: tuple[int, ...]


class LaidOut(Sequence[Item]):
    """The items of a text by its layout, each made when asked for: a plan after one edit
    parses one item of 50,000, and needs no tuple for the others."""

    def __init__(self, text: str, layout: Layout) -> None:
        self.text, self.layout = text, layout

    def __len__(self) -> int:
        return len(self.layout.starts)

    @overload
    def __getitem__(self, index: int) -> Item: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[Item, ...]: ...
    def __getitem__(self, index: int | slice) -> Item | tuple[Item, ...]:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(len(self))))
        layout = self.layout
        return Item(self.text, layout.starts[index], layout.ends[index], layout.lines[index])

    def __repr__(self) -> str:  # not the whole manifest
        return f"LaidOut({len(self)} items)"


def cut_again(text: str, layout: Layout) -> Split:
    """The split of ``text`` by a layout ``split_videos`` found in the very same text: the
    text is not searched again (the caller vouches for its bytes, by their digest)."""
    start, end = layout.span
    return _split(text, start, end, LaidOut(text, layout))


def _split(text: str, start: int, end: int, items: Sequence[Item]) -> Split:
    blank = "\n" * text.count("\n", start, end)
    head = text[:start] + text[end:]
    return Split(head, text[:start] + blank + text[end:], items, (start, end))


def split_videos(text: str) -> Split | None:
    """The manifest's head and ``videos`` items, or None when the layout is not plain."""
    if _FIRST_LINE_VIDEOS.match(text):
        return None  # ``videos:`` first: rare enough to be left to the full parse
    found = _VIDEOS_LINE.findall(text)
    if len(found) != 1:
        return None
    videos = _VIDEOS_LINE.search(text)
    assert videos is not None
    start = videos.end()  # the newline that ends ``videos:``
    end_match = _SECTION_END.search(text, start)
    end = end_match.start() if end_match else len(text)
    # The list runs from ``start`` to ``end``, each of its lines after a newline.
    first = _FIRST_ITEM.search(text, start, end)
    if first is None or _BLANK_OR_COMMENTS.fullmatch(text, start, first.start()) is None:
        return None
    indent = len(first.group(1))
    odd_line = re.compile(rf"\n(?! {{{indent}}}-(?: |\n|$)| {{{indent + 1}}}| *(?:#|\n|$))")
    if odd_line.search(text, first.start(), end):
        return None
    head = text[:start] + text[end:]
    if _ODD_TOP_LINE.search("\n" + head):
        return None
    item_start = re.compile(rf"\n {{{indent}}}-(?: |\n|$)")
    starts = [m.start() + 1 for m in item_start.finditer(text, first.start(), end)]
    items: list[Item] = []
    line, counted = 1, 0  # 1 + the newlines before a position: its line
    for begin, finish in zip(starts, [*starts[1:], end], strict=True):
        line += text.count("\n", counted, begin)
        counted = begin
        items.append(Item(text, begin, finish, line))
    return _split(text, start, end, tuple(items))

"""YAML parser errors in plain words: what is wrong with the indentation, and where.

PyYAML reports an indentation mistake in the grammar's terms (``expected <block end>,
but found '<block mapping start>'``). Looking at the line it names and the lines above
tells what the author did: a key indented less, or more, than the keys beside it, a tab,
a ``: `` inside an unquoted value. Anything not recognised keeps the parser's words.
"""

from __future__ import annotations

import re

_KEY_RE = re.compile(
    r"^(?P<indent> *)(?P<dash>- +)?"
    r"(?P<key>[^\s:#'\"{}\[\],&*!|>%@`-][^:#]*?)\s*:(\s|$)"
)
_ITEM_RE = re.compile(r"^(?P<indent> *)- ")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _key_column(line: str) -> int:
    """Where the line's key starts: after the ``- `` of a list item."""
    found = _KEY_RE.match(line)
    return found.start("key") if found else _indent(line)


def _content(lines: list[str], number: int) -> bool:
    text = lines[number - 1].strip() if 0 < number <= len(lines) else ""
    return bool(text) and not text.startswith("#")


def _spaces(count: int) -> str:
    return f"{count} space{'s' if count != 1 else ''}"


def explain(text: str, line: int | None, problem: str) -> str | None:
    """Plain words for the parser's ``problem`` at 1-based ``line``, or None."""
    lines = text.splitlines()
    if line is None or not 0 < line <= len(lines):
        return None
    here = lines[line - 1]
    if "'\\t'" in problem or (here[: _indent(here) + 1].endswith("\t")):
        return "a tab is used for indentation; YAML indents with spaces only"
    above = [n for n in range(line - 1, 0, -1) if _content(lines, n)]
    own = _KEY_RE.match(here)
    item = _ITEM_RE.match(here)
    if "expected <block end>" in problem:
        indent = _indent(here)
        # The nearest line above that is indented more: the block this line missed.
        for number in above:
            if _indent(lines[number - 1]) > indent:
                other = _KEY_RE.match(lines[number - 1])
                theirs = _indent(lines[number - 1])
                if item:
                    items = [
                        n
                        for n in above
                        if (m := _ITEM_RE.match(lines[n - 1])) and len(m.group("indent")) > indent
                    ]
                    if items:
                        number, theirs = items[0], _indent(lines[items[0] - 1])
                    return (
                        f"the list item on this line is indented less than the items above it "
                        f"({_spaces(indent)}; line {number} has {theirs})"
                    )
                if own:
                    name = other.group("key") if other else None
                    beside = f"`{name}` on line {number}" if name else f"line {number}"
                    return (
                        f"`{own.group('key')}` is indented less than the keys above it "
                        f"({_spaces(indent)}; {beside} has {theirs})"
                    )
                break
        return None
    if "mapping values are not allowed" in problem and own and above:
        previous = lines[above[0] - 1]
        before = _KEY_RE.match(previous)
        column, prev_column = _key_column(here), _key_column(previous)
        if before and column > prev_column and previous.rstrip()[-1:] != ":":
            key, prev_key = own.group("key"), before.group("key")
            return (
                f"`{key}` is indented more than `{prev_key}` on line {above[0]} "
                f"({_spaces(column)}; it has {prev_column}), so YAML reads it as "
                f"part of the value of `{prev_key}`; line the keys up"
            )
        value = here[own.end() :]
        if ": " in value:
            return f"the value of `{own.group('key')}` contains ': '; put the value in quotes"
    return None

"""Lines printed as this program's rich consoles print them, without importing rich for a
plain one.

rich takes tens of milliseconds to import: most of what ``validate`` costs beyond the
manifest's own work. The consoles of :func:`avatarflow.display.make_console` neither
highlight nor wrap, so a line with no markup tag, no emoji code, no tab and no control
character comes out of them exactly as given, whatever the colour setting; such a line
is written straight, any other goes through rich. ``tests/test_startup.py`` compares
both ways on lines of each kind.
"""

from __future__ import annotations

import re
from typing import IO

# Wider than rich's ``:name:`` / ``:name-emoji:`` codes: anything like one goes to rich.
_EMOJI_CODE = re.compile(r":\S*:")


def printed_as_is(text: str, *, markup: bool = True) -> bool:
    """Whether rich's ``print(text)`` writes ``text`` and a newline, unchanged;
    ``markup`` says whether it reads markup and emoji codes (its default)."""
    if not text.isprintable():  # tabs are expanded, control codes dropped
        return False
    return not markup or ("[" not in text and _EMOJI_CODE.search(text) is None)


def write_line(stream: IO[str], text: str) -> None:
    """``text`` and a newline, flushed as rich flushes after each print."""
    stream.write(text + "\n")
    stream.flush()

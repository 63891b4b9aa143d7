"""'Did you mean …?' hints: the nearest name among the known ones, and the nearest path."""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from itertools import islice

__all__ = ["closest", "closest_path", "did_you_mean"]

# A folder listed for a hint is read this far at most: a hint is not worth a long wait.
MAX_LISTING = 10_000


def closest(name: str, options: Iterable[str]) -> str | None:
    """The option most similar to ``name``, ignoring case; returned as given, or None."""
    by_lower: dict[str, str] = {}
    for option in options:
        by_lower.setdefault(option.lower(), option)
    matches = difflib.get_close_matches(name.lower(), list(by_lower), n=1)
    return by_lower[matches[0]] if matches else None


def did_you_mean(name: str, options: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest option, or an empty string."""
    hint = closest(name, options)
    return f" (did you mean '{hint}'?)" if hint and hint != name else ""


def closest_path(root: str, relative: str) -> str | None:
    """The existing file nearest to ``relative`` (a path under ``root``, ``/``-separated):
    each missing part is replaced by its nearest sibling. None when nothing is close."""
    parts = [p for p in relative.replace(os.sep, "/").split("/") if p not in ("", ".")]
    folder, found = root, list[str]()
    for index, part in enumerate(parts):
        candidate = os.path.join(folder, part)
        last = index == len(parts) - 1
        if (os.path.isfile(candidate) if last else os.path.isdir(candidate)) or part == "..":
            folder, found = candidate, [*found, part]
            continue
        try:
            with os.scandir(folder) as entries:
                names = [
                    e.name
                    for e in islice(entries, MAX_LISTING)
                    if (e.is_file() if last else e.is_dir())
                ]
        except OSError:
            return None
        hint = closest(part, names)
        if hint is None:
            return None
        folder, found = os.path.join(folder, hint), [*found, hint]
    return "/".join(found) if found and os.path.isfile(folder) else None

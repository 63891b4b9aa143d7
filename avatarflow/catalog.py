"""The catalogue of Azure AI Speech standard text to speech avatars.

Loaded once from ``avatarflow/data/avatars.json``, which copies Microsoft's
"Supported standard text to speech avatar" page (see its ``source`` field):

* standard **video** avatars: character -> style -> gesture names. A gesture is inserted
  in batch-synthesis SSML as ``<bookmark mark='gesture.NAME'/>``. Some styles (for
  example ``lisa``/``graceful-standing``) have no gestures at all.
* standard **photo** avatars, used with ``photoAvatarBaseModel: "vasa-1"`` and no style.

The service has no endpoint that lists avatars, so this file is the only list we have.
Every lookup is case-insensitive; names are stored in lower case as the docs use them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from . import suggest

__all__ = [
    "Catalog",
    "characters",
    "closest",
    "gestures",
    "is_photo_avatar",
    "is_standard_character",
    "load",
    "photo_avatars",
    "source",
    "styles",
]


@dataclass(frozen=True)
class Catalog:
    """The parsed catalogue. Use :func:`load` rather than building one."""

    source: str
    video: Mapping[str, Mapping[str, tuple[str, ...]]]
    photo: frozenset[str]


def _parse(raw: object) -> Catalog:
    if not isinstance(raw, dict):
        raise ValueError("avatars.json: top level must be an object")
    src = raw.get("source", "")
    video_raw = raw.get("video")
    photo_raw = raw.get("photo")
    if (
        not isinstance(src, str)
        or not isinstance(video_raw, dict)
        or not isinstance(photo_raw, list)
    ):
        raise ValueError("avatars.json: expected 'source' string, 'video' object, 'photo' list")
    video: dict[str, dict[str, tuple[str, ...]]] = {}
    for character, style_map in video_raw.items():
        if not isinstance(character, str) or not isinstance(style_map, dict):
            raise ValueError(f"avatars.json: bad entry for video character {character!r}")
        per_style: dict[str, tuple[str, ...]] = {}
        for style, names in style_map.items():
            if not isinstance(style, str) or not isinstance(names, list):
                raise ValueError(f"avatars.json: bad style {style!r} for {character!r}")
            if not all(isinstance(n, str) for n in names):
                raise ValueError(f"avatars.json: non-string gesture in {character}/{style}")
            per_style[style.lower()] = tuple(names)
        video[character.lower()] = per_style
    if not all(isinstance(p, str) for p in photo_raw):
        raise ValueError("avatars.json: 'photo' must list strings")
    photo = frozenset(p.lower() for p in photo_raw)
    return Catalog(source=src, video=video, photo=photo)


def _read_data() -> str:
    try:
        resource = resources.files("avatarflow").joinpath("data").joinpath("avatars.json")
        return resource.read_text(encoding="utf-8")
    except (OSError, TypeError):
        # importlib.resources on Python 3.11 cannot read from some namespace-package
        # layouts (e.g. editable installs); the file always sits next to this module.
        return (Path(__file__).parent / "data" / "avatars.json").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def load() -> Catalog:
    """Read and parse the packaged catalogue (once per process)."""
    return _parse(json.loads(_read_data()))


def source() -> str:
    """Where the catalogue was copied from (document path and date)."""
    return load().source


def characters() -> tuple[str, ...]:
    """The standard video avatar characters, lower case, in documented order."""
    return tuple(load().video)


def photo_avatars() -> tuple[str, ...]:
    """The standard photo avatars, lower case, sorted."""
    return tuple(sorted(load().photo))


def is_standard_character(name: str) -> bool:
    """True if ``name`` is a standard video avatar character (case-insensitive)."""
    return name.lower() in load().video


def styles(character: str) -> tuple[str, ...]:
    """The documented styles of a standard video character; empty if it is unknown."""
    return tuple(load().video.get(character.lower(), {}))


def gestures(character: str, style: str) -> tuple[str, ...] | None:
    """Gesture names for a (character, style) pair.

    Returns ``None`` when the pair is not in the catalogue, and an empty tuple when the
    pair exists but supports no gestures (e.g. ``lisa``/``graceful-standing``).
    """
    per_style = load().video.get(character.lower())
    if per_style is None:
        return None
    return per_style.get(style.lower())


def is_photo_avatar(name: str) -> bool:
    """True if ``name`` is a standard photo avatar (case-insensitive)."""
    return name.lower() in load().photo


def closest(name: str, options: Iterable[str]) -> str | None:
    """The option most similar to ``name``, for "did you mean ...?" hints.

    Matching ignores case; the option is returned as given. ``None`` if nothing is close.
    """
    return suggest.closest(name, options)

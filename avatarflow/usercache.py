"""The user's cache folder: per-user files that are no part of any course (plan memos,
crash logs). ``$AVATARFLOW_CACHE_DIR``, else ``$XDG_CACHE_HOME/avatarflow``, else
``~/.cache/avatarflow``."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

# The voice catalogue ``avatarflow catalog refresh`` writes here (see :mod:`voices`).
VOICES_FILE = "voices.json"


def cache_folder() -> Path:
    explicit = os.environ.get("AVATARFLOW_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "avatarflow"


def voices_fingerprint() -> str:
    """Which voice catalogue validation uses: the refreshed one by its bytes' sha256, or
    the shipped one (which the code's fingerprint covers). A refresh may refuse a voice
    or a style a memo or a cache once found valid, so every one of them keys on this."""
    try:
        with open(cache_folder() / VOICES_FILE, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except FileNotFoundError:
        return "shipped"
    except OSError:
        return "unreadable"  # validation words it; nothing remembered matches it

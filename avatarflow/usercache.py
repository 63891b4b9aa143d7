"""The user's cache folder: per-user files that are no part of any course (plan memos,
crash logs). ``$AVATARFLOW_CACHE_DIR``, else ``$XDG_CACHE_HOME/avatarflow``, else
``~/.cache/avatarflow``."""

from __future__ import annotations

import os
from pathlib import Path


def cache_folder() -> Path:
    explicit = os.environ.get("AVATARFLOW_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "avatarflow"

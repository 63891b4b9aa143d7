"""Git integration: a merge driver for render records, and its set-up.

Two branches that render different requests write different files and never conflict.
Two records of one request can still differ (each branch paid a job of the preview API,
whose ids the server assigns, or rendered the same request again): the driver merges
them with :func:`avatarflow.renders.merge`, keeping every paid job, the best one current
and the others as history. Both sides of the merge get the same bytes.

``.gitattributes`` (committed) names the driver for render records; the driver's command
lives in each clone's ``.git/config`` (git never clones it), which :func:`setup` writes.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from pydantic import ValidationError

from .errors import ConfigError
from .renders import RenderRecord, dump, merge
from .state import atomic_write

DRIVER = "avatarflow-render"
ATTRIBUTES_LINE = f"**/.avatarflow/**/renders/*.json merge={DRIVER}"


def merge_files(ours: Path, theirs: Path) -> bool:
    """Merge ``theirs`` into ``ours`` in place; False (a conflict for git) when either
    side is not a render record."""
    try:
        mine = RenderRecord.model_validate_json(ours.read_bytes())
        other = RenderRecord.model_validate_json(theirs.read_bytes())
        merged = merge(mine, other)
    except (OSError, ValueError, ValidationError):
        return False
    atomic_write(ours, dump(merged))
    return True


def add_attributes(directory: Path) -> Path:
    """The ``.gitattributes`` line naming the driver (added once, never duplicated)."""
    path = directory / ".gitattributes"
    lines = path.read_text("utf-8").splitlines() if path.exists() else []
    if ATTRIBUTES_LINE not in lines:
        with path.open("a", encoding="utf-8") as handle:
            if lines and lines[-1].strip():
                handle.write("\n")
            handle.write(
                "# avatarflow: two records of one render merge into one, keeping both jobs\n"
            )
            handle.write(ATTRIBUTES_LINE + "\n")
    return path


def configure_driver(directory: Path) -> bool:
    """Name the driver's command in the repository's config; False outside a repository."""
    inside = subprocess.run(
        ["git", "-C", str(directory), "rev-parse", "--git-dir"],
        capture_output=True,
        check=False,
    )
    if inside.returncode != 0:
        return False
    command = f"{shlex.quote(sys.executable)} -m avatarflow merge-render %O %A %B"
    for key, value in (("name", "avatarflow render records"), ("driver", command)):
        done = subprocess.run(
            ["git", "-C", str(directory), "config", f"merge.{DRIVER}.{key}", value],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise ConfigError(f"git config failed: {done.stderr.strip()}")
    return True


def setup(directory: Path) -> tuple[Path, bool]:
    """Both halves: the attributes line and, inside a git repository, the driver."""
    return add_attributes(directory), configure_driver(directory)

"""The log of a crash: an exception avatarflow did not raise on purpose (a bug).

It goes to ``crash.log`` in the user's cache folder (:mod:`avatarflow.usercache`),
replacing the previous one, with what a bug report needs: the versions of avatarflow,
Python and the libraries it builds requests with, the command line and the traceback.
Everything passes through :func:`avatarflow.secrets.redact` first.
"""

from __future__ import annotations

import platform
import sys
import traceback
from importlib import metadata
from pathlib import Path

from . import __version__, atomicfile
from .secrets import redact
from .usercache import cache_folder

FILE_NAME = "crash.log"
_LIBRARIES = ("click", "httpx", "jinja2", "pydantic", "pyyaml", "rich", "tenacity")


def log_path() -> Path:
    return cache_folder() / FILE_NAME


def describe(exc: BaseException, argv: list[str]) -> str:
    """The crash report's text, already redacted."""
    lines = [
        "# avatarflow crash log",
        f"avatarflow: {__version__}",
        f"python: {sys.version.split()[0]} ({platform.python_implementation()})",
        f"platform: {platform.platform()}",
    ]
    for library in _LIBRARIES:
        try:
            lines.append(f"{library}: {metadata.version(library)}")
        except metadata.PackageNotFoundError:
            lines.append(f"{library}: not installed")
    lines.append(f"command: avatarflow {' '.join(argv)}")
    lines.append("")
    lines.extend(traceback.format_exception(exc))
    return redact("\n".join(line.rstrip("\n") for line in lines) + "\n")


def write(exc: BaseException, argv: list[str]) -> Path | None:
    """Write the log of ``exc``; its path, or None when it cannot be written."""
    path = log_path()
    try:
        atomicfile.write_bytes(path, describe(exc, argv).encode(), durable=False, private=True)
    except OSError:
        return None
    return path

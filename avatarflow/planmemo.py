"""The memo of the last plan that found nothing to do.

A plan is a pure function of the code, the manifest, the files the manifest reads
(templates and narration), the state records and the output files. After a full plan
in which every video is up to date, ``plan`` keeps a fingerprint of all of them; the next
``plan`` that finds the same fingerprint answers "No changes" without parsing the YAML,
rendering a template or parsing a state record.

- What decides a video's identity is compared by content, never by mtime: the manifest,
  every file of the templates folder and every narration file are read and hashed
  (sha256) on every run, exactly as the full plan reads them.
- State records and outputs are files avatarflow writes itself. They are compared by
  stat (size, mtime_ns, inode, ctime_ns), taken before the full plan read them, as
  the output stat cache and git's index do. Every write sets a file's ctime to the
  current time, which no tool can set back; a file whose ctime (or mtime) falls within
  ``RACY_NS`` of the moment those stats were taken could have changed again within the
  same clock tick, so it never matches and the next plan is a full one.
- The code is part of the fingerprint: the package's own files and the versions of the
  libraries that parse, render and validate.

A memo is disposable: missing, unreadable, corrupt or of another version, it is a miss,
and a miss is the full plan, which then writes a new memo. Memos live in the user's
cache folder (``$AVATARFLOW_CACHE_DIR``, else ``$XDG_CACHE_HOME/avatarflow``, else
``~/.cache/avatarflow``), one file per manifest path and target, so that finding one
needs no parsing and nothing is added to the course's folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from .atomicfile import is_temp_name
from .planner import Action, ActionKind, Plan
from .statcache import RACY_NS, StatKey, stat_key, write_json
from .usercache import cache_folder
from .userfiles import UnsuitableFile, read_regular_file

VERSION = 2
MAX_INPUT_BYTES = 16 * 1024 * 1024  # above the manifest's and narration's own limits
MAX_AGE_S = 30 * 24 * 3600  # a memo unused this long is deleted when another is written
STALE_TEMP_S = 3600  # no plan takes this long to write its memo
_PACKAGE = Path(__file__).resolve().parent
# Libraries whose behaviour decides a request body, by a file that names their version.
_LIBRARIES = (("jinja2", "__init__.py"), ("yaml", "__init__.py"), ("pydantic", "version.py"))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class InputsRead:
    """What rendering read besides the manifest: the templates folder (None when a file
    there cannot be read as a regular file) and each narration file's sha256."""

    templates_dir: str
    templates: dict[str, str] | None
    inputs: dict[str, str]


@dataclass(frozen=True)
class StateRead:
    """What loading a local state read: each file's stat (by its path from the manifest)
    and the record names listed. ``started_ns`` is taken before the first stat."""

    started_ns: int
    state_dir: str
    stats: dict[str, StatKey]
    listings: dict[str, list[str]]


@dataclass(frozen=True)
class Observed:
    """Everything a full plan read, as each reader returned it: a memo's fingerprint."""

    manifest: str
    inputs: InputsRead
    state: StateRead
    outputs: dict[str, StatKey] = field(default_factory=dict)


@dataclass(frozen=True)
class Recalled:
    plan: Plan
    warnings: list[str]


# -- where memos live ------------------------------------------------------------------
def memo_path(manifest: Path, target: str) -> Path:
    key = f"{VERSION}\0{os.path.realpath(manifest)}\0{target}"
    return cache_folder() / "plans" / f"{sha256_bytes(key.encode())[:32]}.json"


def code_fingerprint() -> str:
    """The package's files and the libraries' versions: a new avatarflow, Jinja or
    pydantic may build other requests from the same manifest."""
    digest = hashlib.sha256(sys.version.encode())
    for path in sorted(_PACKAGE.rglob("*")):
        if path.suffix in (".py", ".json") and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(_PACKAGE)).encode() + b"\0" + path.read_bytes())
    for library, versioned in _LIBRARIES:
        spec = find_spec(library)
        if spec is not None and spec.origin is not None:
            digest.update(Path(spec.origin).with_name(versioned).read_bytes())
    return digest.hexdigest()


# -- the templates folder --------------------------------------------------------------
def snapshot_folder(folder: Path) -> dict[str, str] | None:
    """sha256 of every file under ``folder`` by relative path (a template added to the
    folder counts: ``{% include ... ignore missing %}`` may pick it up). None when a
    file cannot be read as a regular file: such a folder is not memoised."""
    files: dict[str, str] = {}
    if not folder.is_dir():
        return files
    for top, dirs, names in os.walk(folder):
        dirs.sort()
        for name in dirs:  # not walked into: a symlink's target is what names it
            path = Path(top, name)
            if path.is_symlink():
                files[f"{path.relative_to(folder).as_posix()}/"] = f"-> {os.readlink(path)}"
        for name in sorted(names):
            path = Path(top, name)
            try:
                files[path.relative_to(folder).as_posix()] = sha256_bytes(
                    read_regular_file(path, MAX_INPUT_BYTES)
                )
            except (OSError, UnsuitableFile):
                return None
    return files


# -- writing ---------------------------------------------------------------------------
def remember(
    manifest: Path,
    target: str,
    plan: Plan,
    observed: Observed,
    warnings: list[str],
) -> bool:
    """Keep ``plan``'s fingerprint when it found nothing to do; True when written."""
    if plan.has_changes or not observed.manifest or observed.inputs.templates is None:
        return False
    videos = [[a.video_id, a.synthesis_id, a.input_hash] for a in plan.actions]
    inputs, state = observed.inputs, observed.state
    data: dict[str, Any] = {
        "version": VERSION,
        "code": code_fingerprint(),
        "started_ns": state.started_ns,
        "manifest": observed.manifest,
        "templates_dir": inputs.templates_dir,
        "templates": inputs.templates,
        "state_dir": state.state_dir,
        "inputs": inputs.inputs,
        "stats": {**state.stats, **observed.outputs},
        "listings": state.listings,
        "plan": {"lineage": plan.lineage, "serials": dict(plan.serials), "videos": videos},
        "warnings": warnings,
    }
    return _write(memo_path(manifest, target), data)


def _prune(folder: Path, now: float) -> None:
    """Memos of checkouts long gone (CI workspaces, scratch copies) are dropped, and so
    are temp files of writes cut short (another plan may be writing one right now)."""
    for entry in os.scandir(folder):
        with contextlib.suppress(OSError):
            temp = is_temp_name(entry.name)
            keep_for = STALE_TEMP_S if temp else MAX_AGE_S
            if (temp or entry.name.endswith(".json")) and now - entry.stat().st_mtime > keep_for:
                os.unlink(entry.path)


def _write(path: Path, data: dict[str, Any]) -> bool:
    written = write_json(path, data)  # a read-only home still plans, in full every time
    if written:
        _prune(path.parent, time.time())
    return written


# -- recalling -------------------------------------------------------------------------
@dataclass(frozen=True)
class Memo:
    """A memo as read from the cache, not yet checked against the files it names."""

    manifest: Path
    data: dict[str, Any]

    @property
    def state_dir(self) -> str:
        """Where the state's lock is, relative to the manifest."""
        return str(self.data["state_dir"])

    def check(self) -> Recalled | None:
        """The memoised plan when nothing it depends on changed since, else None."""
        try:
            return _recalled(self.data) if _unchanged(self.manifest, self.data) else None
        except (OSError, ValueError, TypeError, KeyError, AttributeError, UnsuitableFile):
            return None


def read(manifest: Path, target: str) -> Memo | None:
    """The memo of ``manifest`` and ``target``, if there is a readable one."""
    try:
        data = json.loads(memo_path(manifest, target).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != VERSION:
        return None
    return Memo(Path(manifest), data)


def recall(manifest: Path, target: str) -> Recalled | None:
    """The memoised plan when nothing it depends on changed since, else None."""
    memo = read(manifest, target)
    return memo.check() if memo is not None else None


def _unchanged(manifest: Path, data: dict[str, Any]) -> bool:
    # Plain strings, not Path objects: joining 30,000 paths costs more than reading them.
    # Paths are as the manifest names them, through any symlink as it points now.
    root = os.path.dirname(os.path.realpath(manifest))
    if sha256_bytes(read_regular_file(manifest, MAX_INPUT_BYTES)) != data["manifest"]:
        return False
    if data["code"] != code_fingerprint():
        return False
    templates = data["templates_dir"]
    if templates is not None and snapshot_folder(Path(root, templates)) != data["templates"]:
        return False
    for relative, digest in data["inputs"].items():
        if sha256_bytes(read_regular_file(os.path.join(root, relative), MAX_INPUT_BYTES)) != digest:
            return False
    for relative, names in data["listings"].items():
        listed = os.listdir(os.path.join(root, relative))
        if sorted(n for n in listed if n.endswith(".json")) != names:
            return False
    racy_from = int(data["started_ns"]) - RACY_NS
    for relative, key in data["stats"].items():
        try:
            st = os.lstat(os.path.join(root, relative))
        except (FileNotFoundError, NotADirectoryError):
            return False
        # Any write sets ctime to "now"; one within a clock tick of the stats could leave
        # every field as it was, so a file changed that recently never matches.
        if stat_key(st) != tuple(key) or max(st.st_mtime_ns, st.st_ctime_ns) >= racy_from:
            return False
    return True


def _recalled(data: dict[str, Any]) -> Recalled:
    memo = data["plan"]
    actions = tuple(
        Action(ActionKind.NOOP, str(video), synthesis_id=synthesis_id, input_hash=input_hash)
        for video, synthesis_id, input_hash in memo["videos"]
    )
    serials = {str(k): int(v) for k, v in memo["serials"].items()}
    plan = Plan(actions, memo["lineage"], serials)
    return Recalled(plan, [str(w) for w in data["warnings"]])

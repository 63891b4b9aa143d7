"""What one checkout on one machine knows that git must not: per-machine facts.

They live in ``.cache/`` inside the state folder, a folder that carries its own
``.gitignore`` (``*``, as pytest's cache folder does), so ``git add -A`` never takes
them even in a repository whose ``.gitignore`` knows nothing of avatarflow:

- which render each video's output file was materialised from (``outputs``), so that a
  branch switch or a revert shows as reusing another render, and apply removes only the
  outputs it wrote itself (checked by sha256);
- the jobs this machine found gone before their expiry (``gone``), so that the next
  plan lists their re-render as paid;
- which outputs are known to be in which video store (``stored``), so that an upload cut
  short is done again;
- the state lock, the stat cache of output hashes and the temp files of state writes.

Everything here is disposable: a missing or corrupt file is an empty one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from json.decoder import scanstring  # type: ignore[attr-defined]  # C, not in the stubs
from pathlib import Path
from typing import Any

from . import atomicfile

CACHE_DIR = ".cache"
SAVE_INTERVAL = 1.0  # seconds between two lazy writes of the facts
FACTS_FILE = "checkout.json"
VERSION = 1
_IGNORE_ALL = "# written by avatarflow: this folder holds per-machine files only\n*\n"


def cache_dir(state_dir: Path) -> Path:
    """The state folder's per-machine folder, created with its ``.gitignore``."""
    folder = state_dir / CACHE_DIR
    ignore = folder / ".gitignore"
    if not ignore.exists():
        folder.mkdir(parents=True, exist_ok=True)
        write_disposable(ignore, _IGNORE_ALL.encode())
    return folder


def write_disposable(path: Path, data: bytes) -> None:
    """Replace ``path`` whole (temp file + rename, no fsync: a torn file reads as empty)."""
    atomicfile.write_bytes(path, data, durable=False)


@dataclass(frozen=True)
class Materialised:
    """An output file avatarflow wrote for a video, and the render it came from."""

    request_hash: str
    path: str  # relative to the manifest
    size: int
    sha256: str


@dataclass(frozen=True)
class LastRender:
    """The request a video was last rendered or materialised with here, and the hashes
    of its sources (script, template, vars), to explain the next change."""

    request_hash: str
    sources: dict[str, str]


@dataclass
class MachineFacts:
    path: Path
    outputs: dict[str, Materialised] = field(default_factory=dict)
    latest: dict[str, LastRender] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)
    stored: dict[str, set[str]] = field(default_factory=dict)  # sha256 -> store names
    batched: bool = False  # inside a run that flushes at its end: lazy writes allowed
    _saved: str = ""
    _saved_at: float = 0.0
    _dirty: bool = False

    @classmethod
    def load(
        cls,
        state_dir: Path,
        keep: Callable[[str], bool] | None = None,
        only: Collection[str] | None = None,
    ) -> MachineFacts:
        """The facts of ``state_dir``; with ``keep``, the outputs and latest renders of
        only the videos it accepts (a plan of a few changed videos among thousands reads
        no more; facts read so are for reading only, never saved). With ``only`` too (the
        caller knows ``keep`` accepts no other video of the file), those videos' lines
        are found by search instead of each line being looked at."""
        path = state_dir / CACHE_DIR / FACTS_FILE
        facts = cls(path)
        try:
            text = path.read_text("utf-8")
            data = (
                (keep is not None and only is not None and _by_search(text, only))
                or (keep is not None and _by_layout(text, keep))
                or json.loads(text)
            )
            if data.get("version") != VERSION:
                return facts
            facts.outputs = {
                str(vid): Materialised(**item)
                for vid, item in data.get("outputs", {}).items()
                if keep is None or keep(vid)
            }
            facts.latest = {
                str(vid): LastRender(**item)
                for vid, item in data.get("latest", {}).items()
                if keep is None or keep(vid)
            }
            facts.gone = {str(job) for job in data.get("gone", [])}
            facts.stored = {str(k): set(v) for k, v in data.get("stored", {}).items()}
            facts._saved = text if keep is None else ""
        except (OSError, ValueError, TypeError, AttributeError):
            return cls(path)
        return facts

    def _text(self) -> str:
        """JSON with one line per video in ``latest`` and ``outputs`` (see ``_by_layout``)."""
        data: dict[str, Any] = {
            "gone": sorted(self.gone),
            "latest": {vid: vars(m) for vid, m in sorted(self.latest.items())},
            "outputs": {vid: vars(m) for vid, m in sorted(self.outputs.items())},
            "stored": {sha: sorted(names) for sha, names in sorted(self.stored.items())},
            "version": VERSION,
        }
        parts = []
        for name, value in data.items():
            if name in _PER_VIDEO and value:
                lines = (
                    f"  {json.dumps(k)}: {json.dumps(v, sort_keys=True)}" for k, v in value.items()
                )
                parts.append(f" {json.dumps(name)}: {{\n" + ",\n".join(lines) + "\n }")
            else:
                parts.append(f" {json.dumps(name)}: {json.dumps(value, sort_keys=True)}")
        return "{\n" + ",\n".join(parts) + "\n}\n"

    def save(self, *, now: bool = True) -> None:
        """Write the facts if they changed since they were read. ``now=False`` inside a
        batch writes at most once a second (a run of 10,000 videos must not rewrite them
        10,000 times); the batch flushes with ``save()`` at its end."""
        if not now and self.batched and time.monotonic() - self._saved_at < SAVE_INTERVAL:
            self._dirty = True
            return
        text = self._text()
        self._saved_at, self._dirty = time.monotonic(), False
        if text == self._saved:
            return
        cache_dir(self.path.parent.parent)
        write_disposable(self.path, text.encode())
        self._saved = text

    def is_stored(self, sha256: str, stores: tuple[str, ...]) -> bool:
        return set(stores) <= self.stored.get(sha256, set())

    def mark_stored(self, sha256: str, stores: list[str] | tuple[str, ...]) -> None:
        self.stored.setdefault(sha256, set()).update(stores)


# The facts as ``_text`` lays them out: one top-level key per line, one video per line
# inside ``latest`` and ``outputs``. JSON strings hold no raw newline, so each video's
# line is found, and its id read, without parsing anything else.
_PER_VIDEO = ("latest", "outputs")
_MAX_SEARCHED = 64  # videos found by search (``_by_search``); more: each line looked at


def _by_layout(text: str, keep: Callable[[str], bool]) -> dict[str, Any] | None:
    """The facts of the videos ``keep`` accepts, each video's line parsed only when
    accepted; None when ``text`` is not laid out as ``_text`` writes it (it is then
    parsed whole). A plan of one changed video among 50,000 reads no more."""
    try:
        return _read_layout(text.split("\n"), keep)
    except ValueError:  # another layout (an older one), or a torn file
        return None


def _by_search(text: str, videos: Collection[str]) -> dict[str, Any] | None:
    """The facts of ``videos`` alone, as ``_by_layout`` reads them, each video's line found
    by searching for its key at the start of a line of its section (a string search per
    video, where the line loop parses every video's id): for a plan of a few changed
    videos. None when ``text`` is not laid out as ``_text`` writes it."""
    if len(videos) > _MAX_SEARCHED:
        return None  # a search each through the whole file: the line loop is cheaper
    lines: list[str] = []
    taken = 0  # the text before this is in ``lines``
    for name in _PER_VIDEO:
        header = f"\n {json.dumps(name)}: {{\n"
        start = text.find(header, taken)
        if start < 0:
            continue  # no video in this section: one line, read with the others
        first = start + len(header) - 1  # the newline before the section's first video
        close = text.find("\n }", first)  # the newline before the section's last line
        if close < 0:
            return None
        lines.extend(text[taken:first].split("\n"))
        found = []
        for video in videos:
            at = text.find(f"\n  {json.dumps(video)}: ", first, close)
            if at >= 0:
                found.append((at, text[at + 1 : text.find("\n", at + 1)]))
        lines.extend(line for _, line in sorted(found))  # in the file's order
        taken = close + 1
    lines.extend(text[taken:].split("\n"))
    try:
        return _read_layout(lines, lambda _: True)
    except ValueError:
        return None


def _read_layout(lines: list[str], keep: Callable[[str], bool]) -> dict[str, Any] | None:
    if lines[0] != "{" or lines[-2:] != ["}", ""]:
        return None
    data: dict[str, Any] = {}
    videos: dict[str, Any] | None = None  # the section of videos being read
    for line in lines[1:-2]:
        if videos is not None and line.startswith('  "'):
            video_id, end = scanstring(line, 3)
            if line[end : end + 2] != ": ":
                return None
            if keep(video_id):
                videos[video_id] = json.loads(line[end + 2 :].removesuffix(","))
        elif videos is not None:
            if line not in (" }", " },"):
                return None
            videos = None
        elif line.startswith(' "'):
            name, end = scanstring(line, 2)
            value = line[end + 2 :].removesuffix(",")
            if line[end : end + 2] != ": " or name in data:
                return None
            if name in _PER_VIDEO and value == "{":
                videos = data[name] = {}
            else:
                data[name] = json.loads(value)
        else:
            return None
    return data if videos is None else None


def remove_stale_temps(state_dir: Path) -> int:
    """Temp files of state writes cut short (only while holding the state lock)."""
    folders = (state_dir / CACHE_DIR, state_dir / CACHE_DIR / "tmp")
    return sum(atomicfile.remove_stale(folder) for folder in folders)

"""The incremental plan: after one edit, only the edited video is rendered again.

A video's request is a function of exactly these inputs: the code, the manifest's head
(everything but the ``videos`` items: ``defaults``, ``service``...), the templates
folder, the text of the video's own item and its position in the list (templates see
``video.index``), and the narration file it reads. A full plan keeps, per video, what
the plan needs of its request (content hash, synthesis id, output name, warnings) under
the fingerprint of those inputs, in the user's cache folder beside the plan memo. The
next plan cuts the manifest into its items as text (:mod:`avatarflow.manifestsplit`),
and only the items whose fingerprint is new are parsed, validated, rendered and hashed.
A narration file's digest is part of that fingerprint; it is kept with the file's stat
and the file read again whenever its stat changes (the ctime moves on any write, and no
tool sets it back), as git's index and the output stat cache do.

The state is kept by render (:mod:`avatarflow.backends.local`): one record per request
hash. Render records and outputs are files avatarflow writes itself; like the output
stat cache they are trusted by their stat (size, mtime_ns, inode, ctime_ns), and a record
changed within ``RACY_NS`` of being read is parsed again next time. A video whose render
(found by its request hash) delivered a video that is intact on disk is a no-op: the
planner's answer for it depends on nothing else (not on the per-machine facts, not on
expiry), so each item's row keeps why its video was one: the stats of its render
record, its output and the output's ``.vtt``. While the item, its narration file and
those three files are as they were, the video is a no-op again without anything being
read. Every other video gets its full request and its records bound to it exactly as
the full plan binds them (:meth:`LocalStore.bind`, fed with only the renders and facts
that concern it), and the planner decides.

Correctness first: whatever this layer is not sure of is left to the full plan, which
then refills the cache: a layout the split does not cover, an item that does not parse
on its own, any error (so that every error is found and worded by the full path, with
its file and line), a state kept remotely or in the older per-video format, a missing
state, ``--verify``. So is an edit that changes most videos (``defaults``, a template),
where a full plan is cheaper than parsing items one by one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
import marshal
import operator
import os
import re
import stat
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeVar, cast

from . import atomicfile, planmemo, yamlsafe
from .backends.local import RECORDS_DIR, LocalStore
from .errors import UserError
from .fastpath import collector_paused
from .manifestsplit import Item, Layout, Split, cut_again, split_videos
from .planmemo import noop_actions, sha256_bytes, snapshot_folder
from .planner import Action, ActionKind, Plan
from .statcache import RACY_NS, OpenFolder, StatKey, stat_key
from .usercache import cache_folder
from .userfiles import UnsuitableFile, read_regular_file

if TYPE_CHECKING:
    from .build import Built
    from .machine import MachineFacts
    from .manifest import LoadedManifest, VideoEntry
    from .payload import VideoRequest
    from .planmemo import StateRead
    from .pricing import Prices
    from .renders import RenderOutput, RenderRecord
    from .state import State, StateRecord
    from .workspace import FileRef, OutputChecker, TargetName, Workspace

VERSION = 6
# Past this share of videos to parse one by one, one full parse is cheaper.
MAX_CHANGED_SHARE = 0.2


class _Fallback(Exception):
    """Not sure: the full plan decides (and words any error)."""


# What a cache file torn or written by another version can raise: it is then a miss.
_CORRUPT = (OSError, ValueError, TypeError, KeyError, AttributeError, IndexError)


class Cached(NamedTuple):
    """What a plan needs of one video's request, without the request. Tuples: the cache
    of a large catalogue is read on every plan, and a JSON array is one."""

    video_id: str
    content_hash: str
    synthesis_id: str
    output_name: str  # the output's file name in the target's output folder
    warnings: tuple[str, ...]
    inputs: dict[str, str]  # narration files read, as the manifest names them → sha256
    nodes: int  # YAML value nodes of the item, for the document's node budget
    alias_nodes: int  # the same when the item may use aliases (their budget), else 0
    # The item's text reads nothing of its place (``reads_place``): the same text (its
    # row's key) moved to another index may keep this entry.
    movable: bool


# A delivered file as a render records it: size and sha256 (the path is the video's).
Delivered = tuple[int, str]


class RenderSummary(NamedTuple):
    """What plan and status need of one render record, with the record file's stat."""

    size: int
    mtime_ns: int
    ino: int
    ctime_ns: int
    fingerprint: int  # of the file's bytes: the serial a plan holds for its videos
    status: str  # as a video using it is shown: "downloaded" once a video was delivered
    output: Delivered | None
    subtitles: Delivered | None
    job: str  # the remote job's id, or the synthesis id until there is one
    error: str | None  # "code: message" of a failed render

    @property
    def stat(self) -> StatKey:
        return (self.size, self.mtime_ns, self.ino, self.ctime_ns)

    @classmethod
    def of(cls, key: StatKey, render: RenderRecord, fingerprint: int) -> RenderSummary:
        """Summarised through the view the full path binds (``to_view``), so that both
        say the same of a render."""
        from .renders import to_view

        view = to_view(render, "", None)
        return cls(
            *key,
            fingerprint,
            view.status,
            _delivered(render.output),
            _delivered(render.subtitles),
            view.remote_id or view.synthesis_id,
            f"{view.error.code}: {view.error.message}" if view.error else None,
        )

    def record(self, input_hash: str, output_path: str | None) -> RecordSummary:
        """What a video's record says when it uses this render, its output at
        ``output_path`` (None: a render it had before, bound to no file)."""
        output = subtitles = None
        if output_path is not None and self.output is not None:
            output = (output_path, *self.output)
            if self.subtitles is not None:
                subtitles = (str(PurePosixPath(output_path).with_suffix(".vtt")), *self.subtitles)
        return RecordSummary(self.status, input_hash, output, subtitles, self.job, self.error)


def _delivered(file: RenderOutput | None) -> Delivered | None:
    return None if file is None else (file.size, file.sha256)


class RecordSummary(NamedTuple):
    """What status needs of a video's record."""

    status: str
    input_hash: str
    output: FileRef | None
    subtitles: FileRef | None
    job: str  # the remote job's id, or the synthesis id until there is one
    error: str | None  # "code: message" of a failed render

    @classmethod
    def of(cls, record: StateRecord) -> RecordSummary:
        from .workspace import file_ref

        error = record.error
        return cls(
            record.status,
            record.input_hash,
            file_ref(record.output),
            file_ref(record.subtitles),
            record.remote_id or record.synthesis_id,
            f"{error.code}: {error.message}" if error else None,
        )


# The stat of a file as one bytes object: a catalogue's cache holds tens of thousands,
# and one object loads, compares and keeps faster than a tuple of four integers.
_STAT = struct.Struct("<qqQq")


def packed(st: os.stat_result) -> bytes:
    """The stat key of ``st`` (size, mtime_ns, inode, ctime_ns), packed."""
    return _STAT.pack(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def packed_all(sts: list[os.stat_result]) -> list[bytes]:
    """``packed`` of each, in C."""
    return list(itertools.starmap(_STAT.pack, map(stat_key, sts)))


_MODE = operator.attrgetter("st_mode")
_MTIME = operator.attrgetter("st_mtime_ns")
_CTIME = operator.attrgetter("st_ctime_ns")


def _newest(sts: list[os.stat_result]) -> int:
    """The latest mtime or ctime of ``sts`` (0 for none)."""
    return max(max(map(_MTIME, sts), default=0), max(map(_CTIME, sts), default=0))


def unpacked(key: bytes) -> StatKey:
    size, mtime_ns, ino, ctime_ns = _STAT.unpack(key)
    return (size, mtime_ns, ino, ctime_ns)


class Noop(NamedTuple):
    """Why a video was a no-op, by the stat of each file that answer rests on: the render
    record of its request, its output, and the output's ``.vtt`` when the render has one.
    While all three are as they were, so is the answer (see the module's docstring)."""

    record: bytes
    output: bytes
    subtitles: bytes | None
    serial: int  # the record's fingerprint, which the plan holds for the video


class Row(NamedTuple):
    """One item of ``videos`` as the last plan left it: its fingerprint, its entry, what
    made it a no-op (None: it was not, or a file it rests on was racy), and where the
    item was when its entry was built. The fingerprint is of the item's text alone: an
    item moved by a video added or removed above it keeps its entry, unless its request
    or warnings depend on where it is (see ``_in_place``)."""

    key: str
    entry: Cached
    noop: Noop | None
    position: int  # the item's index in ``videos``
    line: int  # the line the item started on (its warnings name lines)


# Marshal, not JSON: the cache of 50,000 videos is read on every plan, and marshal
# loads plain tuples several times faster. Python's own format, so the key carries the
# interpreter's version; a digest of the payload makes a torn or foreign file a miss.
_MAGIC = b"avatarflow-requests\n"


def _write_marshalled(path: Path, data: Any) -> bytes | None:
    """Write ``data``; the digest of what was written, None when it could not be."""
    payload = marshal.dumps(data)
    digest = hashlib.sha256(payload).digest()
    try:
        with atomicfile.replacing(path, durable=False, private=True) as handle:
            handle.write(_MAGIC + digest + payload)
    except OSError:
        return None  # a read-only cache folder: the next plan builds again
    return digest


def _read_marshalled(path: Path) -> tuple[Any, bytes]:
    """What ``_write_marshalled`` wrote, and its digest; raises one of ``_CORRUPT``."""
    raw = path.read_bytes()
    head, digest = len(_MAGIC), raw[len(_MAGIC) : len(_MAGIC) + 32]
    payload = memoryview(raw)[head + 32 :]
    if raw[:head] != _MAGIC or hashlib.sha256(payload).digest() != digest:
        raise ValueError("not a request cache")
    return marshal.loads(payload), digest


# Past this share of rows changed since the cache file was written whole, it is written
# whole again; until then a small journal beside it holds the changes (one edit among
# 50,000 videos then writes kilobytes, not the megabytes of every row).
JOURNAL_SHARE = 0.125
_JOURNAL_MIN = 64  # changes a journal may always hold, whatever the share


@dataclass
class _Base:
    """The cache as its file holds it, before the journal: what a save compares with."""

    digest: bytes
    rows: list[Row]
    records: dict[str, bytes]
    narrations: dict[str, tuple[bytes, str, bool]]
    layout: str | None  # the digest of the manifest the layout is of


# The per-machine facts as a plan found them: their packed stat, whether they kept an
# output for a video not in the manifest, and the videos not in the manifest they hold
# anything of (an output or a last render): while their stat and the manifest's videos
# are the same, a plan reads those videos' lines and its changed videos' alone.
Facts = tuple[bytes, bool, tuple[str, ...]]


@dataclass
class RequestCache:
    """The cache of one manifest and target: each item's row, the render records checked,
    the narration files hashed; and, in a file of its own that only ``status`` reads,
    what each render record says."""

    path: Path
    context: str = ""
    rows: list[Row] = field(default_factory=list)  # by the item's index
    # Render records found valid, by request hash: the packed stat of the file.
    records: dict[str, bytes] = field(default_factory=dict)
    # Narration files by path: (packed stat, sha256, whether it may read a video's place)
    # (see _Narrations).
    narrations: dict[str, tuple[bytes, str, bool]] = field(default_factory=dict)
    # The per-machine facts as the last plan found them (see ``Facts``); None when not
    # known.
    facts: Facts | None = None
    # The manifest's split as the rows' keys were made of it: (its bytes' digest, where
    # the split found its items, their keys); an unchanged manifest is not cut again.
    layout: tuple[str, Layout, list[str]] | None = None
    changed: bool = False  # something read is new: the file is written again
    _renders: dict[str, RenderSummary] | None = None
    renders_changed: bool = False
    _base: _Base | None = None
    _let_go: bool = False  # the rows were dropped (``let_go``): never written again

    @property
    def journal(self) -> Path:
        return self.path.with_suffix(".journal")

    @classmethod
    def open(cls, manifest: Path, target: str) -> RequestCache:
        key = f"{VERSION}\0{sys.hexversion >> 16}\0{os.path.realpath(manifest)}\0{target}"
        path = cache_folder() / "videos" / f"{sha256_bytes(key.encode())[:32]}.rows"
        cache = cls(path)
        try:
            with collector_paused():  # tens of thousands of tuples, no cycles among them
                (context, rows, records, narrations, facts, layout), digest = _read_marshalled(path)
                cache.rows = [_row(row) for row in rows]
            cache.context, cache.records, cache.narrations = str(context), records, narrations
            cache._set(facts, layout)
            cache._base = _Base(digest, cache.rows, records, narrations, cache._layout_digest)
        except (*_CORRUPT, EOFError):
            return cls(path)  # disposable: anything unreadable is an empty cache
        try:
            cache._replay()
        except (*_CORRUPT, EOFError):
            base = cache._base
            cache.rows, cache.records, cache.narrations = base.rows, base.records, base.narrations
        return cache

    @property
    def _layout_digest(self) -> str | None:
        return None if self.layout is None else self.layout[0]

    def _set(self, facts: Any, layout: Any) -> None:
        """Facts and layout as read back (a journal's None layout: the file's)."""
        self.facts = None if facts is None else (facts[0], bool(facts[1]), tuple(facts[2]))
        if layout is not None:
            digest, (span, starts, ends, lines), keys = layout
            self.layout = (digest, Layout(span, starts, ends, lines), keys)

    def _replay(self) -> None:
        """The changes the journal holds, when it was written for this cache file (none:
        a missing journal reads as one that fails, and the file's rows stay)."""
        (base, context, count, rows, records, narrations, facts, layout), _ = _read_marshalled(
            self.journal
        )
        assert self._base is not None
        if base != self._base.digest:
            return  # written for an older cache file
        replayed = self.rows[:count]
        for index, row in sorted(rows.items()):
            if index < len(replayed):
                replayed[index] = _row(row)
            elif index == len(replayed):
                replayed.append(_row(row))
            else:
                raise ValueError("a journal with a hole")
        if len(replayed) != count:
            raise ValueError("a journal short of rows")
        self.rows, self.context = replayed, str(context)
        self.records = _replayed(self.records, records)
        self.narrations = _replayed(self.narrations, narrations)
        self._set(facts, layout)

    @property
    def renders(self) -> dict[str, RenderSummary]:
        """What each render record says, by request hash (read when first asked)."""
        if self._renders is None:
            try:
                data, _ = _read_marshalled(self.path.with_suffix(".renders"))
                self._renders = {sys.intern(k): RenderSummary._make(v) for k, v in data.items()}
            except (*_CORRUPT, EOFError):
                self._renders = {}
        return self._renders

    @renders.setter
    def renders(self, value: dict[str, RenderSummary]) -> None:
        self.renders_changed = self.renders_changed or value != self._renders
        self._renders = value

    def let_go(self) -> None:
        """Drop what only a plan reads (the rows, the manifest's layout, the narration
        files' digests): megabytes at catalogue scale. What is saved after this is the
        render summaries alone."""
        self.rows, self.layout, self.narrations, self._base = [], None, {}, None
        self._let_go = True

    def save(self) -> None:
        """Write what changed, not fsynced (a torn file is a miss): a journal of the
        changes when they are few, else the whole cache."""
        # After ``let_go`` the rows are gone: what changed is found again next time.
        if self.changed and not self._let_go and (self._save_journal() or self._save_whole()):
            self.changed = False
        if self.renders_changed and self._renders is not None:
            summaries = {k: tuple(v) for k, v in self._renders.items()}
            if _write_marshalled(self.path.with_suffix(".renders"), summaries):
                self.renders_changed = False

    def _plain_layout(self) -> tuple[Any, ...] | None:
        layout = self.layout
        return None if layout is None else (layout[0], tuple(layout[1]), layout[2])

    def _save_whole(self) -> bool:
        rows = [_plain_row(row) for row in self.rows]
        data = (self.context, rows, self.records, self.narrations, self.facts)
        digest = _write_marshalled(self.path, (*data, self._plain_layout()))
        if digest is None:
            return False
        self._base = _Base(digest, self.rows, self.records, self.narrations, self._layout_digest)
        with contextlib.suppress(OSError):
            self.journal.unlink()
        return True

    def _save_journal(self) -> bool:
        base = self._base
        if base is None:
            return False
        rows = {
            index: _plain_row(row)
            for index, row in enumerate(self.rows)
            if index >= len(base.rows) or row is not base.rows[index]
        }
        records = _changes(base.records, self.records)
        narrations = _changes(base.narrations, self.narrations)
        changes = len(rows) + sum(len(part) for part in (*records, *narrations))
        if changes > max(_JOURNAL_MIN, JOURNAL_SHARE * len(self.rows)):
            return False
        count = len(self.rows)
        layout = None if self._layout_digest == base.layout else self._plain_layout()
        data = (base.digest, self.context, count, rows, records, narrations, self.facts, layout)
        return _write_marshalled(self.journal, data) is not None


def _plain_row(row: Row) -> tuple[Any, ...]:
    return (row.key, tuple(row.entry), _plain(row.noop), row.position, row.line)


_Value = TypeVar("_Value")


def _changes(
    base: dict[str, _Value], now: dict[str, _Value]
) -> tuple[dict[str, _Value], list[str]]:
    """What ``now`` sets and removes of ``base``."""
    return {k: v for k, v in now.items() if base.get(k) != v}, sorted(base.keys() - now.keys())


def _replayed(
    base: dict[str, _Value], changes: tuple[dict[str, _Value], list[str]]
) -> dict[str, _Value]:
    replayed = {**base, **changes[0]}
    for key in changes[1]:
        replayed.pop(key, None)
    return replayed


def _plain(noop: Noop | None) -> tuple[Any, ...] | None:
    return None if noop is None else tuple(noop)


def _row(data: tuple[Any, ...]) -> Row:
    key, entry, noop, index, line = data
    return Row(key, Cached._make(entry), None if noop is None else Noop._make(noop), index, line)


def item_key(item: Item) -> str:
    return hashlib.sha256(item.text.encode()).hexdigest()[:32]


# What in a template, a narration or a manifest's text may make a request depend on
# where its video is in ``videos``: inside Jinja markup (the only place a template reads
# anything: the default delimiters, no line statements), the word ``index``
# (``video.index``, ``loop.index``) or ``video`` used otherwise than for one of the
# attributes that do not (``{{ video }}`` prints the index too). Erring on the side of
# "it may": such a video is built again when it moves. Prose outside the markup (a git
# course speaks of the index) reads nothing.
_JINJA_MARKUP = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
_PLACE_READ = re.compile(r"index|\bvideo\b(?!\s*\.\s*(?:id|voice|avatar|variant)\b)")


def reads_place(text: str) -> bool:
    """Whether ``text`` may read a video's place in ``videos`` (see above)."""
    if "{{" not in text and "{%" not in text:
        return False
    return any(_PLACE_READ.search(markup) for markup in _JINJA_MARKUP.findall(text))


def _bytes_read_place(data: bytes) -> bool:
    try:
        return reads_place(data.decode("utf-8"))
    except UnicodeDecodeError:
        return True


def context_digest(split: Split, templates: dict[str, str]) -> str:
    """What every video's request depends on: the code and the voice catalogue, the
    head, the templates."""
    digest = hashlib.sha256(planmemo.rules_fingerprint().encode())
    digest.update(b"\0" + split.head.encode())
    digest.update(b"\0" + json.dumps(templates, sort_keys=True).encode())
    return digest.hexdigest()


# An anchor, an alias or a merge key: what could make an item's nodes count against the
# aliases' budget. Narration with a '*' in it matches too; that only makes the check stricter.
_MAY_ALIAS = re.compile(r"[&*][^\s\[\]{},]|<<")


def alias_nodes(text: str, nodes: int) -> int:
    """``nodes`` when ``text`` may use aliases, else 0: the share of the aliases' budget
    it could take."""
    return nodes if _MAY_ALIAS.search(text) else 0


def count_nodes(value: Any) -> int:
    """Value nodes of plain YAML data, as the loader's node budget counts them."""
    if isinstance(value, dict):
        return 1 + sum(count_nodes(v) for v in value.values())
    if isinstance(value, list):
        return 1 + sum(count_nodes(v) for v in value)
    return 1


# -- reading the manifest -----------------------------------------------------------------
@dataclass
class Reading:
    """One read of the manifest: its bytes' digest, its items, the templates folder as the
    head names it and its files' digests, and the fingerprint of all but the items."""

    path: Path
    digest: str
    split: Split
    templates_dir: str
    templates: dict[str, str]
    context: str

    @cached_property
    def root(self) -> Path:
        return self.path.resolve().parent

    @property
    def display(self) -> str:
        return self.path.name  # as the full path names the manifest in messages

    @cached_property
    def keys(self) -> list[str]:
        return [item_key(item) for item in self.split.items]

    @cached_property
    def place_read(self) -> bool:
        """Whether the head or a template may read a video's place (``reads_place``): a
        moved item is then built again wherever it went."""
        if reads_place(self.split.head):
            return True
        folder = self.root / self.templates_dir
        for name in self.templates:
            if name.endswith("/"):
                return True  # a linked folder: what it holds is not looked into
            try:
                data = read_regular_file(folder / name, yamlsafe.MAX_BYTES)
            except (OSError, UnsuitableFile):
                return True
            if _bytes_read_place(data):
                return True
        return False

    @cached_property
    def layout(self) -> tuple[str, Layout, list[str]]:
        """What the cache keeps to cut this very text again (see ``read_manifest``)."""
        return (self.digest, self.split.layout, self.keys)

    def drop_items(self) -> None:
        """Let the manifest's text go (megabytes at catalogue scale) once no item is
        parsed any more; the items' keys and layout stay."""
        layout = self.layout  # computed before: the cache is saved under them
        self.split = dataclasses.replace(self.split, items=())
        assert layout is self.layout


def read_manifest(path: Path, cache: RequestCache | None = None) -> Reading | None:
    """The manifest as this layer sees it; None when only the full path can read it.
    A manifest whose bytes are those ``cache`` last cut is cut where it was, its items'
    keys taken from the cache (a narration file edited leaves the manifest as it was)."""
    try:
        raw = read_regular_file(path, yamlsafe.MAX_BYTES)
        text = raw.decode("utf-8")
    except (OSError, UnsuitableFile, UnicodeDecodeError):
        return None
    digest = sha256_bytes(raw)
    del raw  # megabytes at catalogue scale: the text is kept, the bytes need not be
    known = cache.layout if cache is not None else None
    keys: list[str] | None = None
    if known is not None and known[0] == digest:
        split: Split | None = cut_again(text, known[1])
        keys = known[2]
    else:
        split = split_videos(text) if "\x00" not in text else None
    if split is None:
        return None
    folder = _templates_setting(split)
    if folder is None:
        return None
    templates = snapshot_folder(path.resolve().parent / folder)
    if templates is None:
        return None
    context = context_digest(split, templates)
    reading = Reading(path, digest, split, folder, templates, context)
    if keys is not None:
        reading.keys = keys  # the cached property's value, as the cache found it
    return reading


def _templates_setting(split: Split) -> str | None:
    """The templates folder as the head names it (parsed alone, the head is small)."""
    from .yamlsafe import load_yaml

    try:
        head = load_yaml(split.head_document, "head").data
    except UserError:
        return None
    if not isinstance(head, dict) or "videos" not in head or head["videos"] is not None:
        return None
    folder = head.get("templates_dir", "templates")
    return folder if isinstance(folder, str) and "\x00" not in folder else None


# -- after a full plan: filling the cache ------------------------------------------------
def refill(
    cache: RequestCache,
    reading: Reading | None,
    manifest: LoadedManifest,
    workspace: Workspace,
    built: Built,
    state: State,
    state_read: StateRead | None,
    plan: Plan | None = None,
    outputs_read: dict[str, StatKey] | None = None,
) -> None:
    """Keep what a full plan built of each video under its item's fingerprint, what it
    read of each render record under the record file's stat, and why each video of
    ``plan`` was a no-op, by the stat of the files it read (``outputs_read``)."""
    if reading is None or manifest.sha256 != reading.digest:
        return  # no split, or the file changed between the two reads
    requests = built.requests
    again = snapshot_folder(reading.root / reading.templates_dir)
    if len(reading.split.items) != len(requests) or again != reading.templates:
        return  # a template changed while the videos were rendered
    sizes = manifest.yaml.lines.item_sizes("videos")  # one line per value node
    inputs = built.read.inputs
    cache.context = reading.context
    store = state.store
    noops: dict[str, Noop] = {}
    if isinstance(store, LocalStore):
        noops = _full_plan_noops(workspace, store, state_read, plan, outputs_read)
    rows: list[Row] = []
    items = reading.split.items
    for index, (key, request) in enumerate(zip(reading.keys, requests, strict=True)):
        text_file = request.rendered.video.fields.text_file
        used = {text_file: inputs[text_file]} if text_file in inputs else {}
        output = workspace.output_name(request)
        entry = _cached(request, used, items[index], sizes.get(index, 0), output)
        # A narration the renderer did not read as a plain file: missed next time.
        known = text_file is None or text_file in inputs
        noop = noops.get(request.video_id)
        rows.append(Row(key if known else "", entry, noop, index, items[index].line))
    cache.rows, cache.records, cache.facts, cache.layout = rows, {}, None, reading.layout
    summaries: dict[str, RenderSummary] = {}
    if state_read is not None and isinstance(store, LocalStore):
        # A local state kept by render, with the stat of each file as it was read.
        racy_from = state_read.started_ns - RACY_NS
        folder = f"{state_read.state_dir}/{RECORDS_DIR}/"
        for request_hash, render in store.renders.items():
            seen = state_read.stats.get(f"{folder}{request_hash}.json")
            printed = store.fingerprints.get(request_hash)
            if seen is not None and printed is not None and max(seen[1], seen[3]) < racy_from:
                summaries[request_hash] = RenderSummary.of(seen, render, printed)
                cache.records[request_hash] = _STAT.pack(*seen)
        cache.facts = _facts_seen(state_read, store, {r.video_id for r in requests})
    cache.renders = summaries
    cache.changed = True
    cache.save()


def _full_plan_noops(
    workspace: Workspace,
    store: LocalStore,
    state_read: StateRead | None,
    plan: Plan | None,
    outputs_read: dict[str, StatKey] | None,
) -> dict[str, Noop]:
    """Why each no-op of a full plan was one, by video id: the stats it read of the files
    that answer rests on, where none of them was racy."""
    if plan is None or outputs_read is None or state_read is None:
        return {}
    racy_from = state_read.started_ns - RACY_NS
    folder = f"{state_read.state_dir}/{RECORDS_DIR}/"
    noops: dict[str, Noop] = {}
    for action in plan.actions:
        request = action.request
        if action.kind is not ActionKind.NOOP or request is None:
            continue
        render = store.renders.get(request.content_hash)
        serial = store.fingerprints.get(request.content_hash)
        record = state_read.stats.get(f"{folder}{request.content_hash}.json")
        shown = workspace.display(workspace.output_path(request))
        output = outputs_read.get(shown)
        if render is None or serial is None or record is None or output is None:
            continue
        vtt = _vtt_of(shown) if render.subtitles is not None else None
        noop = _noop_of(record, output, vtt, outputs_read, serial, racy_from)
        if noop is not None:
            noops[request.video_id] = noop
    return noops


def _vtt_of(output: str) -> str:
    """The external subtitles' path beside an output, as a render record names it."""
    return str(PurePosixPath(output).with_suffix(".vtt"))


def _facts_seen(state_read: StateRead, store: LocalStore, wanted: set[str]) -> Facts | None:
    """The facts as the full plan read them (see ``Facts``; ``wanted``: the manifest's
    ids); None when their stat is not known."""
    from .machine import CACHE_DIR, FACTS_FILE

    seen = state_read.stats.get(f"{state_read.state_dir}/{CACHE_DIR}/{FACTS_FILE}")
    if seen is None or max(seen[1], seen[3]) >= state_read.started_ns - RACY_NS:
        return None
    facts = store.facts
    return _STAT.pack(*seen), any(v not in wanted for v in facts.outputs), _gone(facts, wanted)


def _gone(facts: MachineFacts, wanted: set[str]) -> tuple[str, ...]:
    """The videos not in ``wanted`` that ``facts`` hold an output or a last render of."""
    return tuple(sorted((facts.outputs.keys() | facts.latest.keys()) - wanted))


def _cached(
    request: VideoRequest, inputs: dict[str, str], item: Item, nodes: int, output: str
) -> Cached:
    return Cached(
        request.video_id,
        request.content_hash,
        request.synthesis_id,
        output,
        tuple(request.rendered.warnings),
        inputs,
        nodes,
        alias_nodes(item.text, nodes),
        not reads_place(item.text),
    )


# -- the incremental plan -----------------------------------------------------------------
@dataclass
class Incremental:
    """A plan made from the cache plus the videos that changed."""

    plan: Plan
    warnings: list[str]
    pack_max_inputs: int | None
    rendered: int  # videos rendered by this plan
    prices: Prices  # the manifest's (its head holds any pricing override)


def plan_incremental(
    manifest: Path, target: TargetName, cache: RequestCache
) -> tuple[Incremental | None, Reading | None]:
    """The plan from the cache and the changed videos; None when the full plan decides.
    Also what was read of the manifest, for the full plan to refill the cache with."""
    reading = read_manifest(manifest, cache)
    if reading is None or reading.context != cache.context:
        return None, reading
    try:
        with collector_paused():  # tens of thousands of tuples, no cycles among them
            return _plan(reading, cache, target), reading
    except (_Fallback, UserError, UnsuitableFile, *_CORRUPT):
        return None, reading


@dataclass
class Requested:
    """What the cache knows of a manifest: its head (every setting, no videos), the
    target's folders and each video's entry."""

    manifest: LoadedManifest
    workspace: Workspace
    entries: list[Cached]
    cache: RequestCache

    @property
    def hashes(self) -> dict[str, str]:
        return {entry.video_id: entry.content_hash for entry in self.entries}

    def records(self) -> dict[str, RecordSummary] | None:
        """Per video, what its record says as the full path binds it, render records
        parsed only where their stat is new; None when the full state must be read (a
        remote, missing or per-video one)."""
        try:
            state = _Renders(self.manifest, self.workspace, self.cache)
            records = state.records(self.entries, self.workspace)
        except (_Fallback, UserError, *_CORRUPT):
            return None
        if self.cache.changed:
            self.cache.save()
        return records


def requested(manifest: Path, target: TargetName) -> Requested | None:
    """Each video's entry from the cache and the changed items; None when only the full
    path can tell."""
    cache = RequestCache.open(manifest, target)
    reading = read_manifest(manifest, cache)
    if reading is None or reading.context != cache.context:
        return None
    try:
        found, built, matched = _requests(reading, cache, target)
    except (_Fallback, UserError, UnsuitableFile, *_CORRUPT):
        return None
    if not _same_videos(cache.rows, found):
        cache.facts = None  # what the cache knows of the facts is for the videos of its rows
    _keep_rows(cache, reading, found, matched)
    cache.save()
    cache.let_go()  # status reads the records next: the peak of its memory is then
    return Requested(built.loaded, built.workspace, found, cache)


def _requests(
    reading: Reading, cache: RequestCache, target: TargetName
) -> tuple[list[Cached], _Builder, list[Row | None]]:
    """Every video's entry, from the cache or built; the builder holds those it built;
    and the row each entry taken from the cache came from, by the video's index."""
    items, rows, keys = reading.split.items, cache.rows, reading.keys
    by_key: dict[str, Row] | None = None  # made at the first item that moved
    with OpenFolder(str(reading.root)) as root:
        narrations = _Narrations(reading.root, cache.narrations, root)
        narrations.prime()
        held = _held_in_place(keys, rows, narrations)
        matched: list[Row | None] = [
            row if ok else None for row, ok in zip(rows[: len(held)], held, strict=True)
        ]
        matched.extend([None] * (len(keys) - len(matched)))
        found = {index: rows[index].entry for index in itertools.compress(range(len(held)), held)}
        for index in [i for i, row in enumerate(matched) if row is None]:
            key = keys[index]
            row = rows[index] if index < len(rows) else None
            if row is None or row.key != key:
                if by_key is None:
                    by_key = {row.key: row for row in rows if row.key}
                row = by_key.get(key)
            if (
                row is not None
                and narrations.unchanged(row.entry.inputs)
                and _in_place(row, index, reading, narrations)
            ):
                found[index] = row.entry
                matched[index] = row
    missing = [i for i in range(len(items)) if i not in found]
    if len(missing) > MAX_CHANGED_SHARE * len(items):
        raise _Fallback
    built = _Builder(reading, target)
    built.add(missing)
    for index in missing:
        found[index] = built.cached(index)
    entries = [found[i] for i in range(len(items))]
    # What the next plan may trust: the files of these videos, as this plan found them.
    cache.narrations = narrations.kept(set().union(*map(_INPUTS, entries)))
    cache.changed = cache.changed or cache.narrations != narrations.known
    if len({entry.video_id.casefold() for entry in entries}) != len(entries):
        raise _Fallback  # ids the same but for case: the full path names both places
    # The loader's budgets are the document's: the items' sum is held against them.
    if built.head_nodes + sum(entry.nodes for entry in entries) > yamlsafe.MAX_DOCUMENT_NODES:
        raise _Fallback
    if built.head_alias_nodes + sum(entry.alias_nodes for entry in entries) > yamlsafe.MAX_NODES:
        raise _Fallback
    return entries, built, matched


_CONTENT_HASH = operator.attrgetter("content_hash")
_INPUTS = operator.attrgetter("inputs")
_ROW_KEY = operator.attrgetter("key")
_ROW_POSITION = operator.attrgetter("position")
_ROW_INPUTS = operator.attrgetter("entry.inputs")
_ROW_WARNINGS = operator.attrgetter("entry.warnings")


def _held_in_place(keys: list[str], rows: list[Row], narrations: _Narrations) -> list[bool]:
    """Per row, whether its entry holds as ``_in_place`` and ``narrations.unchanged``
    would find it in the common case: its item the one at its index now, without
    warnings, its narration files as the last plan saw them (``prime``). Decided in C
    for every row: a Python call per row is a tenth of a plan at catalogue scale. A row
    not held here is looked at one by one."""
    count = min(len(keys), len(rows))
    head = rows[:count]
    digests = itertools.repeat(narrations.digests.items())
    return list(
        map(
            all,
            zip(
                map(operator.eq, keys[:count], map(_ROW_KEY, head)),
                map(operator.eq, map(_ROW_POSITION, head), range(count)),
                map(operator.not_, map(_ROW_WARNINGS, head)),
                map(operator.le, map(dict.items, map(_ROW_INPUTS, head)), digests),
                strict=True,
            ),
        )
    )


def _in_place(row: Row, index: int, reading: Reading, narrations: _Narrations) -> bool:
    """Whether the entry of ``row`` (the same item text) holds where the item is now: at
    its old place, unless its warnings name a line that moved; at another, when neither
    its warnings (they name its line and index) nor what its request was made of (the
    head, the templates, the item, its narration files) may read its place."""
    if row.position == index:
        return not row.entry.warnings or row.line == reading.layout[1].lines[index]
    if row.entry.warnings or not row.entry.movable or reading.place_read:
        return False
    return not any(narrations.reads_place(relative) for relative in row.entry.inputs)


def _keep_rows(
    cache: RequestCache,
    reading: Reading,
    entries: list[Cached],
    matched: list[Row | None],
    noops: list[Noop | None] | None = None,
) -> None:
    """The rows this command leaves: each video's entry and why it was a no-op (``noops``;
    without them, a row whose entry came from the cache keeps its own). A row that did
    not change stays the same object: the journal writes only those that did."""
    _keep_layout(cache, reading)
    rows, keys, left, same = cache.rows, reading.keys, [], len(cache.rows) == len(entries)
    lines = reading.layout[1].lines
    for index, entry in enumerate(entries):
        mine = matched[index]
        noop = noops[index] if noops is not None else (mine.noop if mine else None)
        if mine is not None and mine.noop is noop and mine.position == index:
            left.append(mine)
            same = same and rows[index] is mine
        else:
            # Its line as the layout has it (the items may be let go by now). A row kept
            # at its index keeps the line its entry was built at: only warnings name it.
            line = mine.line if mine is not None and mine.position == index else lines[index]
            left.append(Row(keys[index], entry, noop, index, line))
            same = False
    if not same:
        cache.rows, cache.changed = left, True


def _keep_layout(cache: RequestCache, reading: Reading) -> None:
    if cache.layout is None or cache.layout[0] != reading.digest:
        cache.layout, cache.changed = reading.layout, True


def _plan(reading: Reading, cache: RequestCache, target: TargetName) -> Incremental:
    from .planner import make_plan
    from .pricing import prices_for
    from .stores import fetch_source, video_stores

    found, built, matched = _requests(reading, cache, target)
    workspace = built.workspace
    state = _Renders(built.loaded, workspace, cache)
    outputs = workspace.output_checker()
    noops, kept = _noops(found, matched, state, workspace, outputs)
    slow = [i for i in range(len(found)) if i not in noops]
    if len(slow) > MAX_CHANGED_SHARE * len(found):
        raise _Fallback  # most videos have work to do: their requests are built in full
    built.add([i for i in slow if i not in built.requests])
    reading.drop_items()  # before the facts are read: the peak of memory is then
    requests = [built.requests[i] for i in slow]
    # Every entry from a row (the same videos, maybe moved: the same for the facts).
    all_cached = len(cache.rows) == len(found) and None not in matched
    facts_key = _packed_or_empty(state.facts_path)
    if (
        not slow
        and all_cached
        and cache.facts is not None
        and cache.facts[:2] == (facts_key, False)
    ):
        # Every video a no-op, the same videos, the facts as they were and keeping no
        # output of a video gone from the manifest: nothing to bind, nothing to forget.
        partial = Plan((), state.meta.lineage, {})
        state.stats[state.facts_name] = unpacked(facts_key)
    else:
        uses = [
            (r.video_id, r.content_hash, workspace.display(workspace.output_path(r)))
            for r in requests
        ]
        wanted = {entry.video_id for entry in found}
        bound = state.bind(uses, wanted, _facts_known(cache, found, facts_key))
        fetch_from = fetch_source(bound, video_stores(built.loaded, workspace))
        partial = make_plan(requests, bound, outputs, fetch_from=fetch_from)
        seen = state.stats.get(state.facts_name)
        facts_seen = None if seen is None else (_STAT.pack(*seen), state.gone_outputs, state.gone)
        if cache.facts != facts_seen:
            cache.facts, cache.changed = facts_seen, True
    by_id = {action.video_id: action for action in partial.actions}
    ordered = [noops.get(i) or by_id[entry.video_id] for i, entry in enumerate(found)]
    ordered.extend(a for a in partial.actions if a.kind is ActionKind.FORGET)
    # The serials the full plan holds: each video's render, then the outputs kept for
    # videos gone from the manifest, in the order the full binding gives them.
    serials = _serials(found, kept, state)
    for video_id, serial in partial.serials.items():
        serials.setdefault(video_id, serial)
    workspace.save_hashes()
    _keep_rows(cache, reading, found, matched, kept)
    cache.save()
    warnings = [warning for entry in found for warning in entry.warnings]
    plan = Plan(tuple(ordered), state.meta.lineage, serials)
    if not plan.has_changes:
        _remember_plan(reading, workspace, found, kept, state, outputs.read, plan, warnings)
    service = built.loaded.model.service
    pack = service.pack_max_inputs if service.pack else None
    return Incremental(plan, warnings, pack, len(built.requests), prices_for(built.loaded.model))


def _facts_known(
    cache: RequestCache, found: list[Cached], facts_key: bytes
) -> tuple[bytes, tuple[str, ...]] | None:
    """``facts_key`` and the videos not in the manifest the facts with that stat hold
    anything of, when the cache knows them: it saw the facts so for the videos of its
    rows, and these are the same videos. None when that is not known."""
    facts = cache.facts
    if facts is None or facts[0] != facts_key or not facts_key:
        return None
    return (facts_key, facts[2]) if _same_videos(cache.rows, found) else None


def _same_videos(rows: list[Row], entries: list[Cached]) -> bool:
    return len(rows) == len(entries) and all(
        row.entry.video_id == entry.video_id for row, entry in zip(rows, entries, strict=True)
    )


def _serials(found: list[Cached], kept: list[Noop | None], state: _Renders) -> dict[str, int]:
    """Each video's render's serial, as the full plan holds them."""
    serials: dict[str, int] = {}
    for entry, noop in zip(found, kept, strict=True):
        if noop is not None:
            serials[entry.video_id] = noop.serial
        elif (summary := state.summary(entry.content_hash)) is not None:
            serials[entry.video_id] = summary.fingerprint
    return serials


def _noops(
    found: list[Cached],
    rows: list[Row | None],
    state: _Renders,
    workspace: Workspace,
    outputs: OutputChecker,
) -> tuple[dict[int, Action], list[Noop | None]]:
    """The videos that are no-ops, by index, and why each is one (None for the others,
    and for a no-op that rests on a racy file). A video is one when its render delivered
    a video that is intact on disk; the files of the last plan's no-ops are taken by
    their stat, the others checked as the full path checks them."""
    with OpenFolder(str(workspace.output_dir)) as opened:
        return _noops_in(found, rows, state, workspace, outputs, opened)


def _noops_in(
    found: list[Cached],
    rows: list[Row | None],
    state: _Renders,
    workspace: Workspace,
    outputs: OutputChecker,
    opened: OpenFolder,
) -> tuple[dict[int, Action], list[Noop | None]]:
    present = _output_stats(workspace, opened, [entry.output_name for entry in found])
    keys: list[bytes | None]
    if None in present:
        keys = [None if st is None else packed(st) for st in present]
    else:
        keys = list(packed_all(cast("list[os.stat_result]", present)))
    noops = [
        None if row is None or row.entry is not entry else row.noop
        for row, entry in zip(rows, found, strict=False)  # rows: the last plan's, maybe fewer
    ]
    noops.extend([None] * (len(found) - len(noops)))
    records = list(map(state.current.get, map(_CONTENT_HASH, found)))
    # The common case for every video at once: a no-op whose record and output (and no
    # subtitles) are as they were. A comprehension, not a call per video: this is most
    # of a plan's time at catalogue scale.
    same = [
        noop is not None and noop.record == r and noop.output == k  # k: None without output
        for noop, r, k in zip(noops, records, keys, strict=True)
    ]
    held = [
        ok and noop is not None and noop.subtitles is None
        for ok, noop in zip(same, noops, strict=True)
    ]
    kept: list[Noop | None] = [noop if ok else None for noop, ok in zip(noops, held, strict=True)]
    folder = f"{workspace.output_dir}{os.sep}"
    for index in [i for i, ok in enumerate(held) if not ok]:
        entry, noop = found[index], noops[index]
        if noop is not None and same[index] and _subtitles_still(noop, entry, folder):
            kept[index], held[index] = noop, True
            continue
        checked = _checked(entry, present[index], state, workspace, outputs)
        if checked is not None:
            # False: a no-op resting on a racy file (nothing kept for the next plan)
            kept[index], held[index] = checked or None, True
    indices = list(itertools.compress(range(len(found)), held))
    # The actions made as the plan memo makes them (a frozen dataclass' constructor is
    # a third of this loop's time at catalogue scale).
    done = [found[i] for i in indices]
    actions = noop_actions(
        [e.video_id for e in done], [e.synthesis_id for e in done], [e.content_hash for e in done]
    )
    return dict(zip(indices, actions, strict=True)), kept


def _subtitles_still(noop: Noop, entry: Cached, folder: str) -> bool:
    try:
        return packed(os.lstat(folder + _vtt_of(entry.output_name))) == noop.subtitles
    except OSError:
        return False


def _checked(
    entry: Cached,
    st: os.stat_result | None,
    state: _Renders,
    workspace: Workspace,
    outputs: OutputChecker,
) -> Noop | Literal[False] | None:
    """A video checked as the full path checks it: None when it is not a no-op, else why
    it is one (False when a file that rests on is racy)."""
    summary = state.summary(entry.content_hash)
    if summary is None or summary.output is None or st is None:
        return None  # no render of this request, none delivered, or no file
    path = _joined(_output_prefix(workspace), entry.output_name)
    record = summary.record(entry.content_hash, path)
    if outputs.check(record.output, record.subtitles, st) != "ok":
        return None
    racy_from = state.started_ns - RACY_NS
    vtt = record.subtitles[0] if record.subtitles is not None else None
    noop = _noop_of(summary.stat, stat_key(st), vtt, outputs.read, summary.fingerprint, racy_from)
    return noop or False


def _noop_of(
    record: StatKey,
    output: StatKey,
    subtitles: str | None,
    read: dict[str, StatKey],
    serial: int,
    racy_from: int,
) -> Noop | None:
    """Why a video is a no-op, from the stats of the files that answer rests on (its
    ``.vtt`` by its path in ``read``, when the render has one); None when one of them is
    unknown or racy."""
    stats = [record, output]
    if subtitles is not None:
        vtt = read.get(subtitles)
        if vtt is None:
            return None
        stats.append(vtt)
    if any(max(key[1], key[3]) >= racy_from for key in stats):
        return None
    packed_vtt = _STAT.pack(*stats[2]) if subtitles is not None else None
    return Noop(_STAT.pack(*record), _STAT.pack(*output), packed_vtt, serial)


def _packed_or_empty(path: str) -> bytes:
    """The packed stat of ``path``; empty when there is no file there."""
    try:
        return packed(os.lstat(path))
    except (FileNotFoundError, NotADirectoryError):
        return b""


def _remember_plan(
    reading: Reading,
    workspace: Workspace,
    entries: list[Cached],
    kept: list[Noop | None],
    state: _Renders,
    outputs: dict[str, StatKey],
    plan: Plan,
    warnings: list[str],
) -> None:
    """Leave the plan memo a full plan would leave, made of what this plan read: the
    next unchanged plan then reads no cache at all."""
    from .planmemo import InputsRead, Observed, StateRead, remember
    from .workspace import as_configured

    folder = workspace.state_setting
    inputs = {path: digest for entry in entries for path, digest in entry.inputs.items()}
    templates_dir = as_configured(workspace.root, reading.templates_dir)
    read = InputsRead(templates_dir, reading.templates, inputs)
    stats = {f"{folder}/{name}": key for name, key in state.stats.items()}
    records = f"{folder}/{RECORDS_DIR}"
    stats.update((f"{records}/{digest}.json", unpacked(k)) for digest, k in state.current.items())
    names = None if state.names is None else sorted(state.names)
    listings = {} if names is None else {f"{folder}/{RECORDS_DIR}": names}
    # The outputs the no-ops taken by their stat rest on (the others' the checker read).
    outputs = dict(outputs)
    prefix = _output_prefix(workspace)
    for entry, noop in zip(entries, kept, strict=True):
        path = _joined(prefix, entry.output_name)
        if noop is not None and path not in outputs:
            outputs[path] = unpacked(noop.output)
            if noop.subtitles is not None:
                outputs[_vtt_of(path)] = unpacked(noop.subtitles)
    state_read = StateRead(state.started_ns, folder, stats, listings)
    observed = Observed(reading.digest, read, state_read, outputs)
    remember(reading.path, workspace.target, plan, observed, warnings)


class _Narrations:
    """The digest of each narration file, trusted by the file's stat as the output stat
    cache trusts outputs (size, mtime_ns, inode, ctime_ns: any write sets the ctime to
    now); a file with a new stat is read and hashed, one changed within ``RACY_NS`` of
    this plan is read again by the next one. Read where the renderer reads it: a file
    reached through a symlink, or in a folder outside the manifest's, is left to the
    renderer (its video is built again)."""

    def __init__(
        self, root: Path, known: dict[str, tuple[bytes, str, bool]], opened: OpenFolder
    ) -> None:
        self.opened = opened  # the manifest's folder, where each relative path is looked up
        self.base = str(root)
        self.inside = os.path.join(self.base, "")
        self.known = known  # relative path -> (packed stat, sha256, reads_place)
        self.seen: dict[str, tuple[bytes, str, bool]] = {}  # what the next plan may trust
        self.digests: dict[str, str | None] = {}
        self.places: dict[str, bool] = {}  # whether a file hashed may read a video's place
        self.folders: dict[str, bool] = {}
        self.racy_from = time.time_ns() - RACY_NS

    def kept(self, used: set[str]) -> dict[str, tuple[bytes, str, bool]]:
        """What was seen of the files in ``used`` (``prime`` sees files no video may
        read any more)."""
        if used >= self.seen.keys():
            return self.seen
        return {relative: seen for relative, seen in self.seen.items() if relative in used}

    def prime(self) -> None:
        """Every file the last plan hashed, taken by its stat in one pass and compared
        in C (at catalogue scale a call per file costs what its stat does). A file whose
        stat moved, or that this pass cannot vouch for, is left to ``digest``."""
        relatives = list(self.known)
        try:
            sts = self.opened.stats(relatives)
        except OSError:
            return  # one is gone: each is looked at as it is asked for
        known = list(self.known.values())
        if not all(self._inside(part) for part in _folder_parts(relatives)):
            return
        # The few files not vouched for: stat moved, not a regular file, or racy.
        left = set(
            itertools.compress(relatives, map(operator.ne, packed_all(sts), map(_FIRST, known)))
        )
        if not all(map(stat.S_ISREG, map(_MODE, sts))):
            left.update(
                r for r, st in zip(relatives, sts, strict=True) if not stat.S_ISREG(st.st_mode)
            )
        racy: set[str] = set()
        if _newest(sts) >= self.racy_from:
            racy = {
                r
                for r, st in zip(relatives, sts, strict=True)
                if max(st.st_mtime_ns, st.st_ctime_ns) >= self.racy_from
            }
        self.digests = dict(zip(relatives, map(_SECOND, known), strict=True))
        self.places = dict(zip(relatives, map(_THIRD, known), strict=True))
        self.seen = dict(self.known)
        for relative in left:
            del self.digests[relative], self.places[relative], self.seen[relative]
        for relative in racy - left:
            del self.seen[relative]

    def unchanged(self, inputs: dict[str, str]) -> bool:
        # Primed, most rows are a subset of the digests: one look-up in C each.
        if inputs.items() <= self.digests.items():
            return True
        return all(self.digest(relative) == digest for relative, digest in inputs.items())

    def reads_place(self, relative: str) -> bool:
        """Whether the narration file at ``relative`` (hashed by ``digest`` first) may
        read its video's place (``reads_place``); unknown: it may."""
        return self.places.get(relative, True)

    def digest(self, relative: str) -> str | None:
        if relative not in self.digests:
            self.digests[relative] = self._digest(relative)
        return self.digests[relative]

    def _inside(self, part: str) -> bool:
        """Whether the folder ``part`` (a relative path up to its last separator) is the
        manifest's or inside it, as it is now (through any link); kept by the part."""
        # The folder by the relative path's own: a dictionary look-up per file, where
        # ``dirname`` of the joined path was a tenth of this loop at catalogue scale.
        inside = self.folders.get(part)
        if inside is None:
            real = os.path.realpath(os.path.join(self.base, part))
            inside = self.folders[part] = real == self.base or real.startswith(self.inside)
        return inside

    def _digest(self, relative: str) -> str | None:
        path = f"{self.base}{os.sep}{relative}"
        inside = self._inside(_folder_part(relative))
        try:
            st = self.opened.stat(relative)
        except OSError:
            return None
        if not inside or not stat.S_ISREG(st.st_mode):
            return None
        key = packed(st)
        known = self.known.get(relative)
        if known is not None and known[0] == key:
            digest = known[1]
        else:
            try:
                data = read_regular_file(path, yamlsafe.MAX_BYTES)
            except (OSError, UnsuitableFile):
                return None
            digest = sha256_bytes(data)
            known = (key, digest, _bytes_read_place(data))
        self.places[relative] = known[2]
        if max(st.st_mtime_ns, st.st_ctime_ns) < self.racy_from:
            self.seen[relative] = known  # the same tuple when nothing changed
        return digest


def _folder_part(relative: str) -> str:
    """``relative`` up to its last separator (empty for a file of the manifest's folder)."""
    return relative[: max(relative.rfind("/"), relative.rfind(os.sep)) + 1]


def _folder_parts(relatives: list[str]) -> set[str]:
    """``_folder_part`` of each of ``relatives``, without a call per path."""
    if os.sep != "/":
        return set(map(_folder_part, relatives))
    return {relative[: relative.rfind("/") + 1] for relative in relatives}


_FIRST, _SECOND, _THIRD = (operator.itemgetter(i) for i in range(3))


def _output_stats(
    workspace: Workspace, opened: OpenFolder, names: list[str]
) -> list[os.stat_result | None]:
    """The ``lstat`` of each output by its name, None where there is none, in one pass;
    what ``check_output_paths`` refuses is left to the full path to word."""
    try:
        is_folder = stat.S_ISDIR(os.stat(workspace.output_dir).st_mode)
    except FileNotFoundError:
        return [None] * len(names)
    if not is_folder:
        raise _Fallback
    found = opened.stats_or_none(names)
    if not all(map(stat.S_ISREG, map(_MODE, filter(None, found)))):
        raise _Fallback
    return found


def _output_prefix(workspace: Workspace) -> str:
    """The output folder as the state names outputs (relative to the manifest)."""
    return workspace.display(workspace.output_dir)


def _joined(prefix: str, name: str) -> str:
    """``workspace.display(output_dir / name)`` without a Path per video."""
    return name if prefix == "." else f"{prefix}{os.sep}{name}"


class _Renders:
    """The local state kept by render: every record file's stat taken, a record parsed
    only when its stat is new (a broken record anywhere is the full path's to word), the
    per-machine facts read once a plan asks for them."""

    def __init__(self, manifest: LoadedManifest, workspace: Workspace, cache: RequestCache) -> None:
        from .backends.local import META_FILE, RENDERS_FORMAT
        from .machine import CACHE_DIR, FACTS_FILE
        from .state import parse_json, parse_meta
        from .stores import local_store, remote_store

        if remote_store(manifest, workspace) is not None:
            raise _Fallback  # a remote state has no stat to trust
        self.store = local_store(workspace)
        self.cache = cache
        directory = self.store.directory
        self.started_ns = time.time_ns()  # before the first stat, for the plan memo
        meta_path = directory / META_FILE
        if not meta_path.is_file():
            raise _Fallback  # a new course, or records without meta (an error)
        shown = f"{self.store.display}/{META_FILE}"
        # What was read besides the records (their stats are ``current``), by path.
        self.stats: dict[str, StatKey] = {}
        with open(meta_path, encoding="utf-8") as handle:
            self.stats[META_FILE] = stat_key(os.fstat(handle.fileno()))
            data = parse_json(handle.read(), shown)
        if not isinstance(data, dict) or data.get("format") != RENDERS_FORMAT:
            raise _Fallback  # the per-video format: the full path reads (and migrates) it
        meta = parse_meta({**data, "format": 1}, shown)  # as the store reads it
        self.meta = meta.model_copy(update={"format": RENDERS_FORMAT})
        self.folder = os.path.join(directory, RECORDS_DIR)
        self.names: list[str] | None = None  # the record files listed (None: no folder)
        self.current: dict[str, bytes] = {}  # every record file's packed stat, by hash
        self.summaries: dict[str, RenderSummary] = {}  # by request hash, as asked for
        self.parsed: dict[str, RenderRecord] = {}
        self._facts: MachineFacts | None = None
        self.facts_name = f"{CACHE_DIR}/{FACTS_FILE}"
        self.facts_path = str(directory / CACHE_DIR / FACTS_FILE)
        self.gone_outputs = False  # the facts bound keep an output of a video not wanted
        self.gone: tuple[str, ...] = ()  # the videos not wanted the facts bound hold
        self._check_all()

    def _check_all(self) -> None:
        known = self.cache.records
        trusted: dict[str, bytes] = {}
        if os.path.isdir(self.folder):
            self.names = [n for n in os.listdir(self.folder) if n.endswith(".json")]
        racy_from = self.started_ns - RACY_NS
        with OpenFolder(self.folder) as folder:
            self._check_listed(folder, known, trusted, racy_from)
        if trusted != known:
            self.cache.records, self.cache.changed = trusted, True

    def _check_listed(
        self, folder: OpenFolder, known: dict[str, bytes], trusted: dict[str, bytes], racy_from: int
    ) -> None:
        names = self.names or []
        sts = folder.stats(names)  # every record: in C, then compared as a whole
        if not all(map(stat.S_ISREG, map(_MODE, sts))):
            raise _Fallback
        digests = [name[:-5] for name in names]
        now = packed_all(sts)
        current = self.current
        current.update(zip(digests, now, strict=True))
        if current != known:  # the records whose stat is new, found in C
            moved = map(operator.ne, now, map(known.get, digests))
            for index in itertools.compress(range(len(now)), moved):
                self.summaries[digests[index]] = self._parse(names[index], stat_key(sts[index]))
        if _newest(sts) < racy_from:
            trusted.update(current)
        else:
            trusted.update(
                (digest, current[digest])
                for digest, st in zip(digests, sts, strict=True)
                if max(st.st_mtime_ns, st.st_ctime_ns) < racy_from
            )

    def summary(self, request_hash: str) -> RenderSummary | None:
        """What the record of ``request_hash`` says; None when there is none."""
        found = self.summaries.get(request_hash)
        if found is None and request_hash in self.current:
            key = unpacked(self.current[request_hash])
            found = self.summaries[request_hash] = self._parse(f"{request_hash}.json", key)
        return found

    def all_summaries(self) -> dict[str, RenderSummary]:
        """Every record's summary, those the cache kept taken by their stat."""
        kept, trusted = self.cache.renders, {}
        for digest, key in self.current.items():
            summary = self.summaries.get(digest)
            if summary is None:
                summary = kept.get(digest)
                if summary is None or _STAT.pack(*summary.stat) != key:
                    summary = self.summary(digest)
                assert summary is not None
                self.summaries[digest] = summary
            if digest in self.cache.records:  # not racy
                trusted[digest] = summary
        self.cache.renders = trusted
        return self.summaries

    def _parse(self, name: str, key: StatKey) -> RenderSummary:
        """One record file read and checked as the store reads it, if it still has the
        stat ``key``."""
        from .renders import RenderRecord, fingerprint
        from .state import _validate, parse_json

        shown = f"{self.store.display}/{RECORDS_DIR}/{name}"
        with open(os.path.join(self.folder, name), encoding="utf-8") as handle:
            if stat_key(os.fstat(handle.fileno())) != key:
                raise _Fallback  # replaced meanwhile
            text = handle.read()
        render = _validate(RenderRecord, parse_json(text, shown), shown)
        if render.request_hash != name.removesuffix(".json"):
            raise _Fallback  # the full path words it
        self.parsed[render.request_hash] = render
        return RenderSummary.of(key, render, fingerprint(text.encode()))

    def render(self, request_hash: str) -> RenderRecord:
        """The record of ``request_hash``, parsed now if it was trusted by its stat."""
        render = self.parsed.get(request_hash)
        if render is None:
            summary = self.summary(request_hash)
            assert summary is not None
            if self._parse(f"{request_hash}.json", summary.stat) != summary:
                raise _Fallback  # its content changed, its stat did not (a racy write)
            render = self.parsed[request_hash]
        return render

    def facts(
        self, keep: Callable[[str], bool], only: tuple[set[str], bytes] | None = None
    ) -> MachineFacts:
        """This checkout's per-machine facts of the videos ``keep`` accepts (read once;
        a torn file reads as empty). ``only``: the videos among them that the file can
        hold, when its packed stat is the one given (see ``MachineFacts.load``)."""
        if self._facts is None:
            from .machine import CACHE_DIR, FACTS_FILE, MachineFacts

            path = self.store.directory / CACHE_DIR / FACTS_FILE
            before = _stat_or_none(path)
            if only is not None and (before is None or _STAT.pack(*before) != only[1]):
                only = None
            videos = only[0] if only is not None else None
            self._facts = MachineFacts.load(self.store.directory, keep, videos)
            after = _stat_or_none(path)
            if before != after:
                raise _Fallback  # written while read
            if after is not None:
                self.stats[f"{CACHE_DIR}/{FACTS_FILE}"] = after
        return self._facts

    def bind(
        self,
        uses: list[tuple[str, str, str]],
        wanted: set[str],
        known: tuple[bytes, tuple[str, ...]] | None = None,
    ) -> State:
        """The records of the videos of ``uses`` (id, request hash, output path) and of the
        outputs this checkout kept for videos not in ``wanted`` (the manifest's), bound by
        the store's own code as the full plan binds them. The store is given only the
        renders and the facts of those videos: the binding of one video reads nothing of
        another in the manifest. ``known``: the packed stat of facts and the videos not in
        ``wanted`` they are known to hold anything of (only those and the videos of
        ``uses`` are then looked for)."""
        from .backends.local import LocalStore
        from .state import State

        mine = {video_id for video_id, _, _ in uses}
        store = LocalStore(self.store.directory, self.store.display)
        only = (mine.union(known[1]), known[0]) if known is not None else None
        store.facts = self.facts(lambda video_id: video_id in mine or video_id not in wanted, only)
        self.gone_outputs = any(video_id not in wanted for video_id in store.facts.outputs)
        self.gone = _gone(store.facts, wanted)
        needed = {request_hash for _, request_hash, _ in uses}
        needed.update(item.request_hash for item in store.facts.outputs.values())
        needed.update(last.request_hash for last in store.facts.latest.values())
        for request_hash in sorted(needed & self.current.keys()):
            store.renders[request_hash] = self.render(request_hash)
            store.fingerprints[request_hash] = self.summaries[request_hash].fingerprint
        state = State(store, self.meta)
        store.bind(state, uses)
        return state

    def records(self, entries: list[Cached], workspace: Workspace) -> dict[str, RecordSummary]:
        """What status shows per video, as the full path binds them: the render of each
        video's request, the outputs kept for videos gone from the manifest, and for a
        video whose request has no render yet, the render it had before."""
        prefix = _output_prefix(workspace)
        self.all_summaries()
        records: dict[str, RecordSummary] = {}
        unbound: list[str] = []
        for entry in entries:
            summary = self.summaries.get(entry.content_hash)
            if summary is None:
                unbound.append(entry.video_id)
            else:
                path = _joined(prefix, entry.output_name)
                records[entry.video_id] = summary.record(entry.content_hash, path)
        wanted = {entry.video_id for entry in entries}
        later = set(unbound)
        facts = self.facts(lambda video_id: video_id in later or video_id not in wanted)
        for video_id, item in facts.outputs.items():
            summary = self.summaries.get(item.request_hash)
            if video_id not in wanted and summary is not None:
                records[video_id] = summary.record(item.request_hash, item.path)
        for video_id in unbound:
            last = facts.latest.get(video_id)
            summary = self.summaries.get(last.request_hash) if last is not None else None
            if last is not None and summary is not None:
                records[video_id] = summary.record(last.request_hash, None)
        return records


def _stat_or_none(path: Path) -> StatKey | None:
    try:
        return stat_key(os.stat(path))
    except FileNotFoundError:
        return None


class _Builder:
    """Parses, validates, renders and hashes chosen items alone, with their real lines."""

    def __init__(self, reading: Reading, target: TargetName) -> None:
        from pydantic import ValidationError

        from .manifest import LoadedManifest, Manifest
        from .render import Renderer
        from .workspace import Workspace
        from .yamlsafe import LoadedYaml, load_yaml

        self.reading = reading
        head = load_yaml(self.reading.split.head_document, reading.display)
        if not isinstance(head.data, dict) or head.data.get("videos", 0) is not None:
            raise _Fallback
        self.head_nodes = count_nodes(head.data)
        self.head_alias_nodes = alias_nodes(self.reading.split.head, self.head_nodes)
        try:  # the head alone, with a stand-in video: videos are checked one by one
            model = Manifest.model_validate({**head.data, "videos": [{"id": "x"}]})
        except ValidationError:
            raise _Fallback from None
        if model.variants:  # an item is then several videos: the full plan's work
            raise _Fallback
        self.lines = head.lines
        self.loaded = LoadedManifest(
            reading.path.resolve(),
            model.model_copy(update={"videos": []}),
            LoadedYaml(None, self.lines),
            reading.display,
            reading.digest,
        )
        self.workspace = Workspace.of(self.loaded, target)
        self.renderer = Renderer(self.loaded)
        self.resolve = self.loaded.resolver()
        self.requests: dict[int, VideoRequest] = {}
        self.nodes: dict[int, int] = {}

    def add(self, indices: list[int]) -> None:
        from pydantic import ValidationError

        from .build import build_one
        from .manifest import VideoEntry
        from .packing import check_packable
        from .yamlsafe import load_yaml

        for index in indices:
            item = self.reading.split.items[index]
            loaded = load_yaml(item.document(), self.reading.display)
            if not isinstance(loaded.data, list) or len(loaded.data) != 1:
                raise _Fallback
            for path, line in loaded.lines.items():
                if path and path[0] == 0:
                    self.lines[("videos", index, *path[1:])] = line
            try:
                entry: VideoEntry = VideoEntry.model_validate(loaded.data[0])
            except ValidationError:
                raise _Fallback from None
            if entry.text_file is not None and "{" in entry.text_file:
                raise _Fallback  # a templated narration path: its file is known once rendered
            self.nodes[index] = count_nodes(loaded.data[0])
            request = build_one(self.loaded, self.renderer.render(self.resolve(index, entry)))
            if self.loaded.model.service.pack:
                check_packable(request)
            self.requests[index] = request

    def cached(self, index: int) -> Cached:
        request = self.requests[index]
        text_file = request.rendered.video.fields.text_file
        digests = self.renderer.input_digests
        inputs = {text_file: digests[text_file]} if text_file is not None else {}
        item, output = self.reading.split.items[index], self.workspace.output_name(request)
        return _cached(request, inputs, item, self.nodes[index], output)

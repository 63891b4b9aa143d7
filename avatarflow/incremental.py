"""The incremental plan: after one edit, only the edited video is rendered again.

A video's request is a function of exactly these inputs: the code, the manifest's head
(everything but the ``videos`` items: ``defaults``, ``service``...), the templates
folder, the text of the video's own item and its position in the list (templates see
``video.index``), and the narration file it reads. A full plan keeps, per video, what
the plan needs of its request (content hash, synthesis id, output name, warnings) under
the fingerprint of those inputs, in the user's cache folder beside the plan memo. The
next plan cuts the manifest into its items as text (:mod:`avatarflow.manifestsplit`),
and only the items whose fingerprint is new are parsed, validated, rendered and hashed.

State records and outputs are files avatarflow writes itself; like the output stat cache
they are trusted by their stat (size, mtime_ns, inode, ctime_ns), and a record changed
within ``RACY_NS`` of being read is read again next time. A video whose request and
record say "up to date" (its output intact by the stat cache) is a no-op without
rendering; every other video gets its full request and record, and the planner decides.

Correctness first: whatever this layer is not sure of is left to the full plan, which
then refills the cache: a layout the split does not cover, an item that does not parse
on its own, any error (so that every error is found and worded by the full path, with
its file and line), a state kept remotely, a missing state, ``--verify``. So is an edit
that changes most videos (``defaults``, a template), where a full plan is cheaper than
parsing items one by one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from . import planmemo, yamlsafe
from .backends.local import RECORDS_DIR
from .errors import UserError
from .manifestsplit import Item, Split, split_videos
from .planmemo import sha256_bytes, snapshot_folder
from .planner import Action, ActionKind, Plan
from .statcache import RACY_NS, StatKey, stat_key, write_json
from .usercache import cache_folder
from .userfiles import UnsuitableFile, read_regular_file

if TYPE_CHECKING:
    from .build import Built
    from .manifest import LoadedManifest, VideoEntry
    from .payload import VideoRequest
    from .planmemo import StateRead
    from .pricing import Prices
    from .state import State, StateRecord
    from .workspace import FileRef, OutputChecker, TargetName, Workspace

VERSION = 1
# Past this share of videos to parse one by one, one full parse is cheaper.
MAX_CHANGED_SHARE = 0.2
_IN_FLIGHT_OR_FAILED = frozenset({"submitting", "submitted", "running", "succeeded", "failed"})


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
    warnings: list[str]
    inputs: dict[str, str]  # narration files read, as the manifest names them → sha256
    nodes: int  # YAML value nodes of the item, for the document's node budget
    alias_nodes: int  # the same when the item may use aliases (their budget), else 0


class RecordSummary(NamedTuple):
    """What plan and status need of a state record, with the record file's stat."""

    size: int
    mtime_ns: int
    ino: int
    ctime_ns: int
    serial: int
    status: str
    input_hash: str
    output: FileRef | None
    subtitles: FileRef | None
    job: str  # the remote job's id, or the synthesis id until there is one
    error: str | None  # "code: message" of a failed render

    @property
    def stat(self) -> StatKey:
        return (self.size, self.mtime_ns, self.ino, self.ctime_ns)

    @classmethod
    def of(cls, key: StatKey, record: StateRecord) -> RecordSummary:
        from .workspace import file_ref

        error = record.error
        return cls(
            *key,
            record.serial,
            record.status,
            record.input_hash,
            file_ref(record.output),
            file_ref(record.subtitles),
            record.remote_id or record.synthesis_id,
            f"{error.code}: {error.message}" if error else None,
        )


@dataclass
class RequestCache:
    """The cache file of one manifest and target: requests by item, records by file."""

    path: Path
    context: str = ""
    entries: dict[str, Cached] = field(default_factory=dict)
    records: dict[str, RecordSummary] = field(default_factory=dict)

    @classmethod
    def open(cls, manifest: Path, target: str) -> RequestCache:
        key = f"{VERSION}\0{os.path.realpath(manifest)}\0{target}"
        path = cache_folder() / "videos" / f"{sha256_bytes(key.encode())[:32]}.json"
        cache = cls(path)
        try:
            data = json.loads(path.read_bytes())
            if data["version"] != VERSION:
                return cache
            cache.context = str(data["context"])
            cache.entries = {k: Cached._make(v) for k, v in data["entries"].items()}
            cache.records = {k: _summary(v) for k, v in data["records"].items()}
        except _CORRUPT:
            return cls(path)  # disposable: anything unreadable is an empty cache
        return cache

    def save(self) -> None:
        write_json(
            self.path,
            {
                "version": VERSION,
                "context": self.context,
                "entries": self.entries,
                "records": self.records,
            },
        )


def _summary(data: list[Any]) -> RecordSummary:
    """A summary as read back from JSON, where the file references are arrays."""
    output, subtitles = data[7], data[8]
    data[7] = None if output is None else tuple(output)
    data[8] = None if subtitles is None else tuple(subtitles)
    return RecordSummary._make(data)


def item_key(index: int, item: Item) -> str:
    return hashlib.sha256(f"{index}\0{item.text}".encode()).hexdigest()[:32]


def context_digest(split: Split, templates: dict[str, str]) -> str:
    """What every video's request depends on: the code, the head, the templates."""
    digest = hashlib.sha256(planmemo.code_fingerprint().encode())
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
        return [item_key(i, item) for i, item in enumerate(self.split.items)]


def read_manifest(path: Path) -> Reading | None:
    """The manifest as this layer sees it; None when only the full path can read it."""
    try:
        raw = read_regular_file(path, yamlsafe.MAX_BYTES)
        text = raw.decode("utf-8")
    except (OSError, UnsuitableFile, UnicodeDecodeError):
        return None
    digest = sha256_bytes(raw)
    del raw  # megabytes at catalogue scale: the text is kept, the bytes need not be
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
    return Reading(path, digest, split, folder, templates, context)


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
) -> None:
    """Keep what a full plan built of each video under its item's fingerprint, and what
    it read of each state record under the record file's stat."""
    if reading is None or manifest.sha256 != reading.digest:
        return  # no split, or the file changed between the two reads
    requests = built.requests
    again = snapshot_folder(reading.root / reading.templates_dir)
    if len(reading.split.items) != len(requests) or again != reading.templates:
        return  # a template changed while the videos were rendered
    sizes = manifest.yaml.lines.item_sizes("videos")  # one line per value node
    inputs = built.read.inputs
    cache.context = reading.context
    cache.entries = {}
    items = reading.split.items
    for index, (key, request) in enumerate(zip(reading.keys, requests, strict=True)):
        text_file = request.rendered.video.fields.text_file
        if text_file is not None and text_file not in inputs:
            continue
        used = {text_file: inputs[text_file]} if text_file is not None else {}
        output = workspace.output_name(request)
        cache.entries[key] = _cached(request, used, items[index], sizes.get(index, 0), output)
    cache.records = {}
    if state_read is not None:  # a local state, with the stat of each file as it was read
        racy_from = state_read.started_ns - RACY_NS
        folder = f"{state_read.state_dir}/{RECORDS_DIR}/"
        for video_id, record in state.records.items():
            seen = state_read.stats.get(f"{folder}{video_id}.json")
            if seen is not None and max(seen[1], seen[3]) < racy_from:
                cache.records[f"{video_id}.json"] = RecordSummary.of(seen, record)
    cache.save()


def _cached(
    request: VideoRequest, inputs: dict[str, str], item: Item, nodes: int, output: str
) -> Cached:
    return Cached(
        request.video_id,
        request.content_hash,
        request.synthesis_id,
        output,
        list(request.rendered.warnings),
        inputs,
        nodes,
        alias_nodes(item.text, nodes),
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
    reading = read_manifest(manifest)
    if reading is None or reading.context != cache.context:
        return None, reading
    try:
        return _plan(reading, cache, target), reading
    except (_Fallback, UserError, UnsuitableFile, *_CORRUPT):
        return None, reading


@dataclass
class Requested:
    """What the cache knows of a manifest: its head (every setting, no videos), the
    target's folders and each video's content hash."""

    manifest: LoadedManifest
    workspace: Workspace
    hashes: dict[str, str]
    cache: RequestCache

    def records(self) -> dict[str, RecordSummary] | None:
        """Each local state record's summary, parsed only where its stat is new; None
        when the full state must be read (a remote or missing one)."""
        try:
            state = _StateReader(self.manifest, self.workspace, self.cache)
        except (_Fallback, UserError, *_CORRUPT):
            return None
        if state.changed:
            self.cache.save()
        return state.summaries


def requested(manifest: Path, target: TargetName) -> Requested | None:
    """Each video's content hash from the cache and the changed items; None when only
    the full path can tell."""
    cache = RequestCache.open(manifest, target)
    reading = read_manifest(manifest)
    if reading is None or reading.context != cache.context:
        return None
    try:
        found, built = _requests(reading, cache, target)
    except (_Fallback, UserError, UnsuitableFile, *_CORRUPT):
        return None
    if built.requests:
        cache.entries = dict(zip(reading.keys, found, strict=True))
        cache.save()
    hashes = {entry.video_id: entry.content_hash for entry in found}
    return Requested(built.loaded, built.workspace, hashes, cache)


def _requests(
    reading: Reading, cache: RequestCache, target: TargetName
) -> tuple[list[Cached], _Builder]:
    """Every video's entry, from the cache or built; the builder holds those it built."""
    items = reading.split.items
    found: dict[int, Cached] = {}
    folders: dict[str, bool] = {}
    for index, key in enumerate(reading.keys):
        entry = cache.entries.get(key)
        if entry is not None and _inputs_unchanged(reading.root, entry.inputs, folders):
            found[index] = entry
    missing = [i for i in range(len(items)) if i not in found]
    if len(missing) > MAX_CHANGED_SHARE * len(items):
        raise _Fallback
    built = _Builder(reading, target)
    built.add(missing)
    for index in missing:
        found[index] = built.cached(index)
    entries = [found[i] for i in range(len(items))]
    if len({entry.video_id.casefold() for entry in entries}) != len(entries):
        raise _Fallback  # ids the same but for case: the full path names both places
    # The loader's budgets are the document's: the items' sum is held against them.
    if built.head_nodes + sum(entry.nodes for entry in entries) > yamlsafe.MAX_DOCUMENT_NODES:
        raise _Fallback
    if built.head_alias_nodes + sum(entry.alias_nodes for entry in entries) > yamlsafe.MAX_NODES:
        raise _Fallback
    return entries, built


def _plan(reading: Reading, cache: RequestCache, target: TargetName) -> Incremental:
    found, built = _requests(reading, cache, target)
    workspace = built.workspace
    present = _check_outputs(workspace, [entry.output_name for entry in found])
    state = _StateReader(built.loaded, workspace, cache)
    outputs = workspace.output_checker()
    noops: dict[int, Action] = {}
    for index, entry in enumerate(found):
        summary = state.summaries.get(entry.video_id)
        if summary is not None and _noop(workspace, summary, entry, present, outputs):
            noops[index] = Action(
                ActionKind.NOOP,
                entry.video_id,
                synthesis_id=entry.synthesis_id,
                input_hash=entry.content_hash,
            )
    slow = [i for i in range(len(found)) if i not in noops]
    if len(slow) > MAX_CHANGED_SHARE * len(found):
        raise _Fallback  # most videos have work to do: their requests are built in full
    built.add([i for i in slow if i not in built.requests])
    wanted = {entry.video_id for entry in found}
    involved = {found[i].video_id for i in slow} | (state.summaries.keys() - wanted)
    from .planner import make_plan

    partial = make_plan(
        [built.requests[i] for i in slow],
        state.state(involved & state.summaries.keys()),
        outputs,
    )
    by_id = {action.video_id: action for action in partial.actions}
    ordered = [noops.get(i) or by_id[entry.video_id] for i, entry in enumerate(found)]
    ordered.extend(a for a in partial.actions if a.kind is ActionKind.FORGET)
    workspace.hashes.save()
    if built.requests or state.changed:
        cache.entries = dict(zip(reading.keys, found, strict=True))
        cache.save()
    warnings = [warning for entry in found for warning in entry.warnings]
    plan = Plan(tuple(ordered), state.lineage, state.serials())
    if not plan.has_changes:
        _remember_plan(reading, workspace, found, state, outputs.read, plan, warnings)
    service = built.loaded.model.service
    pack = service.pack_max_inputs if service.pack else None
    from .pricing import prices_for

    return Incremental(plan, warnings, pack, len(built.requests), prices_for(built.loaded.model))


def _remember_plan(
    reading: Reading,
    workspace: Workspace,
    entries: Iterable[Cached],
    state: _StateReader,
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
    listings = {f"{folder}/{state.records_dir}": state.names}
    state_read = StateRead(state.started_ns, folder, stats, listings)
    observed = Observed(reading.digest, read, state_read, outputs)
    remember(reading.path, workspace.target, plan, observed, warnings)


def _inputs_unchanged(root: Path, inputs: dict[str, str], folders: dict[str, bool]) -> bool:
    """Each narration file still has the content it had, read where the renderer reads
    it: not through a symlink, in a folder inside the manifest's (else: render again)."""
    base = str(root)
    for relative, digest in inputs.items():
        path = os.path.join(base, relative)
        folder = os.path.dirname(path)
        inside = folders.get(folder)
        if inside is None:
            real = os.path.realpath(folder)
            inside = folders[folder] = real == base or real.startswith(os.path.join(base, ""))
        if not inside or os.path.islink(path):
            return False
        try:
            if sha256_bytes(read_regular_file(path, yamlsafe.MAX_BYTES)) != digest:
                return False
        except (OSError, UnsuitableFile):
            return False
    return True


def _check_outputs(workspace: Workspace, names: list[str]) -> dict[str, os.stat_result]:
    """The stat of each output there is, by path; what ``check_output_paths`` refuses is
    left to the full path to word."""
    folder = str(workspace.output_dir)
    try:
        st = os.stat(folder)
    except FileNotFoundError:
        return {}
    if not stat.S_ISDIR(st.st_mode):
        raise _Fallback
    found: dict[str, os.stat_result] = {}
    for name in names:
        path = os.path.join(folder, name)
        try:
            found[path] = os.lstat(path)  # one stat per output: the no-op check reuses it
        except (FileNotFoundError, NotADirectoryError):
            continue
        if not stat.S_ISREG(found[path].st_mode):
            raise _Fallback
    return found


def _noop(
    workspace: Workspace,
    summary: RecordSummary,
    entry: Cached,
    present: dict[str, os.stat_result],
    outputs: OutputChecker,
) -> bool:
    """The planner's no-op: the same request, downloaded, its output intact."""
    if summary.input_hash != entry.content_hash or summary.status != "downloaded":
        return False
    if summary.output is None:
        return False
    st = present.get(os.path.join(str(workspace.root), summary.output[0]))
    return outputs.check(summary.output, summary.subtitles, st) == "ok"


class _StateReader:
    """The local state, each record parsed only when its file's stat is new."""

    def __init__(self, manifest: LoadedManifest, workspace: Workspace, cache: RequestCache) -> None:
        from .backends.local import META_FILE, RECORDS_DIR
        from .state import parse_json, parse_meta
        from .stores import local_store, remote_store

        if remote_store(manifest, workspace) is not None:
            raise _Fallback  # a remote state has no stat to trust
        self.store = local_store(workspace)
        self.records_dir = RECORDS_DIR
        meta_path = self.store.directory / META_FILE
        self.started_ns = time.time_ns()  # before the first stat, for the plan memo
        if not meta_path.is_file():
            raise _Fallback  # a new course, or records without meta (an error)
        shown = f"{self.store.display}/{META_FILE}"
        self.stats: dict[str, StatKey] = {}  # what was read, by path: for the plan memo
        with open(meta_path, encoding="utf-8") as handle:
            self.stats[META_FILE] = stat_key(os.fstat(handle.fileno()))
            text = handle.read()
        data = parse_json(text, shown)
        if isinstance(data, dict) and data.get("format") != 1:
            raise _Fallback  # records kept by render: the full plan binds them to videos
        self.meta = parse_meta(data, shown)
        self.lineage: str | None = self.meta.lineage
        self.folder = str(self.store.directory / RECORDS_DIR)
        self.parsed: dict[str, StateRecord] = {}
        self.summaries: dict[str, RecordSummary] = {}
        self.names = sorted(n for n in os.listdir(self.folder) if n.endswith(".json"))
        trusted: dict[str, RecordSummary] = {}
        racy_from = self.started_ns - RACY_NS
        for name in self.names:
            st = os.lstat(os.path.join(self.folder, name))
            if not stat.S_ISREG(st.st_mode):
                raise _Fallback
            video_id = name.removesuffix(".json")
            summary = cache.records.get(name)
            if summary is None or summary.stat != stat_key(st):
                summary = RecordSummary.of(stat_key(st), self.read(video_id))
                if summary.stat != stat_key(os.lstat(os.path.join(self.folder, name))):
                    raise _Fallback  # written while read
            if max(st.st_mtime_ns, st.st_ctime_ns) < racy_from:
                trusted[name] = summary
            self.summaries[video_id] = summary
            self.stats[f"{RECORDS_DIR}/{name}"] = summary.stat
        self.changed = trusted != cache.records  # the cache needs writing
        cache.records = trusted

    def read(self, video_id: str) -> StateRecord:
        from .state import parse_record_text

        record = self.parsed.get(video_id)
        if record is None:
            name = f"{video_id}.json"
            shown = f"{self.store.display}/{self.records_dir}/{name}"
            with open(os.path.join(self.folder, name), encoding="utf-8") as handle:
                text = handle.read()
            record = parse_record_text(text, video_id, shown, f"the file is named {name}")
            self.parsed[video_id] = record
        return record

    def state(self, video_ids: set[str]) -> State:
        from .state import State

        records = {video_id: self.read(video_id) for video_id in sorted(video_ids)}
        for video_id, record in records.items():
            if record.serial != self.summaries[video_id].serial:
                raise _Fallback  # changed since its stat was taken
        return State(self.store, self.meta, records)

    def serials(self) -> dict[str, int]:
        return {video_id: s.serial for video_id, s in self.summaries.items()}


class _Builder:
    """Parses, validates, renders and hashes chosen items alone, with their real lines."""

    def __init__(self, reading: Reading, target: TargetName) -> None:
        from pydantic import ValidationError

        from .manifest import LoadedManifest, Manifest
        from .render import Renderer
        from .workspace import Workspace
        from .yamlsafe import LoadedYaml, load_yaml

        self.reading = reading
        self.split = reading.split
        head = load_yaml(self.split.head_document, reading.display)
        if not isinstance(head.data, dict) or head.data.get("videos", 0) is not None:
            raise _Fallback
        self.head_nodes = count_nodes(head.data)
        self.head_alias_nodes = alias_nodes(self.split.head, self.head_nodes)
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
            item = self.split.items[index]
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
        item, output = self.split.items[index], self.workspace.output_name(request)
        return _cached(request, inputs, item, self.nodes[index], output)

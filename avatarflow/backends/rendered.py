"""What every state store shares: records kept by render, bound to videos by the manifest.

A store keeps one :class:`~avatarflow.renders.RenderRecord` per request hash (files
beside the manifest, or blobs in a container) and, apart from them, the per-machine
facts of this checkout (:mod:`avatarflow.machine`). :class:`RenderKeyedStore` holds the
logic both stores share; a store implements only how a render, the meta and the old
per-video format are read and written:

- :meth:`RenderKeyedStore.bind` turns the renders into the per-video records the
  planner and the runner work on (video → request hash → render);
- :meth:`RenderKeyedStore.write_record` persists what a record changes of its render
  (nothing, when a download or a pull changes nothing committed);
- :meth:`RenderKeyedStore.absorb_v1` reads records of the per-video format losslessly:
  each becomes its render, the outputs they name become this checkout's facts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import Location, StateError
from ..machine import LastRender, MachineFacts, Materialised
from ..renders import RenderRecord, dump, fingerprint, from_v1, merge, to_render, to_view
from ..state import State, StateMeta, StateRecord, parse_meta

RENDERS_FORMAT = 3  # 1: per-video records; 2: a journaled remote snapshot of those
VideoUse = tuple[str, str, str]  # video id, request hash, output path (relative)


class MemoryFacts(MachineFacts):
    """Per-machine facts of a store opened without a checkout (kept in memory only)."""

    def save(self, *, now: bool = True) -> None:
        """Nowhere to keep them: they live as long as the store object."""


def no_facts() -> MachineFacts:
    return MemoryFacts(Path("."))


def renders_meta(meta: StateMeta) -> StateMeta:
    return meta.model_copy(update={"format": RENDERS_FORMAT})


def current_meta(data: Any, shown: str) -> StateMeta | None:
    """The meta of a state kept by render; None for an older format (to be migrated);
    a newer format is refused rather than misread."""
    found = data.get("format") if isinstance(data, dict) else None
    if found == RENDERS_FORMAT:
        assert isinstance(data, dict)
        data = {**data, "format": 1}  # the meta model's own format field
        return renders_meta(parse_meta(data, shown))
    if isinstance(found, int) and found > RENDERS_FORMAT:
        raise StateError(
            f"state format {found} is newer than this avatarflow understands "
            f"({RENDERS_FORMAT}); upgrade avatarflow",
            Location(shown),
        )
    return None


class RenderKeyedStore:
    """Renders by request hash plus this checkout's facts; subclasses do the I/O."""

    display: str

    def __init__(self, facts: MachineFacts) -> None:
        self.renders: dict[str, RenderRecord] = {}
        self.fingerprints: dict[str, int] = {}  # request hash -> the stored bytes
        self.facts = facts
        self._migrate_from: int | None = None
        self._v1_outputs: dict[str, Materialised] = {}  # an older state's, until migrated
        self._v1_latest: dict[str, LastRender] = {}

    # -- to be provided by a store -----------------------------------------------------
    def _put_render(self, render: RenderRecord) -> None:
        """Persist ``render`` and note it (and its fingerprint) in :attr:`renders`."""
        raise NotImplementedError

    def _remove_render(self, request_hash: str) -> None:
        raise NotImplementedError

    def _finish_migration(self, meta: StateMeta | None) -> None:
        """Write a state read in an older format in the current one (no-op otherwise)."""
        raise NotImplementedError

    # -- reading -------------------------------------------------------------------
    def share(self) -> None:
        """After a writing command: leave what other checkouts need to load quickly
        (the remote store's index); nothing to leave for files in git."""

    def _note(self, render: RenderRecord, data: bytes) -> None:
        self.renders[render.request_hash] = render
        self.fingerprints[render.request_hash] = fingerprint(data)

    @property
    def needs_migration(self) -> bool:
        return self._migrate_from is not None

    def absorb_v1(self, records: Iterable[StateRecord]) -> None:
        """Records of the per-video format: each becomes its render; two videos of one
        request (a duplicate) give one render; the outputs they name are this
        checkout's."""
        self._v1_outputs, self._v1_latest = {}, {}
        for record in records:
            render, output = from_v1(record)
            if render is None:
                continue
            known = self.renders.get(render.request_hash)
            self.renders[render.request_hash] = merge(known, render) if known else render
            self.fingerprints[render.request_hash] = fingerprint(dump(render))
            self._v1_latest[record.video_id] = LastRender(render.request_hash, dict(record.sources))
            if output is not None and record.status == "downloaded":
                self._v1_outputs[record.video_id] = Materialised(
                    render.request_hash, output.path, output.size, output.sha256
                )

    def bind(self, state: State, videos: Iterable[VideoUse]) -> None:
        """The per-video records of the manifest's videos: each video's render by its
        request hash, its output where the manifest puts it. Outputs this checkout wrote
        for videos no longer in the manifest come as records too, so that the plan can
        remove them."""
        if self.needs_migration:
            for video_id, item in self._v1_outputs.items():
                self.facts.outputs.setdefault(video_id, item)
            for video_id, last in self._v1_latest.items():
                self.facts.latest.setdefault(video_id, last)
        state.records = {}
        wanted: set[str] = set()
        uses = list(videos)
        for video_id, request_hash, output_path in uses:
            wanted.add(video_id)
            render = self.renders.get(request_hash)
            if render is None:
                continue
            view = to_view(render, video_id, output_path)
            view.serial = self.fingerprints.get(request_hash, 0)
            state.records[video_id] = view
        for video_id, item in self.facts.outputs.items():
            render = self.renders.get(item.request_hash)
            if video_id in wanted or render is None:
                continue
            # An output this checkout wrote for a video gone from the manifest.
            state.records[video_id] = to_view(render, video_id, item.path)
        state.previous = self._previous(wanted, {vid: h for vid, h, _ in uses})

    def _previous(self, wanted: set[str], hashes: dict[str, str]) -> dict[str, StateRecord]:
        """Per video, the render this checkout last had for it; for a video new here,
        the render of a removed video with the same request (a rename)."""
        previous: dict[str, StateRecord] = {}
        by_hash = {
            last.request_hash: vid for vid, last in self.facts.latest.items() if vid not in wanted
        }
        for video_id, request_hash in hashes.items():
            last = self.facts.latest.get(video_id)
            was = video_id
            if last is None and request_hash in by_hash:
                was = by_hash[request_hash]
                last = self.facts.latest[was]
            if last is None:
                continue
            render = self.renders.get(last.request_hash)
            if render is not None:
                view = to_view(render, was, None)
            elif request_hash in self.renders:
                # Its record went (a git revert of the commit that paid for it): what is
                # on disk is still another render's, which is all a reuse needs to know.
                view = to_view(self.renders[request_hash], was, None)
                view.input_hash = last.request_hash
            else:
                continue
            view.sources = dict(last.sources)
            previous[video_id] = view
        return previous

    def previous_render(self, video_id: str) -> RenderRecord | None:
        """The render this checkout last materialised for ``video_id``."""
        item = self.facts.outputs.get(video_id)
        return self.renders.get(item.request_hash) if item is not None else None

    # -- writing -------------------------------------------------------------------
    def write_record(self, record: StateRecord) -> None:
        """Persist what ``record`` changes of its render; outputs are this machine's."""
        self._finish_migration(None)
        render = to_render(record, self.renders.get(record.input_hash))
        if render is not None:
            self._put_render(render)
        self.facts.latest[record.video_id] = LastRender(record.input_hash, dict(record.sources))
        if record.status == "downloaded" and record.output is not None:
            output = record.output
            self.facts.outputs[record.video_id] = Materialised(
                record.input_hash, output.path, output.size, output.sha256
            )
        self.facts.save(now=False)  # flushed by State.flush at the end of the command

    def delete_record(self, video_id: str) -> None:
        """A video removed from the manifest: its render stays as history (see prune);
        this checkout forgets the output it wrote for it."""
        self.facts.outputs.pop(video_id, None)
        self.facts.latest.pop(video_id, None)
        self.facts.save()

    def delete_render(self, request_hash: str) -> None:
        self._finish_migration(None)
        self._remove_render(request_hash)
        self.renders.pop(request_hash, None)
        self.fingerprints.pop(request_hash, None)

    def replace(self, meta: StateMeta, records: Mapping[str, StateRecord]) -> None:
        """Make this state one of ``meta`` and the renders of ``records``."""
        renders: dict[str, RenderRecord] = {}
        for record in records.values():
            render = to_render(record, renders.get(record.input_hash))
            if render is not None:
                renders[render.request_hash] = render
        self.replace_renders(meta, renders)

    def replace_renders(self, meta: StateMeta, renders: Mapping[str, RenderRecord]) -> None:
        """Make this state a copy of ``meta`` and ``renders`` (renders first, meta last)."""
        raise NotImplementedError

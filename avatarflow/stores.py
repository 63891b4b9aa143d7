"""Opening a target's state: the local files beside the manifest, or the team's blob."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .backends.local import RECORDS_DIR, LocalStore
from .backends.rendered import RenderKeyedStore
from .planmemo import StateRead

if TYPE_CHECKING:
    from .build import Built
    from .manifest import LoadedManifest
    from .state import State, StateRecord, StateStore
    from .videostore import VideoStores
    from .workspace import Workspace


def local_store(workspace: Workspace) -> LocalStore:
    """The target's state directory beside the manifest."""
    return LocalStore(workspace.state_dir, workspace.display(workspace.state_dir))


def remote_store(manifest: LoadedManifest, workspace: Workspace) -> StateStore | None:
    """The team's remote state, when the manifest names one (never for drafts)."""
    settings = manifest.model.service.state
    if workspace.is_emulator or settings.backend == "local":
        return None
    from .backends.azureblob import AzureBlobStore

    assert settings.container_url is not None  # the manifest model checks it
    name = settings.name or f"{manifest.model.name}.json"
    # This checkout's facts (which outputs it wrote, jobs it found gone) stay beside the
    # manifest, in the uncommitted cache of the state folder.
    return AzureBlobStore(settings.container_url, name, state_dir=workspace.state_dir)


def open_store(manifest: LoadedManifest, workspace: Workspace) -> StateStore:
    """Where this target's state lives; each call reads afresh from a new store."""
    return remote_store(manifest, workspace) or local_store(workspace)


def load_state(
    store: StateStore, workspace: Workspace, built: Built | None = None
) -> tuple[State, StateRead | None]:
    """Read the state afresh, with what was read (None for a remote state, which has no
    stat a plan memo could compare, or for one read in an older format). ``built`` binds
    a state kept by render to the manifest's videos."""
    started_ns = time.time_ns()  # before the first stat
    state = store.load()
    if built is not None:
        state.bind(video_uses(workspace, built))
    if not isinstance(store, LocalStore) or store.needs_migration:
        return state, None
    folder = workspace.state_setting
    stats = {f"{folder}/{name}": key for name, key in store.read_stats.items()}
    listings = {} if store.listing is None else {f"{folder}/{RECORDS_DIR}": store.listing}
    return state, StateRead(started_ns, folder, stats, listings)


def video_uses(workspace: Workspace, built: Built) -> list[tuple[str, str, str]]:
    """(video id, request hash, output path) of every video: how renders are used."""
    return [
        (r.video_id, r.content_hash, workspace.display(workspace.output_path(r)))
        for r in built.requests
    ]


def migrate(state: State) -> None:
    """Write a state read in an older format in the current one (a writing command's
    first step; a plan only reads it)."""
    store = state.store
    if isinstance(store, RenderKeyedStore) and store.needs_migration and state.meta is not None:
        store.write_meta(state.meta)


def video_stores(manifest: LoadedManifest, workspace: Workspace) -> VideoStores:
    """The local video store, and the team's for the Azure target when configured."""
    from .videostore import open_stores

    team = None if workspace.is_emulator else manifest.model.service.store.container_url
    return open_stores(team)


def fetch_source(state: State, stores: VideoStores) -> Callable[[StateRecord], str | None] | None:
    """Where a recorded video can be had again for free: a video store, else the
    service while its job lives (known offline from the record's expiry, and from the
    jobs this checkout found gone). None for a state kept per video."""
    from datetime import UTC, datetime

    from .renders import expiry, parse_time
    from .videostore import StoredObject

    store = state.store
    if not isinstance(store, RenderKeyedStore):
        return None
    gone, now = store.facts.gone, datetime.now(UTC)

    def source(record: StateRecord) -> str | None:
        if record.output is None:
            return None
        where = stores.where(StoredObject(record.output.sha256, record.output.size))
        sidecar = record.subtitles
        if sidecar is not None and stores.where(StoredObject(sidecar.sha256, sidecar.size)) is None:
            where = None  # a pull needs the subtitles beside the video too
        if where is not None:
            return f"{where} store"
        if (record.remote_id or record.synthesis_id) in gone:
            return None
        ends = parse_time(expiry(record.completed_at, record.request, record.surface))
        return "service" if ends is None or ends > now else None

    return source

"""Opening a target's state: the local files beside the manifest, or the team's blob."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .backends.local import RECORDS_DIR, LocalStore
from .planmemo import StateRead

if TYPE_CHECKING:
    from .manifest import LoadedManifest
    from .state import State, StateStore
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
    return AzureBlobStore(settings.container_url, settings.name or f"{manifest.model.name}.json")


def open_store(manifest: LoadedManifest, workspace: Workspace) -> StateStore:
    """Where this target's state lives; each call reads afresh from a new store."""
    return remote_store(manifest, workspace) or local_store(workspace)


def load_state(store: StateStore, workspace: Workspace) -> tuple[State, StateRead | None]:
    """Read the state afresh, with what was read (None for a remote state, which has no
    stat a plan memo could compare)."""
    started_ns = time.time_ns()  # before the first stat
    state = store.load()
    if not isinstance(store, LocalStore):
        return state, None
    folder = workspace.state_setting
    stats = {f"{folder}/{name}": key for name, key in store.read_stats.items()}
    listings = {} if store.listing is None else {f"{folder}/{RECORDS_DIR}": store.listing}
    return state, StateRead(started_ns, folder, stats, listings)

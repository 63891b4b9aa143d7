"""State stores: where a :class:`~avatarflow.state.State` is kept, and moving it between them.

- :class:`~avatarflow.backends.local.LocalStore` — files beside the manifest (default);
- :class:`~avatarflow.backends.azureblob.AzureBlobStore` — the same records as blobs in
  Azure Storage (``service.state.backend: azureblob``), imported only when a manifest
  asks for it.

Both keep records by render (:mod:`avatarflow.backends.rendered`).
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import StateError
from ..state import StateStore
from .rendered import RenderKeyedStore


def copy_state(
    source: StateStore,
    destination: StateStore,
    *,
    force: bool = False,
    uses: Iterable[tuple[str, str, str]] = (),
) -> int:
    """Make ``destination`` a copy of ``source``; the number of renders copied.

    Both stores must be locked by the caller. A destination of another lineage (a
    different course, or a state created separately) is refused unless ``force``.
    Every render is copied, the ones no video of the manifest uses too (another
    branch's); ``uses`` (video id, request hash, output path) binds both states to the
    manifest's videos, which migrates a state read in an older format.
    """
    uses = list(uses)
    state = source.load()
    state.bind(uses)
    if state.meta is None:
        raise StateError(f"{source.display} holds no state; nothing to copy")
    current = destination.load()
    current.bind(uses)
    if current.meta is not None and current.meta.lineage != state.meta.lineage and not force:
        raise StateError(
            f"{destination.display} has lineage {current.meta.lineage}, "
            f"{source.display} has {state.meta.lineage}: they are different states. "
            "Use --force to overwrite it"
        )
    if isinstance(source, RenderKeyedStore) and isinstance(destination, RenderKeyedStore):
        destination.replace_renders(state.meta, source.renders)
        return len(source.renders)
    destination.replace(state.meta, state.records)
    return len(state.records)


__all__ = ["StateStore", "copy_state"]

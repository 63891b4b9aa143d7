"""State stores: where a :class:`~avatarflow.state.State` is kept, and moving it between them.

- :class:`~avatarflow.backends.local.LocalStore` — files beside the manifest (default);
- :class:`~avatarflow.backends.azureblob.AzureBlobStore` — a snapshot blob and its
  journal in Azure Storage (``service.state.backend: azureblob``), imported only when a
  manifest asks for it.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import StateError
from ..state import StateStore


def copy_state(
    source: StateStore,
    destination: StateStore,
    *,
    force: bool = False,
    uses: Iterable[tuple[str, str, str]] = (),
) -> int:
    """Make ``destination`` a copy of ``source``; the number of records copied.

    Both stores must be locked by the caller. A destination of another lineage (a
    different course, or a state created separately) is refused unless ``force``.
    ``uses`` (video id, request hash, output path) binds a state kept by render to the
    manifest's videos, so that a store kept per video gets one record per video.
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
    destination.replace(state.meta, state.records)
    return len(state.records)


__all__ = ["StateStore", "copy_state"]

"""Packing: videos that differ only in their input travel as one multi-input job.

A pack is a runtime grouping, never an identity. Each video keeps the identity of its own
single-video request body (:mod:`avatarflow.payload`) and its own state record; a pack
only decides which videos share one create. Videos whose bodies are equal once
``inputs`` is set aside form a group; a group is cut into chunks of at most
``max_inputs`` inputs (the service allows 1,000) whose body stays under 500 KB.

The job id of a pack is derived from what it holds: ``{name}-pack-{sha12}`` over the
sorted ``hash:attempt`` of its members. The same videos sent again after a crash map to
the same id (adopted, never paid twice); a changed video, or a new attempt after a
failure, gives a new id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .destination import Destination
from .errors import RequestValidationError
from .payload import DESTINATION_RESERVE, MAX_BODY_BYTES, VideoRequest, canonical_json

MAX_INPUTS = 1000


# Lines up by shape with emulator.narration.Cue (three typed fields): intended.
@dataclass(frozen=True)
class Member:
    """One video of a pack: its request, its submission attempt and its 1-based index."""

    request: VideoRequest
    attempt: int
    index: int


@dataclass(frozen=True)
class Pack:
    job_id: str
    members: tuple[Member, ...]

    def body(self, destination: Destination) -> dict[str, Any]:
        """The create body: the members' shared settings, their inputs in index order and
        the destination container (with its SAS: send it, never store it)."""
        body = shared_settings(self.members[0].request)
        body["inputs"] = [m.request.body["inputs"][0] for m in self.members]
        return destination.into(body)


def shared_settings(request: VideoRequest) -> dict[str, Any]:
    """The request body without its input: equal for every video of one pack."""
    return {k: v for k, v in request.body.items() if k != "inputs"}


def pack_job_id(name: str, members: Iterable[tuple[str, int]]) -> str:
    """``{name}-pack-{sha12}`` of the sorted ``(content hash, attempt)`` of the members."""
    text = "\n".join(sorted(f"{digest}:{attempt}" for digest, attempt in members))
    return f"{name}-pack-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def group(
    requests: Sequence[VideoRequest], max_inputs: int = MAX_INPUTS
) -> list[list[VideoRequest]]:
    """Split ``requests`` into packs: same settings, ≤ ``max_inputs`` inputs, ≤ 500 KB."""
    if not 1 <= max_inputs <= MAX_INPUTS:
        raise ValueError(f"max_inputs must be between 1 and {MAX_INPUTS}")
    groups: dict[str, list[VideoRequest]] = {}
    for request in requests:
        check_packable(request)
        groups.setdefault(canonical_json(shared_settings(request)), []).append(request)
    packs: list[list[VideoRequest]] = []
    for key, members in groups.items():
        packs.extend(_chunks(members, max_inputs, len(key.encode()) + DESTINATION_RESERVE))
    return packs


def _chunks(
    members: list[VideoRequest], max_inputs: int, base_bytes: int
) -> Iterable[list[VideoRequest]]:
    chunk: list[VideoRequest] = []
    size = base_bytes
    for request in members:
        item = len(canonical_json(request.body["inputs"][0]).encode()) + 1  # and its comma
        if chunk and (len(chunk) >= max_inputs or size + item > MAX_BODY_BYTES):
            yield chunk
            chunk, size = [], base_bytes
        chunk.append(request)
        size += item
    if chunk:
        yield chunk


def check_packable(request: VideoRequest) -> None:
    """A video that cannot travel in a pack is a located error, before any request."""
    if request.surface != "ga":
        raise RequestValidationError(
            "packing needs the GA API (service.api_version 2024-08-01 or 2024-04-15-preview)",
            request.rendered.video.location,
        )

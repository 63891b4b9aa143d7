"""The requests step: manifest → rendered videos → request bodies, and what it read.

This is where a per-video cache of built requests plugs in: :func:`build_requests` is
the only caller of :func:`build_one`, and everything a request depends on is either the
resolved video (settings from the manifest) or a file whose digest ``InputsRead`` holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ManifestError
from .manifest import LoadedManifest
from .payload import DESTINATION_RESERVE, VideoRequest, build_request
from .planmemo import InputsRead, snapshot_folder
from .render import RenderedVideo, Renderer
from .suggest import did_you_mean
from .workspace import as_configured


@dataclass(frozen=True)
class Built:
    """Every video of a manifest as the request apply would send, in manifest order."""

    requests: list[VideoRequest]
    read: InputsRead  # the templates and narration files, as they were read

    @property
    def warnings(self) -> list[str]:
        """Each warning once: forty videos of one custom voice make one note."""
        return list(dict.fromkeys(w for r in self.requests for w in r.rendered.warnings))

    def ids(self) -> list[str]:
        return [r.video_id for r in self.requests]


def build_one(manifest: LoadedManifest, rendered: RenderedVideo) -> VideoRequest:
    """One rendered video turned into its request, checked against the service's rules."""
    model = manifest.model
    reserve = DESTINATION_RESERVE if model.service.destination_container_url else 0
    return build_request(rendered, model.name, model.service.api_version, reserve)


def build_requests(manifest: LoadedManifest) -> Built:
    """Every video rendered and turned into its request; raises on the first problem."""
    renderer = Renderer(manifest)
    # Snapshot before rendering: a template edited meanwhile then differs from its memo.
    templates_dir = as_configured(manifest.root, manifest.model.templates_dir)
    templates = snapshot_folder(manifest.root / templates_dir)
    requests = [build_one(manifest, rendered) for rendered in renderer.render_all()]
    if manifest.model.service.pack:
        from .packing import check_packable  # packed jobs only

        for request in requests:
            check_packable(request)
    read = InputsRead(templates_dir, templates, dict(renderer.input_digests))
    return Built(requests, read)


def find_request(manifest: LoadedManifest, built: Built, video_id: str) -> VideoRequest:
    """The request of ``video_id``, or a located error naming the videos there are."""
    for request in built.requests:
        if request.video_id == video_id:
            return request
    hint = did_you_mean(video_id, built.ids())
    raise ManifestError(
        f"no video {video_id!r} in the manifest{hint}; videos: {', '.join(built.ids())}",
        manifest.location(("videos",)),
    )

"""A rendered video → the exact request body, its content hash and its synthesis id.

The identity of a video is the sha256 of the canonical JSON of the request body that
would be sent (plus a hash-format version and the API surface), never a hand-picked
subset: whatever changes the request changes the hash, nothing else does.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import catalog
from .errors import Location, RequestValidationError
from .manifest import PREVIEW_API, AvatarSettings, ResolvedVideo, VideoEntry, VideoSettings
from .render import RenderedVideo

HASH_FORMAT = 1
MAX_BODY_BYTES = 500 * 1024
# Room kept in a body for destinationContainerUrl (with its SAS) and destinationPath, which
# are added at submit time: a body that fits today must not fail when the SAS rotates.
DESTINATION_RESERVE = 8 * 1024
MAX_TTL_HOURS = 744
ID_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,62}[a-zA-Z0-9]$")
HASH_PROPERTY = "avatarflowHash"
VIDEO_PROPERTY = "avatarflowVideo"
ATTEMPT_PROPERTY = "avatarflowAttempt"

_CODECS = {"mp4": ("h264", "hevc", "av1"), "webm": ("vp9", "av1")}


def canonical_json(value: Any) -> str:
    """Sorted keys, compact separators, UTF-8: one text for one value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class VideoRequest:
    """Everything needed to submit one video, and to recognise it later."""

    rendered: RenderedVideo
    surface: str  # "ga" or "preview"
    body: dict[str, Any]  # identity body; for GA exactly what is PUT
    content_hash: str
    synthesis_id: str

    @property
    def video_id(self) -> str:
        return self.rendered.id

    def job_id(self, attempt: int = 0) -> str:
        """The remote id of a submission. A video rendered again with the same request
        (after a failure, an expired job or ``--replace``) needs a new id: the old job may
        still exist under the first one."""
        if attempt == 0:
            return self.synthesis_id
        tail = f"-{self.content_hash[:12]}-r{attempt}"
        head = self.synthesis_id[: -len(self.content_hash[:12]) - 1]
        return head[: 64 - len(tail)].rstrip("-._") + tail

    def submit_body(self, attempt: int = 0) -> dict[str, Any]:
        """The body sent on create. Preview adds the identity fields it needs to be found."""
        if self.surface == "ga":
            return self.body
        body = dict(self.body)
        body["displayName"] = self.job_id(attempt)
        body["customProperties"] = {
            HASH_PROPERTY: self.content_hash,
            ATTEMPT_PROPERTY: str(attempt),
            VIDEO_PROPERTY: self.video_id[:256],
        }
        return body

    def summary(self) -> RequestSummary:
        """What this request asks for, as the planner compares it with a record's."""
        return summarize(self.surface, self.recorded_body(), self.rendered.sources)

    def recorded_body(self) -> dict[str, Any]:
        """The body as kept in state: inputs replaced by their digest to keep state small.
        It never names the destination container: that is added on create only."""
        body = dict(self.body)
        key = "inputs"
        body[key] = [
            {
                "sha256": hashlib.sha256(_input_text(i).encode()).hexdigest(),
                "chars": len(_input_text(i)),
            }
            for i in self.body[key]
        ]
        return body


# -- the neutral summary -----------------------------------------------------------
# Keys of the avatar section (GA ``avatarConfig``, preview ``properties``) that say who
# appears; the rest of the section is video settings, except the preview's job fields.
_AVATAR_FIELDS = frozenset(
    {
        "talkingAvatarCharacter",
        "talkingAvatarStyle",
        "customized",
        "photoAvatarBaseModel",
        "scene",
        "useBuiltInVoice",
        "avatarPosition",
        "avatarSize",
    }
)
_PREVIEW_JOB_FIELDS = frozenset({"timeToLive", "destinationContainerUrl"})
_SPOKEN_FIELDS = frozenset({"inputs", "inputKind", "textType"})


@dataclass(frozen=True)
class RequestSummary:
    """A request by what a user names, whatever the API surface's wire layout: the
    planner explains a re-render by comparing two of these. Settings keep their wire
    names (``talkingAvatarStyle``), which is how reasons name them."""

    surface: str
    script: Mapping[str, Any]  # the input kind and the digest of each input
    sources: Mapping[str, str]  # what the input was made from: script, ssml, template, vars
    voice: str | None = None
    avatar: Mapping[str, Any] = field(default_factory=dict)
    video: Mapping[str, Any] = field(default_factory=dict)
    synthesis: Mapping[str, Any] = field(default_factory=dict)  # besides the voice
    job: Mapping[str, Any] = field(default_factory=dict)  # the preview's job properties
    other: Mapping[str, Any] = field(default_factory=dict)  # any other field, by its key


def summarize(surface: str, body: Mapping[str, Any], sources: Mapping[str, str]) -> RequestSummary:
    """The summary of a recorded body (inputs as digests, see ``recorded_body``): a new
    request's, or one a state record holds, whenever that record was written."""
    section_key = "properties" if surface == "preview" else "avatarConfig"
    section = body.get(section_key)
    section = section if isinstance(section, Mapping) else {}
    synthesis = body.get("synthesisConfig")
    synthesis = dict(synthesis) if isinstance(synthesis, Mapping) else {}
    spoken_voice = synthesis.pop("voice", None)
    # A templated video names its voice in the SSML; a plain-text one in synthesisConfig.
    voice = sources.get("voice", spoken_voice)
    skipped = {*_SPOKEN_FIELDS, section_key, "synthesisConfig"}
    return RequestSummary(
        surface=surface,
        script={"kind": body.get("inputKind", body.get("textType")), "inputs": body.get("inputs")},
        sources=dict(sources),
        voice=voice,
        avatar={k: v for k, v in section.items() if k in _AVATAR_FIELDS},
        video={
            k: v
            for k, v in section.items()
            if k not in _AVATAR_FIELDS and k not in _PREVIEW_JOB_FIELDS
        },
        synthesis=synthesis,
        job={k: v for k, v in section.items() if k in _PREVIEW_JOB_FIELDS},
        other={k: v for k, v in body.items() if k not in skipped},
    )


def _input_text(item: dict[str, str]) -> str:
    return item.get("content", item.get("text", ""))


def content_hash(surface: str, body: dict[str, Any]) -> str:
    return _envelope_hash(surface, canonical_json(body))


def _envelope_hash(surface: str, body_json: str) -> str:
    """The hash of ``{"format", "surface", "body"}`` from the body's canonical JSON.

    The envelope's canonical JSON is spelled out around the body's (sorted keys: body,
    format, surface) so that a large body is serialised once per video, not twice.
    """
    envelope = f'{{"body":{body_json},"format":{HASH_FORMAT},"surface":{canonical_json(surface)}}}'
    return hashlib.sha256(envelope.encode("utf-8")).hexdigest()


def synthesis_id(name: str, video_id: str, digest: str) -> str:
    """``{name}-{video id}-{hash12}`` within the service's id rule (3–64 characters)."""
    suffix = digest[:12]
    prefix = re.sub(r"[^A-Za-z0-9._-]", "-", f"{name}-{video_id}")
    room = 64 - len(suffix) - 1
    if len(prefix) > room:
        # Keep the ids of long names distinct: the cut part is replaced by its own digest.
        tag = hashlib.sha256(prefix.encode()).hexdigest()[:6]
        prefix = f"{prefix[: room - 7]}-{tag}"
    prefix = re.sub(r"^[^A-Za-z0-9]+", "", prefix) or "v"
    return f"{prefix}-{suffix}"


def build_request(
    rendered: RenderedVideo, name: str, api_version: str, reserve: int = 0
) -> VideoRequest:
    """The request for one video, checked against the service's documented rules;
    ``reserve`` bytes of the 500 KB are kept for fields added when it is sent."""
    fields = rendered.video.fields
    loc = rendered.video.location
    check_service_rules(rendered.video, rendered.input_kind)
    if api_version == PREVIEW_API:
        surface, body = "preview", _preview_body(rendered, fields)
    else:
        surface, body = "ga", _ga_body(rendered, fields)
    body_json = canonical_json(body)
    size = len(body_json.encode("utf-8"))
    if size + reserve > MAX_BODY_BYTES:
        kept = (
            f" and {reserve // 1024} KB are kept for the destination container" if reserve else ""
        )
        raise RequestValidationError(
            f"request body is {size // 1024} KB; the service accepts at most 500 KB{kept}", loc
        )
    digest = _envelope_hash(surface, body_json)
    return VideoRequest(rendered, surface, body, digest, synthesis_id(name, rendered.id, digest))


def check_service_rules(resolved: ResolvedVideo, input_kind: str) -> None:
    """Rules the service enforces, checked before any request is made.

    Each error points at the key that breaks the rule, in the video or in ``defaults``.
    """
    fields = resolved.fields
    where = resolved.locate
    avatar = fields.avatar or AvatarSettings()
    video = fields.video or VideoSettings()
    fmt = video.format or "mp4"
    codec = video.codec or ("hevc" if fmt == "mp4" else "vp9")
    if codec not in _CODECS[fmt]:
        raise RequestValidationError(
            f"codec {codec} cannot be used with format {fmt} "
            f"(use one of {', '.join(_CODECS[fmt])})",
            where("video", "codec"),
        )
    color = (video.background_color or "").lower()
    if color in {"transparent", "#00000000"} and (fmt, codec) != ("webm", "vp9"):
        raise RequestValidationError(
            "a transparent background needs video.format: webm and video.codec: vp9",
            where("video", "background_color"),
        )
    if video.background_image and video.background_color:
        raise RequestValidationError(
            "set either video.background_image or video.background_color, not both",
            where("video", "background_image"),
        )
    _check_avatar(avatar, where)
    if avatar.use_built_in_voice and not avatar.customized:
        raise RequestValidationError(
            "avatar.use_built_in_voice is for custom avatars trained with voice sync: "
            "set avatar.customized: true",
            where("avatar", "use_built_in_voice"),
        )
    if input_kind == "PlainText" and not fields.voice and not avatar.use_built_in_voice:
        raise RequestValidationError(
            "a plain_text video needs a voice (or avatar.use_built_in_voice: true for a "
            "custom avatar trained with voice sync)",
            where("input_kind"),
        )


def _check_avatar(avatar: AvatarSettings, where: Callable[..., Location]) -> None:
    character = avatar.character or ""
    photo = avatar.photo_avatar_base_model is not None
    if photo:
        if avatar.style:
            raise RequestValidationError(
                "photo avatars take no avatar.style", where("avatar", "style")
            )
        return
    if avatar.scene is not None:
        raise RequestValidationError(
            "avatar.scene is for photo avatars only", where("avatar", "scene")
        )
    if avatar.customized:
        return
    if catalog.is_photo_avatar(character):
        raise RequestValidationError(
            f"{character} is a photo avatar: set avatar.photo_avatar_base_model: vasa-1",
            where("avatar", "character"),
        )
    if not catalog.is_standard_character(character):
        hint = catalog.closest(character, catalog.characters())
        raise RequestValidationError(
            f"unknown standard avatar {character!r}"
            + (f" (did you mean '{hint}'?)" if hint else "")
            + "; set avatar.customized: true for a custom avatar",
            where("avatar", "character"),
        )
    styles = catalog.styles(character)
    if not avatar.style:
        raise RequestValidationError(
            f"avatar.style is required for standard avatar {character} "
            f"(one of {', '.join(styles)})",
            where("avatar", "style"),
        )
    if avatar.style.lower() not in styles:
        hint = catalog.closest(avatar.style, styles)
        raise RequestValidationError(
            f"unknown style {avatar.style!r} for {character}"
            + (f" (did you mean '{hint}'?)" if hint else "")
            + f"; valid: {', '.join(styles)}",
            where("avatar", "style"),
        )


def _drop_none(mapping: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if v is not None}


def _point(value: Any) -> dict[str, float] | None:
    return None if value is None else {"x": value.x, "y": value.y}


def _crop(video: VideoSettings) -> dict[str, Any] | None:
    if video.crop is None:
        return None
    return {"topLeft": _point(video.crop.top_left), "bottomRight": _point(video.crop.bottom_right)}


def _synthesis_config(fields: VideoEntry) -> dict[str, Any]:
    synth = fields.synthesis
    return _drop_none(
        {
            "voice": fields.voice,
            "style": synth.style if synth else None,
            "rate": synth.rate if synth else None,
            "pitch": synth.pitch if synth else None,
            "volume": synth.volume if synth else None,
        }
    )


def _ga_body(rendered: RenderedVideo, fields: VideoEntry) -> dict[str, Any]:
    avatar = fields.avatar or AvatarSettings()
    video = fields.video or VideoSettings()
    scene = None
    if avatar.scene is not None:
        s = avatar.scene
        scene = _drop_none(
            {
                "zoom": s.zoom,
                "positionX": s.position_x,
                "positionY": s.position_y,
                "rotationX": s.rotation_x,
                "rotationY": s.rotation_y,
                "rotationZ": s.rotation_z,
                "amplitude": s.amplitude,
            }
        )
    avatar_config = _drop_none(
        {
            "talkingAvatarCharacter": avatar.character,
            "talkingAvatarStyle": avatar.style,
            "customized": avatar.customized,
            "photoAvatarBaseModel": avatar.photo_avatar_base_model,
            "scene": scene,
            "useBuiltInVoice": avatar.use_built_in_voice,
            "avatarPosition": _point(avatar.position),
            "avatarSize": _point(avatar.size),
            "videoFormat": video.format,
            "videoCodec": video.codec,
            "bitrateKbps": video.bitrate_kbps,
            "subtitleType": video.subtitles,
            "backgroundColor": video.background_color,
            "backgroundImage": video.background_image,
            "videoCrop": _crop(video),
            "resolution": _point(video.resolution),
        }
    )
    properties = _drop_none(
        {
            "timeToLiveInHours": fields.ttl_hours,
        }
    )
    body: dict[str, Any] = {
        "inputKind": rendered.input_kind,
        "inputs": [{"content": rendered.content}],
        "avatarConfig": avatar_config,
    }
    synthesis = _synthesis_config(fields)
    # Microsoft's voice-sync sample sends no synthesisConfig: the avatar's own voice speaks.
    if rendered.input_kind == "PlainText" and (synthesis or not avatar.use_built_in_voice):
        body["synthesisConfig"] = synthesis
    if fields.custom_voices:
        body["customVoices"] = dict(fields.custom_voices)
    if properties:
        body["properties"] = properties
    if fields.description:
        body["description"] = fields.description
    return body


def _preview_body(rendered: RenderedVideo, fields: VideoEntry) -> dict[str, Any]:
    avatar = fields.avatar or AvatarSettings()
    video = fields.video or VideoSettings()
    unsupported = [
        name
        for name, value in (
            ("avatar.photo_avatar_base_model", avatar.photo_avatar_base_model),
            ("avatar.scene", avatar.scene),
            ("avatar.use_built_in_voice", avatar.use_built_in_voice),
            ("avatar.position", avatar.position),
            ("avatar.size", avatar.size),
            ("video.background_image", video.background_image),
            ("video.resolution", video.resolution),
        )
        if value is not None
    ]
    if unsupported:
        raise RequestValidationError(
            f"{', '.join(unsupported)} not supported by api_version {PREVIEW_API}",
            rendered.video.locate(*unsupported[0].split(".")),
        )
    if video.codec == "av1":
        raise RequestValidationError(
            f"codec av1 is not supported by api_version {PREVIEW_API}",
            rendered.video.locate("video", "codec"),
        )
    properties = _drop_none(
        {
            "talkingAvatarCharacter": avatar.character,
            "talkingAvatarStyle": avatar.style,
            "customized": avatar.customized,
            "videoFormat": video.format,
            "videoCodec": video.codec,
            "kBitrate": video.bitrate_kbps,
            "videoCrop": _crop(video),
            "subtitleType": video.subtitles,
            "backgroundColor": video.background_color,
            "timeToLive": f"PT{fields.ttl_hours}H" if fields.ttl_hours else None,
        }
    )
    body: dict[str, Any] = {
        "textType": rendered.input_kind,
        "inputs": [{"text": rendered.content}],
        "properties": properties,
    }
    if rendered.input_kind == "PlainText":
        body["synthesisConfig"] = _synthesis_config(fields)
    if fields.custom_voices:
        body["customVoices"] = dict(fields.custom_voices)
    if fields.description:
        body["description"] = fields.description
    return body

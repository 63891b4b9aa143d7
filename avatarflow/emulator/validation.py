"""Request validation the way the service does it, for both API surfaces.

Each check answers 400 ``BadRequest`` with a message naming the offending field (JSON
path style, like the service's ``$.inputKind invalid``). A valid body becomes a
:class:`JobRequest`: the normalised request, the fields echoed back, and the
:class:`RenderSettings` the renderer needs. Where the public documentation is silent the
emulator is strict rather than lenient, so a client that passes here does not fail on the
service for a rule the emulator skipped.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from avatarflow.emulator.wire import ApiError, bad_request, parse_iso_duration

ID_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,62}[a-zA-Z0-9]$")
COLOR_RE = re.compile(r"^#[0-9A-Fa-f]{8}$")
CONTAINER_RE = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")
DEST_PATH_RE = re.compile(r"^[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*$")

MAX_INPUTS = 1000
MAX_TTL_HOURS = 744
MAX_TTL_SECONDS = 31 * 86400
MAX_CUSTOM_PROPERTIES = 10
INPUT_KINDS = {"plaintext": "PlainText", "ssml": "SSML"}
FORMATS = {"mp4": "Mp4", "webm": "Webm"}
CODECS_BY_FORMAT = {"mp4": ("h264", "hevc", "av1"), "webm": ("vp9", "av1")}
SUBTITLE_TYPES = ("external_file", "soft_embedded", "hard_embedded", "none")
PHOTO_MODELS = ("vasa-1",)
PREVIEW_OUTPUT_FORMAT = "riff-24khz-16bit-mono-pcm"
DEFAULT_BACKGROUND = "#FFFFFFFF"
# Echo order of avatarConfig keys in the service's examples; others follow as sent.
_ECHO_ORDER = (
    "talkingAvatarCharacter",
    "talkingAvatarStyle",
    "videoFormat",
    "videoCodec",
    "subtitleType",
    "backgroundColor",
    "backgroundImage",
    "videoCrop",
    "bitrateKbps",
    "kBitrate",
    "customized",
)


@dataclass
class RenderSettings:
    """What the renderer needs from a request, normalised."""

    character: str
    style: str | None
    customized: bool
    photo: bool
    video_format: str
    codec: str
    bitrate_kbps: int
    subtitle_type: str
    background: str
    transparent: bool
    crop: list[float] | None = None
    voice: str | None = None


@dataclass
class Destination:
    """A customer container named by ``destinationContainerUrl`` (never echoed)."""

    container: str
    path: str | None
    sig_sha256: str | None


@dataclass
class JobRequest:
    """A validated create request."""

    surface: str
    input_kind: str
    inputs: list[str]
    render: RenderSettings
    echo: dict[str, Any]
    ttl_hours: float
    ttl_echo: int | str
    custom_voices: dict[str, str] = field(default_factory=dict)
    synthesis_config: dict[str, Any] | None = None
    description: str | None = None
    display_name: str | None = None
    custom_properties: dict[str, str] | None = None
    destination: Destination | None = None


def body_hash(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def check_id(job_id: str) -> None:
    if not ID_RE.match(job_id):
        raise bad_request(
            f"The id '{job_id}' is invalid: use 3 to 64 letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit."
        )


def _obj(value: Any, path: str, *, required: bool = False) -> dict[str, Any]:
    if value is None:
        if required:
            raise bad_request(f"The {path} is required.")
        return {}
    if not isinstance(value, dict):
        raise bad_request(f"{path} must be a JSON object.")
    return value


def _str(value: Any, path: str, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise bad_request(f"The {path} is required.")
        return None
    if not isinstance(value, str):
        raise bad_request(f"{path} must be a string.")
    if required and not value.strip():
        raise bad_request(f"The {path} must not be empty.")
    return value


def _bool(value: Any, path: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise bad_request(f"{path} must be true or false.")
    return value


def _int(value: Any, path: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"{path} must be an integer.")
    return value


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise bad_request(f"{path} must be a number.")
    return float(value)


def _enum(value: Any, path: str, allowed: dict[str, str] | tuple[str, ...]) -> str | None:
    """Case-insensitive enum; returns the canonical spelling."""
    text = _str(value, path)
    if text is None:
        return None
    canonical = {k.lower(): (allowed[k] if isinstance(allowed, dict) else k) for k in allowed}
    if text.lower() not in canonical:
        names = ", ".join(allowed.values() if isinstance(allowed, dict) else allowed)
        raise bad_request(f"{path} invalid: '{text}' is not one of {names}.")
    return canonical[text.lower()]


def _inputs(value: Any, path: str, item_key: str) -> list[str]:
    if value is None:
        raise bad_request("The inputs is required.")
    if not isinstance(value, list) or not value:
        raise bad_request(f"{path} must be a non-empty array.")
    if len(value) > MAX_INPUTS:
        raise bad_request(f"{path} has {len(value)} items; at most {MAX_INPUTS} are allowed.")
    texts: list[str] = []
    for index, item in enumerate(value):
        entry = _obj(item, f"{path}[{index}]", required=True)
        texts.append(_str(entry.get(item_key), f"{path}[{index}].{item_key}", required=True) or "")
    return texts


def _synthesis(
    value: Any, input_kind: str, built_in_voice: bool = False
) -> tuple[dict[str, Any] | None, str | None]:
    """``synthesisConfig`` and its voice: required for PlainText, unless a custom avatar
    speaks with its own voice (``customized`` and ``useBuiltInVoice``, as in Microsoft's
    voice-sync sample, which sends no synthesisConfig at all)."""
    required = input_kind == "PlainText" and not built_in_voice
    if value is None and not required:
        return None, None
    config = _obj(value, "synthesisConfig", required=required)
    voice = _str(config.get("voice"), "synthesisConfig.voice", required=required)
    for key in ("style", "rate", "pitch", "volume"):
        _str(config.get(key), f"synthesisConfig.{key}")
    return config, voice


def _custom_voices(value: Any) -> dict[str, str]:
    voices = _obj(value, "customVoices")
    for name, deployment in voices.items():
        if not name or not isinstance(deployment, str) or not ID_RE.match(deployment):
            raise bad_request(f"customVoices['{name}'] must be a valid deployment id.")
    return dict(voices)


def _destination(url: Any, dest_path: Any, path: str) -> Destination | None:
    text = _str(url, f"{path}.destinationContainerUrl")
    sub = _str(dest_path, f"{path}.destinationPath")
    if text is None:
        if sub is not None:
            raise bad_request(f"{path}.destinationPath needs {path}.destinationContainerUrl.")
        return None
    parts = urlsplit(text)
    segments = [s for s in parts.path.split("/") if s]
    if parts.scheme not in ("http", "https") or not parts.netloc or not segments:
        raise bad_request(f"{path}.destinationContainerUrl must be a container SAS URL.")
    container = segments[-1]
    if not CONTAINER_RE.match(container):
        raise bad_request(f"{path}.destinationContainerUrl names an invalid container.")
    query = parse_qs(parts.query)
    expiry = (query.get("se") or [""])[0]
    if expiry:
        try:
            expires = datetime.fromisoformat(expiry.replace("Z", "+00:00"))
        except ValueError:
            raise bad_request(f"{path}.destinationContainerUrl has an invalid 'se'.") from None
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        if expires <= datetime.now(UTC):
            raise bad_request("The property DestinationContainerUrl is an expired SAS URI.")
    if sub is not None and not DEST_PATH_RE.match(sub.strip("/")):
        raise bad_request(f"{path}.destinationPath is not a valid blob folder.")
    sig = (query.get("sig") or [""])[0]
    return Destination(
        container=container,
        path=sub.strip("/") if sub else None,
        sig_sha256=hashlib.sha256(sig.encode()).hexdigest() if sig else None,
    )


def _background(color: Any, path: str) -> tuple[str, bool]:
    text = _str(color, path)
    if text is None:
        return DEFAULT_BACKGROUND, False
    if text.lower() == "transparent":
        return "#00000000", True
    if not COLOR_RE.match(text):
        raise bad_request(f"{path} must be '#RRGGBBAA' or 'transparent'.")
    return text.upper(), text[-2:] == "00"


def _crop(value: Any, path: str) -> list[float] | None:
    if value is None:
        return None
    crop = _obj(value, path)
    corners: list[float] = []
    for corner in ("topLeft", "bottomRight"):
        point = _obj(crop.get(corner), f"{path}.{corner}", required=True)
        for axis in ("x", "y"):
            if point.get(axis) is None:
                raise bad_request(f"The {path}.{corner}.{axis} is required.")
            corners.append(_number(point[axis], f"{path}.{corner}.{axis}"))
    left, top, right, bottom = corners
    if min(corners) < 0 or right <= left or bottom <= top:
        raise bad_request(f"{path} must span a non-empty rectangle with bottomRight below-right.")
    return corners


def _scene(value: Any, path: str) -> None:
    if value is None:
        return
    scene = _obj(value, path)
    limits = {
        "zoom": (0.0, math.inf),
        "positionX": (-1.0, 1.0),
        "positionY": (-1.0, 1.0),
        "rotationX": (-math.pi, math.pi),
        "rotationY": (-math.pi, math.pi),
        "rotationZ": (-math.pi, math.pi),
        "amplitude": (0.0, 1.0),
    }
    for key, (low, high) in limits.items():
        if key in scene:
            number = _number(scene[key], f"{path}.{key}")
            open_low = key in ("zoom", "amplitude")
            if number > high or number < low or (open_low and number <= low):
                raise bad_request(f"{path}.{key} is out of range.")


def _avatar(
    config: dict[str, Any], path: str, bitrate_key: str, voice: str | None
) -> tuple[RenderSettings, dict[str, Any]]:
    """Validate avatar settings (GA ``avatarConfig`` or preview ``properties``)."""
    character = _str(
        config.get("talkingAvatarCharacter"), f"{path}.talkingAvatarCharacter", required=True
    )
    style = _str(config.get("talkingAvatarStyle"), f"{path}.talkingAvatarStyle")
    customized = _bool(config.get("customized"), f"{path}.customized")
    photo_model = _enum(
        config.get("photoAvatarBaseModel"), f"{path}.photoAvatarBaseModel", PHOTO_MODELS
    )
    if not customized and photo_model is None and not (style and style.strip()):
        raise bad_request(f"The {path}.talkingAvatarStyle is required for a standard video avatar.")
    video_format = _enum(config.get("videoFormat"), f"{path}.videoFormat", FORMATS) or "Mp4"
    fmt = video_format.lower()
    codec = (
        _enum(config.get("videoCodec"), f"{path}.videoCodec", ("h264", "hevc", "vp9", "av1"))
        or "hevc"
    )
    if codec not in CODECS_BY_FORMAT[fmt]:
        raise bad_request(
            f"{path}.videoCodec '{codec}' cannot be used with videoFormat '{fmt}' "
            f"(allowed: {', '.join(CODECS_BY_FORMAT[fmt])})."
        )
    subtitle = (
        _enum(config.get("subtitleType"), f"{path}.subtitleType", SUBTITLE_TYPES) or "soft_embedded"
    )
    background, transparent = _background(config.get("backgroundColor"), f"{path}.backgroundColor")
    if transparent and (fmt, codec) != ("webm", "vp9"):
        raise bad_request("A transparent background needs videoFormat 'webm' and videoCodec 'vp9'.")
    bitrate = _int(config.get(bitrate_key), f"{path}.{bitrate_key}")
    if bitrate is not None and bitrate <= 0:
        raise bad_request(f"{path}.{bitrate_key} must be positive.")
    image = _str(config.get("backgroundImage"), f"{path}.backgroundImage")
    if image is not None and urlsplit(image).scheme not in ("http", "https"):
        raise bad_request(f"{path}.backgroundImage must be an http(s) URL.")
    crop = _crop(config.get("videoCrop"), f"{path}.videoCrop")
    for key in ("avatarPosition", "avatarSize", "resolution"):
        _obj(config.get(key), f"{path}.{key}")
    _bool(config.get("useBuiltInVoice"), f"{path}.useBuiltInVoice")
    if config.get("scene") is not None and photo_model is None:
        # Learn documents scene for photo avatars only; no batch spec or sample sends it.
        raise bad_request(f"{path}.scene is supported for photo avatars only.")
    _scene(config.get("scene"), f"{path}.scene")

    settings = RenderSettings(
        character=character or "",
        style=style,
        customized=customized,
        photo=photo_model is not None,
        video_format=fmt,
        codec=codec,
        bitrate_kbps=bitrate or 2000,
        subtitle_type=subtitle,
        background=background,
        transparent=transparent,
        crop=crop,
        voice=voice,
    )
    echo = dict(config)
    echo.update(videoFormat=video_format, videoCodec=codec, subtitleType=subtitle)
    echo[bitrate_key] = bitrate or 2000
    echo["customized"] = customized
    if photo_model is not None:
        echo["photoAvatarBaseModel"] = photo_model
    return settings, _ordered(echo)


def _ordered(echo: dict[str, Any]) -> dict[str, Any]:
    first = {k: echo[k] for k in _ECHO_ORDER if k in echo}
    return first | {k: v for k, v in echo.items() if k not in first}


def _check_multi_input(inputs: list[str], destination: Destination | None, path: str) -> None:
    if len(inputs) > 1 and destination is None:
        raise bad_request(
            f"{path}.destinationContainerUrl is required when there is more than one input."
        )


def validate_ga(body: Any) -> JobRequest:
    """Validate a GA ``PUT /avatar/batchsyntheses/{id}`` body."""
    data = _obj(body, "request body", required=True)
    input_kind = _enum(data.get("inputKind"), "$.inputKind", INPUT_KINDS)
    if input_kind is None:
        raise bad_request("The inputKind is required.")
    inputs = _inputs(data.get("inputs"), "inputs", "content")
    avatar = _obj(data.get("avatarConfig"), "avatarConfig", required=True)
    built_in = avatar.get("customized") is True and avatar.get("useBuiltInVoice") is True
    synthesis, voice = _synthesis(data.get("synthesisConfig"), input_kind, built_in)
    voices = _custom_voices(data.get("customVoices"))
    description = _str(data.get("description"), "description")
    props = _obj(data.get("properties"), "properties")
    ttl = _int(props.get("timeToLiveInHours"), "properties.timeToLiveInHours")
    if ttl is not None and not 1 <= ttl <= MAX_TTL_HOURS:
        raise bad_request(f"properties.timeToLiveInHours must be between 1 and {MAX_TTL_HOURS}.")
    destination = _destination(
        props.get("destinationContainerUrl"), props.get("destinationPath"), "properties"
    )
    _check_multi_input(inputs, destination, "properties")
    render, echo = _avatar(avatar, "avatarConfig", "bitrateKbps", voice)
    return JobRequest(
        surface="ga",
        input_kind=input_kind,
        inputs=inputs,
        render=render,
        echo=echo,
        ttl_hours=float(ttl or MAX_TTL_HOURS),
        ttl_echo=ttl or MAX_TTL_HOURS,
        custom_voices=voices,
        synthesis_config=synthesis,
        description=description,
        destination=destination,
    )


def _custom_properties(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    props = _obj(value, "customProperties")
    if len(props) > MAX_CUSTOM_PROPERTIES:
        raise bad_request(f"customProperties allows at most {MAX_CUSTOM_PROPERTIES} entries.")
    for key, val in props.items():
        if not key or len(key) > 64:
            raise bad_request("customProperties keys must have 1 to 64 characters.")
        if not isinstance(val, str) or len(val) > 256:
            raise bad_request(
                f"customProperties['{key}'] must be a string of at most 256 characters."
            )
    return dict(props)


def validate_preview(body: Any) -> JobRequest:
    """Validate a ``3.1-preview1`` ``POST .../talkingavatar`` body."""
    data = _obj(body, "request body", required=True)
    display_name = _str(data.get("displayName"), "displayName", required=True)
    input_kind = _enum(data.get("textType"), "textType", INPUT_KINDS)
    if input_kind is None:
        raise bad_request("The textType is required.")
    inputs = _inputs(data.get("inputs"), "inputs", "text")
    synthesis, voice = _synthesis(data.get("synthesisConfig"), input_kind)
    voices = _custom_voices(data.get("customVoices"))
    description = _str(data.get("description"), "description")
    custom = _custom_properties(data.get("customProperties"))
    props = _obj(data.get("properties"), "properties", required=True)
    ttl_text = _str(props.get("timeToLive"), "properties.timeToLive")
    ttl_seconds = float(MAX_TTL_SECONDS)
    if ttl_text is not None:
        try:
            ttl_seconds = parse_iso_duration(ttl_text)
        except ValueError as exc:
            raise bad_request(f"properties.timeToLive: {exc}") from None
        if not 0 < ttl_seconds <= MAX_TTL_SECONDS:
            raise bad_request("properties.timeToLive must be more than zero and at most P31D.")
    destination = _destination(props.get("destinationContainerUrl"), None, "properties")
    _check_multi_input(inputs, destination, "properties")
    avatar_fields = {
        k: v
        for k, v in props.items()
        if k not in ("timeToLive", "destinationContainerUrl", "outputFormat")
    }
    render, echo = _avatar(avatar_fields, "properties", "kBitrate", voice)
    echo = {"timeToLive": ttl_text or "P31D", "outputFormat": PREVIEW_OUTPUT_FORMAT} | echo
    return JobRequest(
        surface="preview",
        input_kind=input_kind,
        inputs=inputs,
        render=render,
        echo=echo,
        ttl_hours=ttl_seconds / 3600.0,
        ttl_echo=ttl_text or "P31D",
        custom_voices=voices,
        synthesis_config=synthesis,
        description=description,
        display_name=display_name,
        custom_properties=custom,
        destination=destination,
    )


def validate(surface: str, body: Any) -> JobRequest:
    """Validate a create body of ``surface``; raises :class:`ApiError` (400)."""
    try:
        return validate_ga(body) if surface == "ga" else validate_preview(body)
    except ApiError:
        raise
    except (TypeError, AttributeError) as exc:  # a shape the checks above did not foresee
        raise bad_request(f"The request body is invalid: {exc}") from None


def request_from_dict(data: dict[str, Any]) -> JobRequest:
    """Rebuild a :class:`JobRequest` stored as JSON (``dataclasses.asdict`` form)."""
    values = dict(data)
    values["render"] = RenderSettings(**values["render"])
    if values.get("destination") is not None:
        values["destination"] = Destination(**values["destination"])
    return JobRequest(**values)

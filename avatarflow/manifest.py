"""The manifest: pydantic models, YAML loading with locations, and ``defaults`` merging.

A manifest is read in two steps. :func:`load_manifest` validates the *shape* of the
file (unknown keys, wrong types) with every error located at its file, line and key
path. :meth:`Manifest.videos_resolved` then deep-merges ``defaults`` into every video
and checks what only a complete video can tell (a text source, a character).
"""

from __future__ import annotations

import datetime
import difflib
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from . import fastpath
from . import variants as variant_rules
from .errors import Location, ManifestError
from .userfiles import FileTooLarge, NotRegularFile, read_regular_file
from .yamlsafe import MAX_BYTES, KeyPath, LoadedYaml, format_path, load_yaml

VIDEO_ID_RE = re.compile(r"^[A-Za-z0-9._-]+$")
COLOR_RE = re.compile(r"^(#[0-9A-Fa-f]{8}|transparent)$")
SERVICE_ID_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,62}[a-zA-Z0-9]$")

ApiVersion = Literal["2024-08-01", "2024-04-15-preview", "3.1-preview1"]
PREVIEW_API = "3.1-preview1"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Point(_Strict):
    """A point or a size in pixels."""

    x: float
    y: float


class Crop(_Strict):
    """``avatarConfig.videoCrop``: the rectangle of the frame to keep."""

    top_left: Point
    bottom_right: Point


class Scene(_Strict):
    """``avatarConfig.scene`` of photo avatars."""

    zoom: float | None = Field(default=None, gt=0)
    position_x: float | None = Field(default=None, ge=-1, le=1)
    position_y: float | None = Field(default=None, ge=-1, le=1)
    rotation_x: float | None = Field(default=None, ge=-3.1416, le=3.1416)
    rotation_y: float | None = Field(default=None, ge=-3.1416, le=3.1416)
    rotation_z: float | None = Field(default=None, ge=-3.1416, le=3.1416)
    amplitude: float | None = Field(default=None, gt=0, le=1)


class AvatarSettings(_Strict):
    """Who appears in the video (``avatarConfig`` character fields)."""

    character: str | None = Field(default=None, min_length=1)
    style: str | None = None
    customized: bool | None = None
    photo_avatar_base_model: Literal["vasa-1"] | None = None
    scene: Scene | None = None
    use_built_in_voice: bool | None = None
    position: Point | None = None
    size: Point | None = None


class VideoSettings(_Strict):
    """How the video is encoded and framed (``avatarConfig`` output fields)."""

    format: Literal["mp4", "webm"] | None = None
    codec: Literal["h264", "hevc", "vp9", "av1"] | None = None
    bitrate_kbps: int | None = Field(default=None, gt=0)
    subtitles: Literal["external_file", "soft_embedded", "hard_embedded", "none"] | None = None
    background_color: str | None = Field(default=None, pattern=COLOR_RE.pattern)
    background_image: str | None = Field(default=None, pattern=r"^https?://")
    crop: Crop | None = None
    resolution: Point | None = None


class SynthesisSettings(_Strict):
    """``synthesisConfig`` prosody of PlainText videos (the voice is ``voice``)."""

    style: str | None = None
    rate: str | None = None
    pitch: str | None = None
    volume: str | None = None


class VideoFields(_Strict):
    """Everything a video may set; also the shape of ``defaults``."""

    template: str | None = None
    input_kind: Literal["ssml", "plain_text"] | None = None
    voice: str | None = Field(default=None, min_length=1)
    avatar: AvatarSettings | None = None
    video: VideoSettings | None = None
    synthesis: SynthesisSettings | None = None
    custom_voices: dict[str, str] | None = None
    vars: dict[str, Any] | None = None
    ttl_hours: int | None = Field(default=None, ge=1, le=744)
    description: str | None = None

    @field_validator("custom_voices")
    @classmethod
    def _deployment_ids(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for name, deployment in (value or {}).items():
            if not SERVICE_ID_RE.match(deployment):
                raise ValueError(
                    f"custom voice {name!r}: deployment id {deployment!r} is not valid"
                )
        return value


class Variant(VideoFields):
    """One value of a ``variants`` dimension: settings merged over ``defaults``."""

    primary: bool = False
    """The value whose videos keep the entry's plain id and output path."""


class VideoEntry(VideoFields):
    """One item of ``videos``."""

    id: str
    text: str | None = None
    text_file: str | None = None
    ssml: str | None = None
    variants: dict[str, list[str]] | None = None
    """Render this video only for these values of a dimension (all values by default)."""

    @field_validator("id")
    @classmethod
    def _id_chars(cls, value: str) -> str:
        if not VIDEO_ID_RE.match(value) or value in {".", ".."}:
            raise ValueError(f"id {value!r} may only use letters, digits, '.', '_' and '-'")
        if len(value) > 120:
            raise ValueError("id is longer than 120 characters")
        return value


class StateSettings(_Strict):
    """Where the Azure target keeps its state; credentials come from the environment only.

    The draft target (``--emulator``) always keeps its own local state: drafts never
    reach a team's shared state.
    """

    backend: Literal["local", "azureblob"] = "local"
    container_url: str | None = Field(default=None, pattern=r"^https?://[^?#\s]+$")
    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=200)

    @field_validator("container_url", mode="before")
    @classmethod
    def _no_credentials(cls, value: Any) -> Any:
        if isinstance(value, str) and "?" in value:
            raise ValueError(
                "container_url must not carry a query (a SAS belongs in the environment: "
                "AZURE_STORAGE_SAS_TOKEN)"
            )
        return value

    @model_validator(mode="after")
    def _container_for_azureblob(self) -> StateSettings:
        if self.backend == "azureblob" and not self.container_url:
            raise ValueError("backend azureblob needs container_url")
        if self.backend == "local" and (self.container_url or self.name):
            raise ValueError("container_url and name are only used with backend: azureblob")
        return self


class StoreSettings(_Strict):
    """The team's video store: an Azure Blob container every verified output goes to.

    Credentials come from the environment, as for the remote state. Drafts never go there.
    """

    container_url: str | None = Field(default=None, pattern=r"^https?://[^?#\s]+$")

    @field_validator("container_url", mode="before")
    @classmethod
    def _no_credentials(cls, value: Any) -> Any:
        return StateSettings._no_credentials(value)


class ServiceSettings(_Strict):
    """Which API surface and endpoint to use. Keys come from the environment only."""

    api_version: ApiVersion = "2024-08-01"
    region: str | None = None
    endpoint: str | None = None
    state: StateSettings = StateSettings()
    store: StoreSettings = StoreSettings()
    pack: bool = False
    """Send videos that differ only in their input as one multi-input job (GA only)."""
    destination_container_url: str | None = None
    """Blob container the service writes every output to; no SAS here (see destination)."""
    destination_path: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$"
    )
    """Folder inside the container; outputs land in ``{destination_path}/{job id}/``."""
    pack_max_inputs: int = Field(default=1000, ge=1, le=1000)
    """Inputs per packed job (the service allows 1,000); lower it to spread the renders."""

    @field_validator("api_version", mode="before")
    @classmethod
    def _unquoted_date(cls, value: Any) -> Any:
        # YAML reads an unquoted 2024-08-01 as a date; the user meant the version string.
        return value.isoformat() if isinstance(value, datetime.date) else value

    @field_validator("destination_container_url")
    @classmethod
    def _plain_container_url(cls, value: str | None) -> str | None:
        # The value is never quoted back: it may carry a SAS the user pasted by mistake.
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError(
                "must be the plain container URL without a query string: the SAS comes from "
                "AZURE_STORAGE_SAS_TOKEN or AZURE_STORAGE_CONNECTION_STRING at run time, "
                "never from the manifest"
            )
        if parts.scheme not in ("http", "https") or not parts.netloc or not parts.path.strip("/"):
            raise ValueError(
                "must be a blob container URL like https://ACCOUNT.blob.core.windows.net/CONTAINER"
            )
        return value.rstrip("/")

    @model_validator(mode="after")
    def _packing_rules(self) -> ServiceSettings:
        if self.pack and not self.destination_container_url:
            raise ValueError(
                "pack: true needs destination_container_url "
                "(the service writes multi-input jobs there)"
            )
        if self.pack and self.api_version == PREVIEW_API:
            raise ValueError(
                f"pack: true needs the GA API; api_version {PREVIEW_API} has no destinationPath"
            )
        if self.destination_container_url and self.api_version == PREVIEW_API:
            raise ValueError(
                f"destination_container_url needs the GA API; api_version {PREVIEW_API} "
                "has no destinationPath"
            )
        if self.destination_path and not self.destination_container_url:
            raise ValueError("destination_path needs destination_container_url")
        return self


class Pricing(_Strict):
    """Prices overriding the shipped table (see :mod:`avatarflow.pricing`)."""

    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    as_of: str | None = None
    avatar_per_minute: float | None = Field(default=None, ge=0)
    custom_avatar_per_minute: float | None = Field(default=None, ge=0)
    neural_per_million_characters: float | None = Field(default=None, ge=0)
    custom_neural_per_million_characters: float | None = Field(default=None, ge=0)

    @field_validator("as_of", mode="before")
    @classmethod
    def _unquoted_date(cls, value: Any) -> Any:
        return value.isoformat() if isinstance(value, datetime.date) else value


class Budget(_Strict):
    """Limits an apply refuses to exceed, checked before anything is sent."""

    max_cost: float | None = Field(default=None, ge=0)
    max_renders: int | None = Field(default=None, ge=0)


class Manifest(_Strict):
    """The whole manifest file."""

    version: Literal[1] = 1
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=40)
    output_dir: str = "build/videos"
    draft_dir: str | None = None
    templates_dir: str = "templates"
    state_dir: str = ".avatarflow"
    service: ServiceSettings = ServiceSettings()
    defaults: VideoFields = VideoFields()
    variants: dict[str, dict[str, Variant]] = {}
    """Dimensions (``locale``…) of named values; every video is rendered per combination."""
    pricing: Pricing | None = None
    budget: Budget | None = None
    videos: list[VideoEntry] = Field(min_length=1)


@dataclass(frozen=True, slots=True)  # slots: one per video of a large catalogue
class ResolvedVideo:
    """A video with ``defaults`` merged in, ready to be rendered."""

    id: str
    index: int
    fields: VideoEntry
    location: Location
    yaml: LoadedYaml | None = field(default=None, repr=False, compare=False)
    variant: variant_rules.Combination = ()
    output_stem: str = ""  # the output's path below the output folder, without extension

    def locate(self, *keys: str) -> Location:
        """Where ``keys`` (say ``"video", "codec"``) is set for this video.

        The most specific key that exists wins: the video's own entry first, then
        ``defaults``; the video itself when neither sets any part of the path.
        """
        if self.yaml is None:
            return self.location
        for depth in range(len(keys), 0, -1):
            paths: tuple[KeyPath, ...] = (
                ("videos", self.index, *keys[:depth]),
                *(("variants", name, value, *keys[:depth]) for name, value in self.variant),
                ("defaults", *keys[:depth]),
            )
            for path in paths:
                line = self.yaml.lines.get(path)
                if line is not None:
                    return Location(self.location.file, line, format_path(path))
        return self.location

    @property
    def source(self) -> Literal["template", "ssml", "plain_text"]:
        if self.fields.ssml is not None:
            return "ssml"
        if self.fields.input_kind == "plain_text":
            return "plain_text"
        return "template"


@dataclass(frozen=True)
class LoadedManifest:
    """A validated manifest and where it lives."""

    path: Path
    model: Manifest
    yaml: LoadedYaml
    display_path: str
    sha256: str = ""  # of the bytes parsed, for the plan memo

    @property
    def root(self) -> Path:
        return self.path.parent

    def location(self, path: KeyPath) -> Location:
        return Location(self.display_path, self.yaml.line_of(path), format_path(path) or None)

    def resolve_path(self, relative: str) -> Path:
        return (self.root / relative).resolve()

    @cached_property
    def templates_dir(self) -> Path:
        return self.resolve_path(self.model.templates_dir)

    def videos_resolved(self) -> list[ResolvedVideo]:
        resolve = self.resolver()
        dimensions, primary, bases = self._variant_bases()
        merged_settings: dict[str, BaseModel] = {}  # shared by the variants' videos
        field_sets: dict[frozenset[str], set[str]] = {}
        resolved: list[ResolvedVideo] = []
        seen: dict[str, int] = {}
        folded_ids: dict[str, int] = {}
        for index, entry in enumerate(self.model.videos):
            if entry.id in seen:
                raise ManifestError(
                    f"duplicate video id {entry.id!r} (first used at videos[{seen[entry.id]}])",
                    self.location(("videos", index, "id")),
                )
            seen[entry.id] = index
            # intro and Intro would share one output file on macOS and Windows.
            folded = entry.id.casefold()
            first = folded_ids.setdefault(folded, index)
            if first != index:
                other = self.model.videos[first].id
                raise ManifestError(
                    f"video id {entry.id!r} differs from {other!r} (videos[{first}]) only by "
                    "case; their output files would be one file on macOS and Windows",
                    self.location(("videos", index, "id")),
                )
            if not dimensions:
                resolved.append(resolve(index, entry))
                continue
            self._check_restriction(entry, index, dimensions)
            loc = self.location(("videos", index))
            for combo in variant_rules.combinations(dimensions, entry.variants):
                settings, dumped = bases[combo]
                fields = _resolve_entry(settings, dumped, entry, merged_settings)
                fields = _with_dimension_vars(fields, combo)
                fastpath.share_fields_set(fields, field_sets)
                _check_sources(fields, loc)
                video_id = variant_rules.video_id(entry.id, combo, primary)
                stem = variant_rules.output_stem(entry.id, combo, primary)
                resolved.append(ResolvedVideo(video_id, index, fields, loc, self.yaml, combo, stem))
        return resolved

    def _variant_bases(
        self,
    ) -> tuple[
        dict[str, list[str]], dict[str, str], dict[variant_rules.Combination, tuple[Any, Any]]
    ]:
        """The dimensions' values, each dimension's primary value, and for every
        combination the ``defaults`` with its variants merged in (as a model and dumped)."""
        dimensions: dict[str, list[str]] = {}
        primary: dict[str, str] = {}
        for name, values in self.model.variants.items():
            where = self.location(("variants", name))
            problem = variant_rules.problem_with_name("dimension", name)
            if problem:
                raise ManifestError(problem, where)
            if not values:
                raise ManifestError(f"variant dimension {name!r} has no values", where)
            for value, settings in values.items():
                problem = variant_rules.problem_with_name("value", value)
                if problem:
                    raise ManifestError(problem, self.location(("variants", name, value)))
                if settings.primary:
                    if name in primary:
                        raise ManifestError(
                            f"only one value of {name!r} may be primary "
                            f"({primary[name]!r} is already)",
                            self.location(("variants", name, value, "primary")),
                        )
                    primary[name] = value
            dimensions[name] = list(values)
        base = self.model.defaults.model_dump(exclude_unset=True)
        bases: dict[variant_rules.Combination, tuple[Any, Any]] = {}
        for combo in variant_rules.combinations(dimensions, None) if dimensions else []:
            dumped = base
            for name, value in combo:
                override = self.model.variants[name][value].model_dump(
                    exclude_unset=True, exclude={"primary"}
                )
                dumped = deep_merge(dumped, override)
            bases[combo] = (VideoFields.model_validate(dumped), dumped)
        return dimensions, primary, bases

    def _check_restriction(
        self, entry: VideoEntry, index: int, dimensions: dict[str, list[str]]
    ) -> None:
        """A video's own ``variants`` must name existing dimensions and values."""
        for name, values in (entry.variants or {}).items():
            where = self.location(("videos", index, "variants", name))
            if name not in dimensions:
                hint = difflib.get_close_matches(name, list(dimensions), n=1)
                known = ", ".join(dimensions) or "none"
                raise ManifestError(
                    f"unknown variant dimension {name!r}"
                    + (f" (did you mean '{hint[0]}'?)" if hint else f"; dimensions: {known}"),
                    where,
                )
            for value in values:
                if value not in dimensions[name]:
                    hint = difflib.get_close_matches(value, dimensions[name], n=1)
                    raise ManifestError(
                        f"unknown {name} {value!r}"
                        + (f" (did you mean '{hint[0]}'?)" if hint else "")
                        + f"; {name} values: {', '.join(dimensions[name])}",
                        where,
                    )
            if not values:
                raise ManifestError(f"lists no {name} to render this video in", where)

    def resolver(self) -> Callable[[int, VideoEntry], ResolvedVideo]:
        """Resolves the entry found at ``videos[index]``; videos resolved by one resolver
        share their merged settings."""
        defaults = self.model.defaults
        base = defaults.model_dump(exclude_unset=True)
        merged_settings: dict[str, BaseModel] = {}
        field_sets: dict[frozenset[str], set[str]] = {}

        def resolve(index: int, entry: VideoEntry) -> ResolvedVideo:
            loc = self.location(("videos", index))
            fields = _resolve_entry(defaults, base, entry, merged_settings)
            fastpath.share_fields_set(fields, field_sets)
            _check_sources(fields, loc)
            return ResolvedVideo(entry.id, index, fields, loc, self.yaml)

        return resolve


def _with_dimension_vars(fields: VideoEntry, combo: variant_rules.Combination) -> VideoEntry:
    """Each dimension's value as a template variable (``{{ locale }}``); it wins over a
    var of the same name, so that a path or a line built from it never names another."""
    merged = dict(fields.vars or {})
    merged.update(combo)
    return fields.model_copy(update={"vars": merged})


def _resolve_entry(
    defaults: VideoFields, base: dict[str, Any], entry: VideoEntry, shared: dict[str, BaseModel]
) -> VideoEntry:
    """``entry`` with ``defaults`` (dumped as ``base``) deep-merged in.

    Settings models (``avatar``, ``video``...) are frozen, so videos share them instead
    of each holding a copy: one that only one side sets is passed on as is, and the
    merge of both sides is validated once per distinct result (in ``shared``) rather
    than once per video.
    """
    override = entry.model_dump(exclude_unset=True)
    merged = deep_merge(base, override)
    for name in _SETTINGS_FIELDS:
        if name in override and name not in base:
            merged[name] = getattr(entry, name)
        elif name in base and name not in override:
            merged[name] = getattr(defaults, name)
        elif isinstance(merged.get(name), dict):
            key = f"{name}={merged[name]!r}"  # repr tells 1 from 1.0 and True
            if key not in shared:
                shared[key] = _SETTINGS_FIELDS[name].model_validate(merged[name])
            merged[name] = shared[key]
    return VideoEntry.model_validate(merged)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Merge ``override`` into ``base``; nested mappings merge, everything else replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _check_sources(fields: VideoEntry, loc: Location) -> None:
    given = [name for name in ("text", "text_file", "ssml") if getattr(fields, name) is not None]
    if not given:
        raise ManifestError("needs one of 'text', 'text_file' or 'ssml'", loc)
    if len(given) > 1:
        raise ManifestError(f"give only one of 'text', 'text_file', 'ssml' (found {given})", loc)
    if fields.ssml is not None and fields.input_kind == "plain_text":
        raise ManifestError("'ssml' cannot be combined with input_kind: plain_text", loc)
    if fields.avatar is None or not fields.avatar.character:
        raise ManifestError("avatar.character is required (set it here or in defaults)", loc)


def load_manifest(path: Path | str, display_path: str | None = None) -> LoadedManifest:
    """Read and validate the manifest at ``path``."""
    path = Path(path)
    shown = display_path or path.name
    try:
        raw = read_regular_file(path, MAX_BYTES)
    except FileNotFoundError:
        raise ManifestError("manifest file not found", Location(shown)) from None
    except OSError as exc:
        raise ManifestError(f"cannot read manifest: {exc.strerror}", Location(shown)) from None
    except NotRegularFile as exc:
        raise ManifestError(f"cannot read manifest: {exc}", Location(shown)) from None
    except FileTooLarge as exc:
        raise ManifestError(f"file is {exc}", Location(shown)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ManifestError(
            f"not UTF-8 text (byte {exc.start}); is it a binary file?", Location(shown, line)
        ) from None
    loaded = load_yaml(text, shown)
    if not isinstance(loaded.data, dict):
        raise ManifestError("the manifest must be a YAML mapping", Location(shown, 1))
    try:
        model = Manifest.model_validate(loaded.data)
    except ValidationError as exc:
        raise _located_error(exc, loaded, shown) from None
    loaded.data = None  # the model holds it all now; a large catalogue keeps one copy
    field_sets: dict[frozenset[str], set[str]] = {}
    for entry in model.videos:
        fastpath.share_fields_set(entry, field_sets)
        for name in _SETTINGS_FIELDS:
            settings = getattr(entry, name)
            if settings is not None:
                fastpath.share_fields_set(settings, field_sets)
    digest = hashlib.sha256(raw).hexdigest()
    return LoadedManifest(path.resolve(), model, loaded, shown, digest)


# Keys that once were per video: the container is named once, its SAS never in the file.
_SERVICE_ONLY_KEYS = frozenset({"destination_container_url", "destination_path"})


def _located_error(exc: ValidationError, loaded: LoadedYaml, file: str) -> ManifestError:
    """Turn the first pydantic error into one located, actionable line.

    Unknown keys go first: a typo of a required key (``vidoes:``) is better reported as
    the typo, with its suggestion, than as the required key that is missing.
    """
    errors = exc.errors()
    error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    path: KeyPath = tuple(p for p in error["loc"] if isinstance(p, str | int))
    # pydantic adds the union member name (e.g. "literal['mp4']") to the loc; drop it.
    path = tuple(p for p in path if not (isinstance(p, str) and ("[" in p or "'" in p)))
    location = Location(file, loaded.line_of(path), format_path(path) or None)
    kind = error["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(path[:-1])
        hint = difflib.get_close_matches(str(path[-1]), allowed, n=1)
        message = "unknown key" + (f" (did you mean '{hint[0]}'?)" if hint else "")
        if path[-1] in _SERVICE_ONLY_KEYS:
            message += f"; set service.{path[-1]} instead (the SAS comes from the environment)"
        elif not hint and allowed:
            message += f"; allowed: {', '.join(sorted(allowed))}"
        return ManifestError(message, location)
    if kind == "missing":
        return ManifestError("required key is missing", location)
    if path == ("version",):
        return ManifestError(
            f"unsupported manifest version {error['input']!r}; this avatarflow reads version 1",
            location,
        )
    if kind == "string_pattern_mismatch" and path and path[-1] in _PATTERN_HINTS:
        return ManifestError(f"{error['input']!r} {_PATTERN_HINTS[str(path[-1])]}", location)
    message = str(error["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if kind == "string_type" and isinstance(error["input"], int | float):
        # YAML read `id: 12` or `id: yes` as a number or a boolean
        message += " (YAML read a number or a boolean here: put the value in quotes)"
    return ManifestError(message, location)


_PATTERN_HINTS = {
    "background_color": "is not a colour: use #RRGGBBAA (8 hex digits) or 'transparent'",
    "background_image": "is not a URL: use an http:// or https:// address",
    "container_url": "is not a container URL: use https://ACCOUNT.blob.core.windows.net/CONTAINER",
    "name": "may only use letters, digits, '.', '_' and '-', starting with a letter or digit",
}


def _allowed_keys(path: KeyPath) -> list[str]:
    """Field names of the model found at ``path`` inside :class:`Manifest`."""
    model: Any = Manifest
    for part in path:
        if isinstance(part, int):
            continue
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            return []
        model = _model_of(fields[part].annotation)
    fields = getattr(model, "model_fields", None)
    return list(fields) if fields else []


def _model_of(annotation: Any) -> Any:
    """The BaseModel inside ``X | None`` or ``list[X]``, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


# The fields of a video that hold a (frozen) settings model, and that model.
_SETTINGS_FIELDS: dict[str, type[BaseModel]] = {
    name: model
    for name, info in VideoFields.model_fields.items()
    if (model := _model_of(info.annotation)) is not None
}

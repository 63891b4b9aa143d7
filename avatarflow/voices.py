"""The catalogue of Azure neural voices: names, locales, multilingual, styles.

A voice name that the service does not know is refused by Azure only after the job was
submitted; checked here, ``validate`` finds it first and says which name was meant.

Two sources, the first found wins:

1. the user's cache, ``voices.json`` in avatarflow's cache folder, written by
   ``avatarflow catalog refresh`` from the service's own list
   (``GET /cognitiveservices/voices/list`` on the region's text to speech host);
2. the shipped ``avatarflow/data/voices.json``, a common subset of Microsoft's list.

Voices named in a video's ``custom_voices`` are the user's own deployments: never in a
catalogue, never checked.
"""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, Location, ManifestError
from .statcache import write_json
from .suggest import closest
from .usercache import VOICES_FILE, cache_folder
from .userfiles import UnsuitableFile, read_regular_file

if TYPE_CHECKING:
    from .manifest import ResolvedVideo

CACHE_FILE = VOICES_FILE
VOICES_PATH = "/cognitiveservices/voices/list"
MAX_LIST_BYTES = 16 * 1024 * 1024  # Azure's full list is about 1.5 MB
MAX_VOICES = 20_000
_LOCALE_RE = re.compile(r"^([a-z]{2,3}-[A-Z][A-Za-z0-9]+)-")
# How many names of a locale a hint lists.
_HINT_NAMES = 4


@dataclass(frozen=True)
class Voice:
    name: str
    locale: str
    multilingual: bool
    styles: tuple[str, ...] | None  # None: not known (the shipped subset), so not checked


@dataclass(frozen=True)
class VoiceCatalog:
    source: str
    as_of: str
    origin: str  # "shipped" or the cache file it came from
    voices: Mapping[str, Voice]  # by lower-case name

    def find(self, name: str) -> Voice | None:
        return self.voices.get(name.lower())

    def by_locale(self, locale: str) -> list[Voice]:
        return [v for v in self.voices.values() if v.locale.lower() == locale.lower()]

    def problem(self, name: str) -> str | None:
        """Why ``name`` is not a voice, with the name most likely meant; None if it is."""
        if self.find(name) is not None:
            return None
        message = f"unknown voice {name!r}"
        names = [v.name for v in self.voices.values()]
        hint = closest(name, names)
        if hint:
            return f"{message} (did you mean '{hint}'?)"
        if "-" not in name:  # "Andrew": the locale prefix is missing
            starts = [n for n in names if n.split("-", 2)[-1].lower().startswith(name.lower())]
            if starts:
                shown = ", ".join(f"'{n}'" for n in sorted(starts, key=len)[:_HINT_NAMES])
                return f"{message}: a voice name starts with its locale (did you mean {shown}?)"
        found = _LOCALE_RE.match(name)
        locales = sorted({v.locale for v in self.voices.values()})
        if found and found.group(1).lower() in {loc.lower() for loc in locales}:
            same = [v.name for v in self.by_locale(found.group(1))][:_HINT_NAMES]
            return f"{message}; {found.group(1)} voices include {', '.join(same)}, …"
        if found:
            near = closest(found.group(1), locales)
            if near:
                return (
                    f"{message}: no voices for locale {found.group(1)!r} (did you mean {near!r}?)"
                )
        return f"{message}; {self.describe()}"

    def describe(self) -> str:
        where = "shipped catalogue" if self.origin == "shipped" else "catalogue refreshed"
        return (
            f"{where} of {len(self.voices)} voices as of {self.as_of}; "
            "update it with 'avatarflow catalog refresh'"
        )


def cache_path() -> Path:
    return cache_folder() / CACHE_FILE


def _parse(raw: Any, origin: str) -> VoiceCatalog:
    if not isinstance(raw, dict) or not isinstance(raw.get("voices"), list):
        raise ValueError("expected an object with a 'voices' list")
    voices: dict[str, Voice] = {}
    for item in raw["voices"][:MAX_VOICES]:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ValueError("every voice needs a 'name'")
        styles = item.get("styles")
        if styles is not None and (
            not isinstance(styles, list) or not all(isinstance(s, str) for s in styles)
        ):
            raise ValueError(f"voice {item['name']!r}: 'styles' must list names")
        voices[item["name"].lower()] = Voice(
            item["name"],
            str(item.get("locale", "")),
            bool(item.get("multilingual")),
            None if styles is None else tuple(styles),
        )
    return VoiceCatalog(str(raw.get("source", "")), str(raw.get("as_of", "")), origin, voices)


def _shipped_text() -> str:
    return (Path(__file__).parent / "data" / "voices.json").read_text("utf-8")


@lru_cache(maxsize=4)
def _load(cache: str, stamp: tuple[int, int] | None) -> VoiceCatalog:
    if stamp is None:
        return _parse(json.loads(_shipped_text()), "shipped")
    try:
        return _parse(json.loads(read_regular_file(Path(cache), MAX_LIST_BYTES)), cache)
    except (OSError, UnsuitableFile, ValueError) as exc:
        raise ConfigError(
            f"voice catalogue {cache} cannot be read ({exc}); run 'avatarflow catalog refresh' "
            "or delete the file"
        ) from None


def load() -> VoiceCatalog:
    """The user's refreshed catalogue if there is one, else the shipped one."""
    path = cache_path()
    try:
        st = path.stat()
    except OSError:
        return _load(str(path), None)
    return _load(str(path), (st.st_mtime_ns, st.st_size))


# -- checks ---------------------------------------------------------------------------
def check_video(
    video: ResolvedVideo,
    root: ET.Element | None,
    ssml_loc: Location,
    catalogue: VoiceCatalog | None = None,
) -> list[str]:
    """Refuse a voice the catalogue does not know, and a style its voice does not have.

    ``root`` is the rendered SSML (None for PlainText); its ``<voice name>`` elements are
    checked too, at ``ssml_loc``. Custom voices are exempt: a note says so for each used.
    """
    fields = video.fields
    custom = {name.lower() for name in (fields.custom_voices or {})}
    used: set[str] = set()
    if fields.voice and fields.voice.lower() in custom:
        used.add(fields.voice)
    catalogue = catalogue or load()
    if fields.voice and fields.voice.lower() not in custom and not catalogue.find(fields.voice):
        problem = catalogue.problem(fields.voice)
        if problem:
            raise ManifestError(problem, video.locate("voice"))
    style = fields.synthesis.style if fields.synthesis else None
    if style and fields.voice and root is None:
        _check_style(catalogue, fields.voice, style, custom, video.locate("synthesis", "style"))
    if root is not None:
        for name, style_used in _ssml_voices(root):
            if name.lower() in custom:
                used.add(name)
                continue
            if not style_used and catalogue.find(name):
                continue
            problem = catalogue.problem(name)
            if problem:
                raise ManifestError(problem + " (in the SSML)", ssml_loc)
            if style_used:
                _check_style(catalogue, name, style_used, custom, ssml_loc)
    return [
        f"custom voice {name} is your own deployment: not checked against the voice catalogue"
        for name in sorted(used)
    ]


def _check_style(
    catalogue: VoiceCatalog, voice: str, style: str, custom: set[str], loc: Location
) -> None:
    known = catalogue.find(voice)
    if known is None or known.styles is None or voice.lower() in custom or style in known.styles:
        return
    if not known.styles:
        raise ManifestError(f"voice {known.name} has no speaking styles (style {style!r})", loc)
    hint = closest(style, known.styles)
    also = f" (did you mean '{hint}'?)" if hint else ""
    raise ManifestError(
        f"voice {known.name} has no style {style!r}{also}; styles: {', '.join(known.styles)}", loc
    )


_SSML_NS = "{http://www.w3.org/2001/10/synthesis}"
_MSTTS_NS = "{http://www.w3.org/2001/mstts}"


def _ssml_voices(root: ET.Element) -> Iterable[tuple[str, str | None]]:
    """(voice name, express-as style or None) for each ``<voice>`` element. Found by tag
    (in C), not by walking every element: plan renders this for every video."""
    for tag in (f"{_SSML_NS}voice", "voice"):
        for element in root.iter(tag):
            name = element.get("name")
            if not name:
                continue
            styles = [
                e.get("style")
                for express in (f"{_MSTTS_NS}express-as", "express-as")
                for e in element.iter(express)
            ]
            if not styles:
                yield name, None
            for style in styles:
                yield name, style


# -- the service's list ---------------------------------------------------------------
def from_service_list(raw: Any) -> list[dict[str, Any]]:
    """The service's voice list (``ShortName``, ``Locale``, ``StyleList``…) as catalogue
    entries; anything else in the answer is refused (it is input like any other)."""
    if not isinstance(raw, list):
        raise ValueError("the voice list is not a JSON array")
    if len(raw) > MAX_VOICES:
        raise ValueError(f"the voice list has more than {MAX_VOICES} voices")
    entries = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("ShortName"), str):
            raise ValueError("a voice of the list has no ShortName")
        styles = item.get("StyleList") or []
        if not isinstance(styles, list) or not all(isinstance(s, str) for s in styles):
            raise ValueError(f"voice {item['ShortName']!r}: StyleList is not a list of names")
        name = item["ShortName"]
        entries.append(
            {
                "name": name,
                "locale": str(item.get("Locale", "")),
                "multilingual": bool(item.get("SecondaryLocaleList")) or "Multilingual" in name,
                "styles": sorted(styles),
            }
        )
    return entries


def to_service_list(catalogue: VoiceCatalog) -> list[dict[str, Any]]:
    """The catalogue in the service's shape (what the emulator answers)."""
    out = []
    for voice in catalogue.voices.values():
        short = voice.name[len(voice.locale) + 1 :] if voice.locale else voice.name
        item: dict[str, Any] = {
            "Name": f"Microsoft Server Speech Text to Speech Voice ({voice.locale}, {short})",
            "ShortName": voice.name,
            "Locale": voice.locale,
            "VoiceType": "Neural",
            "Status": "GA",
        }
        if voice.styles:
            item["StyleList"] = list(voice.styles)
        if voice.multilingual:
            item["SecondaryLocaleList"] = ["en-US", "de-DE", "fr-FR", "es-ES", "ja-JP"]
        out.append(item)
    return out


def shipped() -> VoiceCatalog:
    return _load("", None)


def save(entries: list[dict[str, Any]], source: str, as_of: str) -> Path:
    """Write the refreshed catalogue into the user's cache (temp file + rename)."""
    path = cache_path()
    if not write_json(path, {"source": source, "as_of": as_of, "voices": entries}):
        raise ConfigError(f"cannot write the voice catalogue {path}")
    return path


def refresh(url: str, headers: Mapping[str, str]) -> tuple[Path, int]:
    """Read the service's voice list at ``url`` into the user's cache; (file, voices)."""
    import email.utils

    import httpx

    from .errors import ServiceError, TransportError
    from .secrets import redact

    try:
        with (
            httpx.Client(timeout=httpx.Timeout(60.0, connect=10.0)) as client,
            client.stream("GET", url, headers=dict(headers)) as response,
        ):
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_LIST_BYTES:
                    raise ServiceError("the voice list is larger than 16 MB")
            if response.status_code != 200:
                text = redact(body[:300].decode("utf-8", "replace"))
                raise ServiceError(
                    f"the voice list was refused: {text}", status_code=response.status_code
                )
            date = response.headers.get("Date")
    except httpx.HTTPError as exc:
        raise TransportError(f"cannot read the voice list: {redact(str(exc))}") from None
    try:
        entries = from_service_list(json.loads(bytes(body)))
    except ValueError as exc:
        raise ServiceError(f"the voice list is not usable: {exc}") from None
    if not entries:
        raise ServiceError("the service listed no voices; the catalogue was left as it was")
    as_of = ""
    if date:
        try:
            as_of = email.utils.parsedate_to_datetime(date).date().isoformat()
        except (TypeError, ValueError):
            as_of = ""
    source = "the service's voice list (" + redact(url.split("?", 1)[0]) + ")"
    return save(entries, source, as_of or "unknown"), len(entries)


def voices_url(endpoint: str | None, region: str | None) -> str:
    """The voice list's URL: the region's text to speech host, or below an endpoint."""
    if endpoint:
        return endpoint.rstrip("/") + VOICES_PATH
    if region:
        name = region.strip().lower()
        if not re.fullmatch(r"[a-z][a-z0-9]{1,39}", name):
            raise ConfigError(f"{region!r} is not an Azure region name (e.g. westeurope)")
        return f"https://{name}.tts.speech.microsoft.com{VOICES_PATH}"
    env_endpoint = os.environ.get("AZURE_SPEECH_ENDPOINT", "").strip()
    env_region = os.environ.get("AZURE_SPEECH_REGION", "").strip()
    if env_endpoint or env_region:
        return voices_url(env_endpoint or None, env_region or None)
    raise ConfigError(
        "no speech service configured: set AZURE_SPEECH_REGION (e.g. westeurope) or "
        "AZURE_SPEECH_ENDPOINT, and AZURE_SPEECH_KEY"
    )

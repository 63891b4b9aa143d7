"""Jinja2 → SSML: a sandboxed environment, XML-safe variables, and SSML checks."""

from __future__ import annotations

import hashlib
import os
import re
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta as jinja2_meta
from jinja2.loaders import split_template_path
from jinja2.sandbox import SandboxedEnvironment

from . import catalog, fastpath, suggest, varsubst, voices
from .errors import Location, ManifestError, TemplateBudgetError, TemplateError
from .manifest import LoadedManifest, ResolvedVideo
from .templatebudget import BudgetedEnvironment, render_bounded
from .userfiles import FileTooLarge, NotRegularFile, read_regular_file

GESTURE_PREFIX = "gesture."
# The service's request limit: a longer narration or template never fits in a request.
MAX_TEXT_BYTES = 500 * 1024
_DOCTYPE_RE = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_POSITION_RE = re.compile(r": line \d+, column \d+$")
_UNDEFINED_RE = re.compile(r"^'([A-Za-z_][A-Za-z0-9_]*)' is undefined$")


@dataclass(frozen=True)
class RenderedVideo:
    """A video whose input is final: the exact text or SSML the service will receive."""

    video: ResolvedVideo
    content: str
    input_kind: str  # "SSML" or "PlainText"
    sources: dict[str, str]  # what the input was made from, to explain re-renders
    warnings: tuple[str, ...] = field(default=())

    @property
    def id(self) -> str:
        return self.video.id


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class _TemplateRefused(jinja2.TemplateNotFound):
    """A template that exists but must not be read: outside the folder, not a regular
    file, or too large."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(name)
        self.reason = reason


class _ConfinedLoader(jinja2.FileSystemLoader):
    """Templates from the templates folder only. Jinja already refuses ``..`` and
    absolute names; a symlink leading out of the folder is refused here, and so is a
    FIFO, a device or a huge file, all before a byte is read."""

    def __init__(self, folder: Path) -> None:
        super().__init__(str(folder))
        self.folder = folder.resolve()

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        path = self.folder.joinpath(*split_template_path(template))
        if not path.exists():
            raise jinja2.TemplateNotFound(template)
        if not path.resolve().is_relative_to(self.folder):
            raise _TemplateRefused(template, "points outside the templates folder")
        try:
            source = _without_bom(read_regular_file(path, MAX_TEXT_BYTES).decode("utf-8"))
        except (NotRegularFile, FileTooLarge) as exc:
            raise _TemplateRefused(template, f"is {exc}") from None
        mtime = path.stat().st_mtime
        return source, str(path), lambda: path.exists() and path.stat().st_mtime == mtime


@lru_cache(maxsize=32)
def _environment(templates_dir: Path) -> SandboxedEnvironment:
    return BudgetedEnvironment(
        loader=_ConfinedLoader(templates_dir),
        undefined=jinja2.StrictUndefined,
        autoescape=True,
        keep_trailing_newline=True,
    )


@lru_cache(maxsize=1)
def _text_environment() -> SandboxedEnvironment:
    # Narration is plain text; it is escaped where the SSML template inserts it. It has
    # no templates to include: the empty loader makes {% include %} a clean "not found".
    return BudgetedEnvironment(
        loader=jinja2.DictLoader({}), undefined=jinja2.StrictUndefined, autoescape=False
    )


class Renderer:
    """Renders every video of one manifest; caches templates and narration files."""

    def __init__(self, manifest: LoadedManifest) -> None:
        self.manifest = manifest
        self.env = _environment(manifest.templates_dir)
        self._texts: dict[str, str] = {}
        self._displays: dict[str, str] = {}
        self._sources: dict[str, str] = {}
        self._root = str(manifest.root)  # resolved by load_manifest
        self._folders: dict[str, str] = {}
        # sha256 of each narration file's bytes as read, by its path in the manifest.
        self.input_digests: dict[str, str] = {}
        self._templates: dict[str, jinja2.Template] = {}
        self._last_context: tuple[ResolvedVideo, dict[str, Any]] | None = None
        self.voices = voices.load()  # once per run: one stat of the user's cache
        self._narrations: dict[str, jinja2.Template] = {}

    def render_all(self) -> list[RenderedVideo]:
        return [self.render(video) for video in self.manifest.videos_resolved()]

    def render(self, video: ResolvedVideo) -> RenderedVideo:
        fields = video.fields
        if fields.ssml is not None:
            loc = self.manifest.location(("videos", video.index, "ssml"))
            content = fields.ssml.strip()
            sources = {"ssml": sha256_text(content)}
            return self._checked(video, content, sources, loc, "the inline ssml", loc)
        raw_text, text_origin = self._narration(video)
        text = self._render_text(raw_text, video, text_origin)
        gesture_at = self._gesture_locator(video, raw_text, text_origin)
        sources = {"script": sha256_text(raw_text), "vars": _vars_digest(fields.vars)}
        if video.source == "plain_text":
            notes = voices.check_video(video, None, video.location, self.voices)
            return RenderedVideo(video, text.strip(), "PlainText", sources, tuple(notes))
        template = fields.template
        if not template:
            raise ManifestError(
                "no template: set 'template' (here or in defaults) or input_kind: plain_text",
                video.location,
            )
        content, template_source = self._render_template(template, video, text)
        sources["template"] = f"{template}@{sha256_text(template_source)[:16]}"
        sources["voice"] = fields.voice or ""
        where = Location(self._template_display(template))
        origin = f"the SSML rendered for video {video.id}"
        return self._checked(video, content.strip(), sources, where, origin, gesture_at)

    # -- narration -----------------------------------------------------------------
    def _narration(self, video: ResolvedVideo) -> tuple[str, Location]:
        fields = video.fields
        if fields.text is not None:
            return fields.text, self.manifest.location(("videos", video.index, "text"))
        assert fields.text_file is not None
        loc = self.manifest.location(("videos", video.index, "text_file"))
        relative = fields.text_file
        if varsubst.is_templated(relative):  # scripts/{{ locale }}/01.txt
            relative = self._render_path(relative, video, loc)
        text = self._read_text_file(relative, loc)
        return text, Location(relative)  # errors inside the narration name its file

    def _read_text_file(self, relative: str, loc: Location) -> str:
        if relative in self._texts:
            return self._texts[relative]
        path = self._resolve(relative)  # the manifest loader refuses NUL characters
        if not self._inside_root(path):
            raise ManifestError(f"text_file {relative!r} points outside the manifest's folder", loc)
        try:
            data = read_regular_file(path, MAX_TEXT_BYTES)
        except FileNotFoundError:
            hint = suggest.closest_path(self._root, relative)
            raise ManifestError(
                f"text file {relative!r} not found"
                + (f" (did you mean '{hint}'?)" if hint else ""),
                loc,
            ) from None
        except OSError as exc:
            raise ManifestError(
                f"cannot read text file {relative!r}: {exc.strerror}", loc
            ) from None
        except NotRegularFile as exc:
            raise ManifestError(f"cannot read text file {relative!r}: {exc}", loc) from None
        except FileTooLarge as exc:
            raise ManifestError(
                f"text file {relative!r} is {exc}, more than one request can carry", loc
            ) from None
        self.input_digests[relative] = hashlib.sha256(data).hexdigest()
        try:
            text = _without_bom(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise ManifestError(f"text file {relative!r} is not UTF-8 text", loc) from None
        if "\x00" in text:
            raise ManifestError(f"text file {relative!r} is binary", loc)
        self._texts[relative] = text
        return text

    def _resolve(self, relative: str) -> str:
        """``relative`` with symlinks resolved; a folder of scripts is resolved once.
        Plain strings: at 10,000 narration files, pathlib's objects cost more than the reads."""
        joined = os.path.join(self._root, relative)
        folder, name = os.path.split(joined)
        if name in ("", ".", "..") or os.path.islink(joined):
            return os.path.realpath(joined)
        real = self._folders.get(folder)
        if real is None:
            real = self._folders[folder] = os.path.realpath(folder)
        return os.path.join(real, name)

    def _inside_root(self, path: str) -> bool:
        return path == self._root or path.startswith(os.path.join(self._root, ""))

    def _render_path(self, template: str, video: ResolvedVideo, loc: Location) -> str:
        context = self._context(video)
        try:
            return render_bounded(_text_environment().from_string(template), context).strip()
        except Exception as exc:  # a path template is user code too
            raise TemplateError(f"in text_file: {_jinja_message(exc, context)}", loc) from None

    def _render_text(self, raw: str, video: ResolvedVideo, loc: Location) -> str:
        context = self._context(video)
        simple = fastpath.render_simple_narration(raw, context)
        if simple is not None:
            return simple
        # A narration file's own line; inline text keeps the line of its key.
        in_file = loc.key is None
        try:
            template = self._narrations.get(raw)
            if template is None:  # each distinct narration is compiled once per run
                template = self._narrations[raw] = _text_environment().from_string(raw)
            return render_bounded(template, context)
        except jinja2.TemplateSyntaxError as exc:
            where = Location(loc.file, exc.lineno) if in_file else loc
            raise TemplateError(
                f"template syntax error in narration: {exc.message}", where
            ) from None
        except Exception as exc:  # narration is user code: any failure is the user's to fix
            line = _template_line(exc, "<template>") if in_file else None
            where = Location(loc.file, line) if in_file else loc
            raise TemplateError(f"in narration: {_jinja_message(exc, context)}", where) from None

    def _gesture_locator(
        self, video: ResolvedVideo, raw_text: str, text_origin: Location
    ) -> Callable[[str], Location]:
        """Where a gesture is given: the var that holds it, else the narration line that
        names it, else the video."""

        def where(mark: str) -> Location:
            for name, value in (video.fields.vars or {}).items():
                if value in (mark, GESTURE_PREFIX + mark):
                    return video.locate("vars", name)
            for number, line in enumerate(raw_text.splitlines(), 1):
                if GESTURE_PREFIX + mark in line:
                    return (
                        Location(text_origin.file, number)
                        if text_origin.key is None
                        else (text_origin)
                    )
            return video.location

        return where

    # -- templates -----------------------------------------------------------------
    def _template_display(self, name: str) -> str:
        shown = self._displays.get(name)
        if shown is None:
            path = self.manifest.templates_dir / name
            try:
                shown = str(path.relative_to(self.manifest.root))
            except ValueError:
                shown = _relative(path, self.manifest.root)
            self._displays[name] = shown
        return shown

    def _template(self, name: str) -> jinja2.Template:
        """The template, looked up once per run: Jinja's own cache checks the file's
        mtime on every lookup, two stats per video."""
        template = self._templates.get(name)
        if template is None:
            template = self._templates[name] = self.env.get_template(name)
        return template

    def _template_source(self, template: jinja2.Template) -> str:
        """The text a template's ``sources`` digest covers, built once per run: its own,
        then that of each template it names in an include, import or extends, so that
        an edited partial is reported as "template changed"."""
        filename = template.filename
        if not filename:
            return ""
        if filename not in self._sources:
            texts = [_without_bom(Path(filename).read_text("utf-8"))]
            texts.extend(self._referenced_texts(texts[0], {str(template.name)}))
            self._sources[filename] = "\0".join(texts)
        return self._sources[filename]

    def _referenced_texts(self, source: str, seen: set[str]) -> list[str]:
        """Texts of the templates ``source`` names literally, depth first. A name built at
        render time cannot be followed; the request's own hash still covers its output."""
        texts: list[str] = []
        try:
            names = list(jinja2_meta.find_referenced_templates(self.env.parse(source)))
        except jinja2.TemplateError:
            return texts
        loader = self.env.loader
        for name in names:
            if name is None or name in seen or loader is None:
                continue
            seen.add(name)
            try:
                text = loader.get_source(self.env, name)[0]
            except (jinja2.TemplateError, _TemplateRefused, OSError, UnicodeDecodeError):
                continue  # "ignore missing", or refused when rendered
            texts.append(text)
            texts.extend(self._referenced_texts(text, seen))
        return texts

    def _render_template(self, name: str, video: ResolvedVideo, text: str) -> tuple[str, str]:
        shown = self._template_display(name)
        try:
            template = self._template(name)
        except _TemplateRefused as exc:
            raise ManifestError(
                f"template {name!r} {exc.reason}", video.locate("template")
            ) from None
        except jinja2.TemplateNotFound:
            folder = self.manifest.templates_dir
            known = sorted(self.env.list_templates()) if folder.is_dir() else []
            hint = f"; available: {', '.join(known)}" if known else ""
            raise ManifestError(
                f"unknown template {name!r} (looked in {_relative(folder, self.manifest.root)})"
                + hint,
                video.locate("template"),
            ) from None
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                f"template syntax error: {exc.message}", Location(shown, exc.lineno)
            ) from None
        except UnicodeDecodeError:
            raise TemplateError("not UTF-8 text", Location(shown)) from None
        except OSError as exc:
            raise TemplateError(f"cannot read template: {exc.strerror}", Location(shown)) from None
        context = self._context(video)
        context["text"] = text
        try:
            rendered = render_bounded(template, context)
        except jinja2.TemplateSyntaxError as exc:  # in a template it includes
            where = Location(self._template_display(exc.name), exc.lineno) if exc.name else None
            raise TemplateError(
                f"template syntax error: {exc.message} (video {video.id})",
                where or Location(shown),
            ) from None
        except Exception as exc:  # templates are user code: any failure is the user's to fix
            line = _template_line(exc, template.filename)
            raise TemplateError(
                f"{_jinja_message(exc, context)} (video {video.id})", Location(shown, line)
            ) from None
        return rendered, self._template_source(template)

    def _context(self, video: ResolvedVideo) -> dict[str, Any]:
        """The template context of ``video`` (a fresh dict; built once per video)."""
        last = self._last_context
        if last is not None and last[0] is video:
            return dict(last[1])
        context = self._build_context(video)
        self._last_context = (video, context)
        return dict(context)

    def _build_context(self, video: ResolvedVideo) -> dict[str, Any]:
        fields = video.fields
        avatar = fields.avatar.model_dump() if fields.avatar else {}
        described = {
            "id": video.id,
            "index": video.index,
            "voice": fields.voice,
            "avatar": avatar,
            "variant": dict(video.variant),
        }
        values = fields.vars or {}
        rendered = varsubst.render_vars(
            values, {"video": described}, lambda name: video.locate("vars", name)
        )
        context = dict(rendered)
        context["video"] = described
        return context

    # -- checks --------------------------------------------------------------------
    def _checked(
        self,
        video: ResolvedVideo,
        ssml: str,
        sources: dict[str, str],
        loc: Location,
        origin: str,
        gesture_loc: Location | Callable[[str], Location],
    ) -> RenderedVideo:
        root = parse_ssml(ssml, loc, origin)
        notes = voices.check_video(video, root, loc, self.voices)
        warnings = check_gestures(root, video, gesture_loc)
        return RenderedVideo(video, ssml, "SSML", sources, tuple(notes + warnings))


def parse_ssml(ssml: str, loc: Location, origin: str) -> ET.Element:
    """Parse SSML, refusing DTDs and entities (no XXE), and require a ``<speak>`` root.

    ``loc`` is where errors point; ``origin`` names the text for a line inside it.
    """
    if _DOCTYPE_RE.search(ssml):
        raise TemplateError("SSML must not contain a DOCTYPE or ENTITY declaration", loc)
    try:
        root = ET.fromstring(ssml)
    except ET.ParseError as exc:
        # expat's message ends with ": line N, column M"; say which text the line is in.
        message = _POSITION_RE.sub("", str(exc.msg))
        if exc.position:
            message += f" (line {exc.position[0]}, column {exc.position[1]} of {origin})"
        raise TemplateError(f"SSML is not well-formed XML: {message}", loc) from None
    if root.tag.rsplit("}", 1)[-1] != "speak":
        tag = root.tag.rsplit("}", 1)[-1]
        raise TemplateError(f"SSML root element must be <speak>, not <{tag}>", loc)
    return root


def check_gestures(
    root: ET.Element, video: ResolvedVideo, where: Location | Callable[[str], Location]
) -> list[str]:
    """Errors for gestures the chosen standard avatar does not have; warnings otherwise.
    ``where`` is the error's location, or tells it for a gesture name."""
    marks = [
        str(el.get("mark", ""))[len(GESTURE_PREFIX) :]
        for el in root.iter()
        if el.tag.rsplit("}", 1)[-1] == "bookmark"
        and str(el.get("mark", "")).startswith(GESTURE_PREFIX)
    ]
    if not marks:
        return []
    avatar = video.fields.avatar
    character = (avatar.character if avatar else None) or ""
    style = (avatar.style if avatar else None) or ""
    custom = bool(avatar and (avatar.customized or avatar.photo_avatar_base_model))
    known = None if custom else catalog.gestures(character, style)
    if known is None:
        return [f"video {video.id}: gestures {', '.join(marks)} not checked for {character}"]
    for mark in marks:
        if mark not in known:
            loc = where(mark) if callable(where) else where
            if not known:
                raise TemplateError(f"gesture {mark!r}: {character}/{style} has no gestures", loc)
            hint = catalog.closest(mark, known)
            raise TemplateError(
                f"unknown gesture {mark!r} for {character}/{style}"
                + (f" (did you mean '{hint}'?)" if hint else "")
                + f"; valid: {', '.join(known)}",
                loc,
            )
    return []


def _vars_digest(values: dict[str, Any] | None) -> str:
    return sha256_text(repr(sorted((values or {}).items())))[:16]


def _without_bom(text: str) -> str:
    """Text as written: a byte-order mark some editors add is no part of it (sent in
    the SSML, it would change the request's hash and pay for a re-render)."""
    return text[1:] if text.startswith("\ufeff") else text


def _jinja_message(exc: Exception, context: dict[str, Any] | None = None) -> str:
    if isinstance(exc, _TemplateRefused):
        return f"template {exc.name!r} {exc.reason}"
    if isinstance(exc, jinja2.TemplateNotFound):
        return f"template {exc.name!r} not found"
    message = getattr(exc, "message", None) or str(exc)
    if isinstance(exc, jinja2.exceptions.SecurityError):
        return f"not allowed in templates: {message}"
    if isinstance(exc, jinja2.UndefinedError):
        if "undefined" not in message:
            return message
        found = _UNDEFINED_RE.match(message)
        hint = suggest.did_you_mean(found.group(1), context) if found and context else ""
        return f"undefined variable: {message}{hint}"
    if not isinstance(exc, jinja2.TemplateError | TemplateBudgetError):  # a Python error
        return f"{type(exc).__name__}: {message}"
    return message


def _template_line(exc: BaseException, filename: str | None) -> int | None:
    """Jinja rewrites tracebacks so template frames carry the template's own line."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if filename and frame.filename == filename:
            line = frame.lineno
    return line


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return os.path.relpath(path, root)

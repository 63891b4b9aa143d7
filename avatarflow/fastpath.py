"""Shortcuts that only pay at catalogue scale, each giving exactly what the plain path gives.

The plain path is the one that words errors and accepts every feature; these run first
and step aside (``NeedsNodes``, ``None``) for anything they do not cover, so that a
shortcut can be deleted without any other change than the time a full plan takes. Tests
compare each one with its plain path (``tests/test_yamlsafe.py``, ``tests/test_scale.py``).
With the per-video request cache (:mod:`avatarflow.incremental`) a plan after one edit
rarely reaches them; they keep a full plan of 10,000 videos (a ``defaults`` change,
``--verify``, ``validate``) at its old time:

- :func:`load_from_events`: the manifest built straight from libyaml's parser events,
  without composing a node tree (the YAML loader's second builder);
- :func:`collector_paused`: the cycle collector off while those events (or the request
  cache's rows) are built, and what was built moved to the oldest generation unscanned;
- :func:`render_simple_narration`: a narration whose only markup is ``{{ name }}``
  substituted without compiling a Jinja template per video;
- :func:`share_fields_set`: models given the same field names share one set of them
  (pydantic's own attribute, written by hand: 13 MiB of a full plan of 10,000 videos).
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import (
    DocumentEndEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

from . import yamlsafe
from .yamlsafe import KeyPath, LineMap, LoadedYaml

if TYPE_CHECKING:
    from pydantic import BaseModel

_STR_TAG = "tag:yaml.org,2002:str"


# -- YAML: the document from libyaml's events ----------------------------------------
def load_from_events(text: str) -> LoadedYaml:
    """``text`` built from libyaml's events; ``NeedsNodes`` for the node-based path."""
    if CParser is None:
        raise NeedsNodes
    with collector_paused():
        return EventBuilder().load(CParser(text))


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector while a document is built.

    Building allocates tens of thousands of dicts and lists that the collector would
    scan again and again as they pile up: a fifth of the load time of a large
    catalogue. Nothing is lost: the collector runs as usual once it is enabled again.

    What was built is long-lived: it is moved to the oldest generation as it stands
    (``freeze`` then ``unfreeze``: two list splices), where only a full collection looks
    at it, instead of being scanned whole by the first young collection after the pause
    (0.2 s of a plan of 50,000 videos). Garbage among it is found by that full collection.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if gc.get_freeze_count() == 0:  # never undo a freeze of the program's own
                gc.freeze()
                gc.unfreeze()
            gc.enable()


def _c_parser() -> Any:
    try:
        from yaml._yaml import CParser
    except ImportError:  # pragma: no cover - PyYAML built without libyaml
        return None
    return CParser


CParser = _c_parser()


def _line(event: Event) -> int:
    mark = event.start_mark
    assert mark is not None  # libyaml marks every event
    return mark.line + 1


_SHARED_TEXT_MAX = 64


class NeedsNodes(Exception):
    """The document is for the node-based path: a rarer feature, a limit or an error."""


class _Open:
    """A mapping or sequence being filled, with its key path; ``key`` is the key read
    last in a mapping whose value is still to come (``None`` while a key is expected)."""

    __slots__ = ("container", "key", "path")

    def __init__(self, container: dict[str, Any] | list[Any], path: KeyPath) -> None:
        self.container = container
        self.path = path
        self.key: str | None = None


class EventBuilder:
    """Plain data and the line map straight from libyaml's parser events, in one pass.

    It covers what manifests use: untagged mappings with string keys, sequences and
    scalars. Anchors, aliases, tags, merge keys and any other key, duplicate keys, NUL
    characters, the node and depth limits and every parse error raise
    :class:`NeedsNodes` instead, so that the node-based path, with its limits and its
    messages, alone decides on those. Where both paths build a document, they agree.
    """

    def __init__(self) -> None:
        self.lines = LineMap()
        self.nodes = 0
        self.stack: list[_Open] = []
        self.root: list[Any] = []  # the document, once built
        self.resolve: Any = Resolver().resolve  # untyped in PyYAML's stubs
        self.constructor = SafeConstructor()
        # Plain scalars by text: a catalogue repeats the same few (keys, characters,
        # formats), and sharing one object per text keeps them small in memory.
        self.plain: dict[str, tuple[str, Any]] = {}
        self.texts: dict[str, str] = {}

    def load(self, parser: Any) -> LoadedYaml:
        try:
            self.expect(parser, StreamStartEvent)
            self.expect(parser, DocumentStartEvent)
            self.node(parser.get_event())
            while self.stack:
                self.node(parser.get_event())
            self.expect(parser, DocumentEndEvent)
            self.expect(parser, StreamEndEvent)
        except yaml.YAMLError:
            raise NeedsNodes from None  # worded by the node-based path
        finally:
            parser.dispose()
        self.lines.finish()
        return LoadedYaml(data=self.root[0], lines=self.lines)

    @staticmethod
    def expect(parser: Any, kind: type[Event]) -> None:
        # Anything else (an empty stream, a second document) is for the node-based path.
        if type(parser.get_event()) is not kind:
            raise NeedsNodes

    def node(self, event: Event) -> None:
        """Handle one event inside the document."""
        kind = type(event)
        top = self.stack[-1] if self.stack else None
        if kind is ScalarEvent:
            tag, value = self.scalar(event)  # type: ignore[arg-type]
            if top is not None and top.key is None and isinstance(top.container, dict):
                self.key(top, tag, value, event)
            else:
                self.place(top, value, event)
        elif kind is MappingStartEvent or kind is SequenceStartEvent:
            if event.tag is not None or event.anchor is not None:  # type: ignore[attr-defined]
                raise NeedsNodes
            container: dict[str, Any] | list[Any] = {} if kind is MappingStartEvent else []
            self.stack.append(_Open(container, self.place(top, container, event)))
        elif kind is MappingEndEvent or kind is SequenceEndEvent:
            self.stack.pop()
        else:  # an alias
            raise NeedsNodes

    def scalar(self, event: ScalarEvent) -> tuple[str, Any]:
        """The resolved tag and the value of a scalar."""
        if event.tag is not None or event.anchor is not None or "\x00" in event.value:
            raise NeedsNodes
        if not event.implicit[0]:  # quoted or block: always a string
            return _STR_TAG, self.quoted(event.value)
        found = self.plain.get(event.value)
        if found is None:
            found = self.plain[event.value] = self.resolve_plain(event)
        return found

    def quoted(self, text: str) -> str:
        """One object per short text: quoted names repeat too (``"lisa"``, ``"mp4"``)."""
        if len(text) > _SHARED_TEXT_MAX:  # narrations and titles rarely repeat
            return text
        return self.texts.setdefault(text, text)

    def resolve_plain(self, event: ScalarEvent) -> tuple[str, Any]:
        tag = self.resolve(ScalarNode, event.value, event.implicit)
        if tag == _STR_TAG:
            return tag, event.value
        try:  # the scalars of these tags are immutable (int, float, bool, None, dates)
            value = self.constructor.construct_object(ScalarNode(tag, event.value), deep=True)
        except Exception:  # whatever it is, the node-based path words it
            raise NeedsNodes from None
        finally:
            self.constructor.constructed_objects.clear()
        return tag, value

    def key(self, top: _Open, tag: str, name: Any, event: Event) -> None:
        """Read ``name`` as the next key of the mapping ``top``."""
        if tag != _STR_TAG or name in top.container:  # another key, or a duplicate
            raise NeedsNodes
        top.key = name
        # the key's own line, as the node-based path records it
        self.lines[(*top.path, name)] = _line(event)

    def place(self, top: _Open | None, value: Any, event: Event) -> KeyPath:
        """Store a value node in the collection being filled; its key path."""
        self.nodes += 1
        if self.nodes > yamlsafe.MAX_DOCUMENT_NODES or len(self.stack) >= yamlsafe.MAX_DEPTH:
            raise NeedsNodes
        if top is None:
            self.root.append(value)
            self.lines[()] = _line(event)
            return ()
        if isinstance(top.container, dict):
            if top.key is None:  # a mapping or a sequence as a key
                raise NeedsNodes
            path: KeyPath = (*top.path, top.key)
            top.container[top.key] = value
            top.key = None
            return path
        path = (*top.path, len(top.container))
        top.container.append(value)
        self.lines[path] = _line(event)
        return path


# -- Jinja: narrations without a template -------------------------------------------
# ``{{ name }}``: the only markup most narrations hold, substituted without Jinja.
_PLAIN_VARIABLE_RE = re.compile(r"\{\{ *([A-Za-z_][A-Za-z0-9_]*) *\}\}")
_NEWLINE_RE = re.compile(r"\r\n|\r|\n")
# Names Jinja reads as constants or operators, not as variables.
_JINJA_WORDS = frozenset(
    {"true", "false", "none", "True", "False", "None", "not", "and", "or", "in", "is", "if"}
)


def render_simple_narration(raw: str, context: dict[str, Any]) -> str | None:
    """What Jinja renders for a narration whose only markup is ``{{ name }}`` of defined
    variables, without compiling a template per video; ``None`` for anything else.

    Exactly Jinja's output (the content hash depends on it): newlines normalised to
    ``\\n``, one trailing newline dropped, each value through ``str``.
    """
    source = _NEWLINE_RE.sub("\n", raw)
    if source.endswith("\n"):
        source = source[:-1]
    parts = _PLAIN_VARIABLE_RE.split(source)  # text, name, text, name, …, text
    texts, names = parts[0::2], parts[1::2]
    if any("{" in text or "}" in text for text in texts):
        return None
    if any(name in _JINJA_WORDS or name not in context for name in names):
        return None  # Jinja's constant, or its "undefined" error message
    out = [texts[0]]
    for name, text in zip(names, texts[1:], strict=True):
        out.append(str(context[name]))
        out.append(text)
    return "".join(out)


# -- pydantic: one set of field names per distinct set ---------------------------------
def share_fields_set(model: BaseModel, shared: dict[frozenset[str], set[str]]) -> None:
    """Let frozen models given the same field names share one set of those names.

    pydantic keeps the names given to each instance in a set of its own (728 bytes for
    eight names); a frozen model never changes it, so the 10,000 videos of a catalogue
    can share the handful of distinct sets instead.
    """
    names = model.model_fields_set
    common = shared.setdefault(frozenset(names), names)
    if common is not names:
        object.__setattr__(model, "__pydantic_fields_set__", common)

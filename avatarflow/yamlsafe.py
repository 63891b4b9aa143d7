"""YAML loading that remembers where every key came from and refuses hostile input.

PyYAML's safe loader forgets line numbers, silently keeps the last of two duplicate
keys and happily expands "billion laughs" alias bombs. This loader composes the node
tree itself so that it can report ``file:line`` for any key path, reject duplicate keys,
and stop expanding aliases past a fixed budget: the budget counts the nodes that aliases
and merge keys add, not the document's own, so a large catalogue (50,000 videos) loads
while a small bomb does not. Nesting is capped too (deep documents and self-referencing
aliases would otherwise end in a ``RecursionError``).

Most manifests use none of YAML's rarer features, so they are first built straight from
libyaml's parser events, with no node tree (:func:`avatarflow.fastpath.load_from_events`).
Whatever that fast path does not cover, or finds wrong, is left to the node-based path
here, which stays the one place that accepts the rarer features and words every error.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from .errors import Location, ManifestError
from .yamlhints import explain

KeyPath = tuple[str | int, ...]

MAX_NODES = 100_000  # nodes added by aliases and merge keys
# The document's own size: 50,000 videos are ~14 MB and ~1.5 million nodes.
MAX_BYTES = 64 * 1024 * 1024
MAX_DOCUMENT_NODES = 8_000_000
MAX_DEPTH = 64

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
_VALUE_TAG = "tag:yaml.org,2002:value"
_TOO_DEEP = f"nested more than {MAX_DEPTH} levels deep"
_BOMB = f"aliases expand to more than {MAX_NODES} nodes (alias bomb?)"


class LineMap:
    """The 1-based line of every key path of a document, kept small for large ones.

    A large manifest is mostly the items of one top-level list (``videos[3]``), and the
    key paths inside them repeat from item to item. So each such item keeps its lines
    in an array laid out by a *shape* (the paths below the item, in order), and items
    with the same keys share one shape: 10,000 videos need neither a tuple nor an int
    object per key. Other paths (``defaults.voice``) are kept as they are.

    Builders record every line (:meth:`setdefault` or assignment), then call
    :meth:`finish`; the map is only read after that.
    """

    def __init__(self) -> None:
        self._paths: dict[KeyPath, int] = {}
        # top-level key -> item index -> (shape: path below the item -> slot, lines)
        self._items: dict[str, dict[int, tuple[dict[KeyPath, int], array[int]]]] = {}
        self._shapes: dict[tuple[KeyPath, ...], dict[KeyPath, int]] = {}
        self._pending: dict[tuple[str, int], dict[KeyPath, int]] = {}  # until finish()

    @staticmethod
    def _item_of(path: KeyPath) -> tuple[str, int] | None:
        """``("videos", 3)`` for any path inside (or at) that item of a top-level list."""
        if len(path) >= 2 and isinstance(path[0], str) and isinstance(path[1], int):
            return path[0], path[1]
        return None

    def _target(self, path: KeyPath) -> tuple[dict[KeyPath, int], KeyPath]:
        item = self._item_of(path)
        if item is None:
            return self._paths, path
        lines = self._pending.get(item)
        if lines is None:
            lines = self._pending[item] = {}
        return lines, path[2:]

    def __setitem__(self, path: KeyPath, line: int) -> None:
        lines, key = self._target(path)
        lines[key] = line

    def setdefault(self, path: KeyPath, line: int) -> None:
        lines, key = self._target(path)
        lines.setdefault(key, line)

    def finish(self) -> None:
        """Pack the lines of list items into arrays by shared shapes."""
        if not self._pending:
            return
        for (name, index), lines in self._pending.items():
            keys = tuple(lines)
            shape = self._shapes.get(keys)
            if shape is None:
                shape = self._shapes[keys] = {key: slot for slot, key in enumerate(keys)}
            self._items.setdefault(name, {})[index] = (shape, array("I", lines.values()))
        self._pending = {}

    def get(self, path: KeyPath) -> int | None:
        self.finish()
        item = self._item_of(path)
        if item is None:
            return self._paths.get(path)
        found = self._items.get(item[0], {}).get(item[1])
        if found is None:
            return None
        shape, lines = found
        slot = shape.get(path[2:])
        return None if slot is None else lines[slot]

    def items(self) -> Iterator[tuple[KeyPath, int]]:
        self.finish()
        yield from self._paths.items()
        for name, entries in self._items.items():
            for index, (shape, lines) in entries.items():
                for key, slot in shape.items():
                    yield (name, index, *key), lines[slot]

    def __len__(self) -> int:
        return sum(1 for _ in self.items())

    def item_sizes(self, name: str) -> dict[int, int]:
        """Paths inside (and at) each item of the top-level list ``name``, by index."""
        self.finish()
        return {index: len(shape) for index, (shape, _) in self._items.get(name, {}).items()}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LineMap):
            return NotImplemented
        return dict(self.items()) == dict(other.items())

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"LineMap({dict(self.items())!r})"


@dataclass
class LoadedYaml:
    """Plain data plus the 1-based line of every key path in it."""

    data: Any
    lines: LineMap = field(default_factory=LineMap)

    def line_of(self, path: KeyPath) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None


def format_path(path: KeyPath) -> str:
    """``("videos", 3, "avatar", "style")`` → ``videos[3].avatar.style``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


class _Line:
    """The part of a YAML mark that errors use; nodes of a large manifest keep only this."""

    __slots__ = ("line",)

    def __init__(self, line: int) -> None:
        self.line = line


class _DepthLimit(Composer):
    """PyYAML's composer with a nesting limit, checked while composing."""

    depth = 0
    composed = 0  # the document's own nodes (an alias adds none)

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[attr-defined]
                raise yaml.composer.ComposerError(None, None, _TOO_DEEP, mark)
            is_key = isinstance(parent, MappingNode) and index is None  # never built
            if not is_key and not self.check_event(yaml.AliasEvent):  # type: ignore[attr-defined]
                self.composed += 1
                if self.composed > MAX_DOCUMENT_NODES:
                    mark = self.peek_event().start_mark  # type: ignore[attr-defined]
                    too_many = f"document has more than {MAX_DOCUMENT_NODES} nodes"
                    raise yaml.composer.ComposerError(None, None, too_many, mark)
            node = super().compose_node(parent, index)
            if node is not None:  # keep the line only: a parser's mark weighs ~10x more
                node.start_mark = _Line(node.start_mark.line)
                node.end_mark = None
            return node
        finally:
            self.depth -= 1


class _Loader(_DepthLimit, yaml.SafeLoader):
    """The pure-Python safe loader with the nesting limit."""


def _fast_loader() -> Any:
    """With libyaml, events come from C (about 10x faster) while composing stays in
    Python: libyaml's own composer recurses in C without any depth limit."""
    try:
        from yaml._yaml import CParser
    except ImportError:  # pragma: no cover - PyYAML built without libyaml
        return None

    class _FastLoader(_DepthLimit, CParser, SafeConstructor, Resolver):
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            _DepthLimit.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

    return _FastLoader


_FAST_LOADER = _fast_loader()


def _compose(text: str) -> tuple[Node | None, int]:
    """The node tree of ``text`` and the number of its own nodes."""
    if _FAST_LOADER is not None:
        try:
            return _compose_with(_FAST_LOADER, text)
        except yaml.YAMLError:
            pass  # the pure-Python parser words errors as users know them: parse again
    return _compose_with(_Loader, text)


def _compose_with(loader_class: Any, text: str) -> tuple[Node | None, int]:
    loader = loader_class(text)  # what yaml.compose does, keeping the count
    try:
        return loader.get_single_node(), loader.composed
    finally:
        loader.dispose()


def _short_tag(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!", 1)


class _Builder:
    def __init__(self, file: str, own: int = 0) -> None:
        self.file = file
        self.nodes = 0
        self.own = own  # nodes built beyond these were added by aliases or merges
        self.constructor = SafeConstructor()
        self.lines = LineMap()
        self.merged: dict[int, list[tuple[Node, Node]]] = {}
        self.merging: set[int] = set()

    def fail(self, node: Node, path: KeyPath, message: str) -> ManifestError:
        line = node.start_mark.line + 1
        key = format_path(path)
        if len(key) > 80:  # a runaway path (recursive alias) is not worth printing whole
            key = key[:80] + "…"
        return ManifestError(message, Location(self.file, line, key or None))

    def build(self, node: Node, path: KeyPath, depth: int = 0) -> Any:
        self.nodes += 1
        if self.nodes - self.own > MAX_NODES:
            raise self.fail(node, path, _BOMB)
        if depth > MAX_DEPTH:  # only aliases get here: the composer stops deep documents
            raise self.fail(node, path, f"{_TOO_DEEP} (recursive alias?)")
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, MappingNode):
            if node.tag != _MAP_TAG:
                raise self.fail(node, path, f"unsupported YAML tag {_short_tag(node.tag)!r}")
            return self.build_mapping(node, path, depth)
        if isinstance(node, SequenceNode):
            if node.tag != _SEQ_TAG:
                raise self.fail(node, path, f"unsupported YAML tag {_short_tag(node.tag)!r}")
            return [self.build(child, (*path, i), depth + 1) for i, child in enumerate(node.value)]
        if isinstance(node, ScalarNode):
            return self.scalar(node, path)
        raise self.fail(node, path, "unsupported YAML node")

    def scalar(self, node: ScalarNode, path: KeyPath) -> Any:
        if node.tag == _STR_TAG:  # most scalars: the constructor would return the text as is
            value = node.value
            if "\x00" in value:
                raise self.fail(node, path, "contains a NUL character")
            return value
        try:
            value = self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            raise self.fail(node, path, f"invalid YAML value: {problem}") from None
        except (ValueError, TypeError, AttributeError, OverflowError) as exc:
            # e.g. ``!!int lots``: PyYAML's scalar constructors raise plain Python errors
            raise self.fail(node, path, f"invalid YAML value {node.value!r}: {exc}") from None
        if isinstance(value, str) and "\x00" in value:
            raise self.fail(node, path, "contains a NUL character")
        return value

    def key_name(self, key_node: Node, path: KeyPath) -> str:
        if not isinstance(key_node, ScalarNode):
            raise self.fail(key_node, path, "mapping keys must be plain strings")
        if key_node.tag == _VALUE_TAG:  # a plain "=" key
            return str(key_node.value)
        key = self.scalar(key_node, path)
        if not isinstance(key, str | int | float | bool) or key is None:
            raise self.fail(key_node, path, "mapping keys must be plain strings")
        return str(key)

    def pairs(self, node: MappingNode, path: KeyPath) -> list[tuple[str, Node, Node, bool]]:
        """``(name, key, value, own)`` of ``node`` with ``<<`` merges applied.

        The mapping's own keys come first and win; merged keys fill in what is missing, the
        earlier of several merged mappings winning (YAML merge key semantics).
        """
        own: list[tuple[str, Node, Node, bool]] = []
        merged: list[tuple[Node, Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged.extend(self.merge_sources(value_node, path))
            else:
                own.append((self.key_name(key_node, path), key_node, value_node, True))
        taken = {name for name, *_ in own}
        result = list(own)
        for key_node, value_node in merged:
            name = self.key_name(key_node, path)
            if name not in taken:
                taken.add(name)
                result.append((name, key_node, value_node, False))
        return result

    def merge_sources(self, node: Node, path: KeyPath) -> list[tuple[Node, Node]]:
        """The flattened key/value nodes that ``<<: node`` merges in (computed once per node)."""
        sources = node.value if isinstance(node, SequenceNode) else [node]
        found: list[tuple[Node, Node]] = []
        for source in sources:
            if not isinstance(source, MappingNode):
                raise self.fail(source, path, "'<<' merges a mapping or a list of mappings")
            if id(source) in self.merging:
                raise self.fail(source, path, "'<<' merges a mapping into itself")
            if id(source) not in self.merged:
                self.merging.add(id(source))
                self.merged[id(source)] = [(k, v) for _, k, v, _ in self.pairs(source, path)]
                self.merging.discard(id(source))
            self.nodes += len(self.merged[id(source)])
            if self.nodes - self.own > MAX_NODES:
                raise self.fail(source, path, _BOMB)
            found.extend(self.merged[id(source)])
        return found

    def build_mapping(self, node: MappingNode, path: KeyPath, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for name, key_node, value_node, _own in self.pairs(node, path):
            if name in result:  # merged keys never repeat: only the mapping's own keys can
                raise self.fail(key_node, (*path, name), "duplicate key")
            result[name] = self.build(value_node, (*path, name), depth + 1)
            self.lines[(*path, name)] = key_node.start_mark.line + 1
        return result


def load_yaml(text: str, file: str) -> LoadedYaml:
    """Parse one YAML document from ``text``; ``file`` is used in error messages."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise ManifestError(f"file is larger than {MAX_BYTES // (1024 * 1024)} MB", Location(file))
    if "\x00" in text:
        nul_line = text.count("\n", 0, text.index("\x00")) + 1
        raise ManifestError(
            "file contains NUL bytes; is it a binary file?", Location(file, nul_line)
        )
    from . import fastpath  # which imports this module's pieces

    try:
        return fastpath.load_from_events(text)
    except fastpath.NeedsNodes:
        pass  # a rarer feature, or an error to word: the node-based path decides
    return _load_from_nodes(text, file)


def _load_from_nodes(text: str, file: str) -> LoadedYaml:
    """The complete loader: composes a node tree, then builds plain data from it."""
    try:
        node, own = _compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        words = explain(text, line, problem) or f"invalid YAML: {problem}"
        raise ManifestError(words, Location(file, line)) from None
    except yaml.reader.ReaderError as exc:
        bad_line = text.count("\n", 0, exc.position) + 1
        first = str(exc).splitlines()[0]
        raise ManifestError(f"invalid YAML: {first}", Location(file, bad_line)) from None
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0]
        raise ManifestError(f"invalid YAML: {first}", Location(file)) from None
    if node is None:
        return LoadedYaml(data=None)
    builder = _Builder(file, own)
    try:
        data = builder.build(node, ())
    except RecursionError:  # the depth limits make this unreachable; never a traceback
        raise ManifestError(f"document is {_TOO_DEEP}", Location(file)) from None
    builder.lines.finish()
    return LoadedYaml(data=data, lines=builder.lines)

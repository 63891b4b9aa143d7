"""YAML loading that remembers where every key came from and refuses hostile input.

PyYAML's safe loader forgets line numbers, silently keeps the last of two duplicate
keys and happily expands "billion laughs" alias bombs. This loader composes the node
tree itself so that it can report ``file:line`` for any key path, reject duplicate keys,
and stop expanding aliases past a fixed budget. Nesting is capped too (deep documents
and self-referencing aliases would otherwise end in a ``RecursionError``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from .errors import Location, ManifestError

KeyPath = tuple[str | int, ...]

MAX_NODES = 100_000
MAX_BYTES = 5 * 1024 * 1024
MAX_DEPTH = 64

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
_VALUE_TAG = "tag:yaml.org,2002:value"
_TOO_DEEP = f"nested more than {MAX_DEPTH} levels deep"


@dataclass
class LoadedYaml:
    """Plain data plus the 1-based line of every key path in it."""

    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)

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

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[attr-defined]
                raise yaml.composer.ComposerError(None, None, _TOO_DEEP, mark)
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


def _compose(text: str) -> Node | None:
    if _FAST_LOADER is not None:
        try:
            return yaml.compose(text, Loader=_FAST_LOADER)
        except yaml.YAMLError:
            pass  # the pure-Python parser words errors as users know them: parse again
    return yaml.compose(text, Loader=_Loader)


def _short_tag(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!", 1)


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.nodes = 0
        self.constructor = SafeConstructor()
        self.lines: dict[KeyPath, int] = {}
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
        if self.nodes > MAX_NODES:
            raise self.fail(
                node, path, f"document expands to more than {MAX_NODES} nodes (alias bomb?)"
            )
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
            if self.nodes > MAX_NODES:
                raise self.fail(
                    source, path, f"document expands to more than {MAX_NODES} nodes (alias bomb?)"
                )
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
    try:
        node = _compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise ManifestError(f"invalid YAML: {problem}", Location(file, line)) from None
    except yaml.reader.ReaderError as exc:
        bad_line = text.count("\n", 0, exc.position) + 1
        first = str(exc).splitlines()[0]
        raise ManifestError(f"invalid YAML: {first}", Location(file, bad_line)) from None
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0]
        raise ManifestError(f"invalid YAML: {first}", Location(file)) from None
    if node is None:
        return LoadedYaml(data=None)
    builder = _Builder(file)
    try:
        data = builder.build(node, ())
    except RecursionError:  # the depth limits make this unreachable; never a traceback
        raise ManifestError(f"document is {_TOO_DEEP}", Location(file)) from None
    return LoadedYaml(data=data, lines=builder.lines)

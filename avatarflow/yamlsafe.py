"""YAML loading that remembers where every key came from and refuses hostile input.

PyYAML's safe loader forgets line numbers, silently keeps the last of two duplicate
keys and happily expands "billion laughs" alias bombs. This loader composes the node
tree itself so that it can report ``file:line`` for any key path, reject duplicate keys,
and stop expanding aliases past a fixed budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .errors import Location, ManifestError

KeyPath = tuple[str | int, ...]

MAX_NODES = 100_000
MAX_BYTES = 5 * 1024 * 1024


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


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.nodes = 0
        self.constructor = SafeConstructor()
        self.lines: dict[KeyPath, int] = {}

    def fail(self, node: Node, path: KeyPath, message: str) -> ManifestError:
        line = node.start_mark.line + 1
        return ManifestError(message, Location(self.file, line, format_path(path) or None))

    def build(self, node: Node, path: KeyPath) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.fail(
                node, path, f"document expands to more than {MAX_NODES} nodes (alias bomb?)"
            )
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, MappingNode):
            return self.build_mapping(node, path)
        if isinstance(node, SequenceNode):
            return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
        if isinstance(node, ScalarNode):
            return self.constructor.construct_object(node, deep=True)
        raise self.fail(node, path, "unsupported YAML node")

    def build_mapping(self, node: MappingNode, path: KeyPath) -> dict[str, Any]:
        self.constructor.flatten_mapping(node)  # resolves `<<: *anchor` merge keys
        result: dict[str, Any] = {}
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = self.constructor.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) or key is None:
                raise self.fail(key_node, path, "mapping keys must be plain strings")
            name = str(key)
            if name in seen and key_node.tag != "tag:yaml.org,2002:merge":
                raise self.fail(key_node, (*path, name), "duplicate key")
            seen.add(name)
            result[name] = self.build(value_node, (*path, name))
            self.lines[(*path, name)] = key_node.start_mark.line + 1
        return result


def load_yaml(text: str, file: str) -> LoadedYaml:
    """Parse one YAML document from ``text``; ``file`` is used in error messages."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise ManifestError(f"file is larger than {MAX_BYTES // (1024 * 1024)} MB", Location(file))
    if "\x00" in text:
        raise ManifestError("file contains NUL bytes; is it a binary file?", Location(file))
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise ManifestError(f"invalid YAML: {problem}", Location(file, line)) from None
    except yaml.YAMLError as exc:
        raise ManifestError(f"invalid YAML: {exc}", Location(file)) from None
    if node is None:
        return LoadedYaml(data=None)
    builder = _Builder(file)
    try:
        data = builder.build(node, ())
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        raise ManifestError(
            f"invalid YAML value: {exc.problem}", Location(file, mark.line + 1 if mark else None)
        ) from None
    return LoadedYaml(data=data, lines=builder.lines)

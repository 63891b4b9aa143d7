"""The two ways ``yamlsafe`` builds a document agree, and the fast one knows its limits.

Most manifests are built straight from libyaml's events; the node-based path handles
the rest and words every error. These tests hold the event path to the node path's
results, and check that whatever it does not cover is handed over, never built.
"""

from __future__ import annotations

import contextlib
import gc
from pathlib import Path
from typing import Any

import pytest

from avatarflow import fastpath, yamlsafe
from avatarflow.errors import ManifestError

REPO = Path(__file__).resolve().parent.parent

SCALARS = """\
version: 1
name: demo
plain: hello world
quoted: "yes"
single: 'it''s'
int: 12
neg: -3
octal: 0o17
hex: 0x1F
float: 1.5e3
inf: .inf
bool: yes
falsy: False
tilde: ~
empty:
date: 2024-08-01
stamp: 2024-08-01T10:00:00Z
block: |
  line one
  line two
folded: >-
  folded
  text
flow: {a: 1, b: [x, y, {c: d}], "e f": '', 1x: z}
list:
  - a
  - - nested
    - 2
  - {k: v}
  - []
  - {}
  -
"key with spaces": 1
"yes": quoted key
unicode: "café ☕ \\u00e9"
"""

# Nested 63 levels deep below the root: the deepest document the limit allows.
DEEPEST = "[" * 63 + "x" + "]" * 63

BUILT = {
    # More nodes than the alias budget, and no alias: a large catalogue, not a bomb.
    "many-nodes": "[" + "0, " * yamlsafe.MAX_NODES + "0]\n",
    "scalars": SCALARS,
    "root-scalar": "hello\n",
    "root-list": "- a\n- [1, 2]\n- b: c\n",
    "explicit-document": "---\na: 1\n...\n",
    "deepest": DEEPEST,
}

HANDED_OVER = {
    "anchor-and-alias": "a: &x 1\nb: *x\n",
    "anchored-scalar": "a: &x 1\n",
    "anchored-mapping": "a: &x {k: v}\n",
    "tag": "a: !!str 3\n",
    "local-tag": "a: !thing 3\n",
    "tagged-mapping": "a: !!map {k: v}\n",
    "merge-key": "base: {k: v}\nchild:\n  <<: {k: w}\n",
    "int-key": "1: a\n",
    "null-key": "~: a\n",
    "value-key": "=: a\n",
    "mapping-key": "? {a: 1}\n: b\n",
    "sequence-key": "? [a]\n: b\n",
    "duplicate-key": "a: 1\na: 2\n",
    "nul-escape": 'a: "x\\0y"\n',
    "bad-int": "a: !!int lots\n",
    "too-deep": "[" * 64 + "x" + "]" * 64,
    "two-documents": "a: 1\n---\nb: 2\n",
    "empty": "",
    "comment-only": "# nothing\n",
    "parse-error": "a: [1, 2\n",
    "tab": "a:\n\tb: 1\n",
}


def from_events(text: str, file: str = "course.yaml") -> yamlsafe.LoadedYaml:
    return fastpath.load_from_events(text)


def typed(data: Any) -> str:
    """``repr`` tells 1 from True and 1.0, which ``==`` does not."""
    return repr(data)


@pytest.mark.parametrize("text", BUILT.values(), ids=BUILT.keys())
def test_events_build_what_nodes_build(text: str) -> None:
    fast = from_events(text)
    slow = yamlsafe._load_from_nodes(text, "course.yaml")
    assert typed(fast.data) == typed(slow.data)
    assert fast.lines == slow.lines


def test_events_build_the_example_manifest_as_nodes_do() -> None:
    text = (REPO / "manifests" / "git-course.yaml").read_text()
    fast = from_events(text)
    slow = yamlsafe._load_from_nodes(text, "git-course.yaml")
    assert typed(fast.data) == typed(slow.data)
    assert fast.lines == slow.lines
    assert len(fast.lines) > 50


@pytest.mark.parametrize("text", HANDED_OVER.values(), ids=HANDED_OVER.keys())
def test_what_events_do_not_cover_is_handed_to_nodes(text: str) -> None:
    with pytest.raises(fastpath.NeedsNodes):
        from_events(text)


@pytest.mark.parametrize("text", HANDED_OVER.values(), ids=HANDED_OVER.keys())
def test_handed_over_documents_load_as_nodes_load_them(text: str) -> None:
    def outcome(load: Any) -> str:
        try:
            loaded = load(text, "course.yaml")
        except ManifestError as exc:
            return f"error {exc.location} {exc}"
        return f"{typed(loaded.data)} {loaded.lines}"

    assert outcome(yamlsafe.load_yaml) == outcome(yamlsafe._load_from_nodes)


def test_the_alias_budget_counts_expansion_only() -> None:
    loaded = yamlsafe.load_yaml(BUILT["many-nodes"], "course.yaml")
    assert len(loaded.data) == yamlsafe.MAX_NODES + 1
    # The same with one alias: the node path counts the document's own nodes apart.
    text = "a: &x " + BUILT["many-nodes"] + "b: *x\n"
    with pytest.raises(ManifestError, match="aliases expand to more than 100000 nodes"):
        yamlsafe.load_yaml(text, "course.yaml")
    loaded = yamlsafe.load_yaml("a: &x [1, 2]\nb: *x\n" + "c: " + BUILT["many-nodes"], "c.yaml")
    assert loaded.data["b"] == [1, 2]


def test_a_document_too_large_for_memory_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlsafe, "MAX_DOCUMENT_NODES", 1000)
    with pytest.raises(ManifestError, match="document has more than 1000 nodes"):
        yamlsafe.load_yaml("[" + "0, " * 1000 + "0]\n", "course.yaml")


def test_a_repeated_short_string_is_one_object() -> None:
    data = from_events("a: lisa\nb: lisa\nc: [lisa]\nd: 'mp4'\ne: \"mp4\"\n").data
    assert data["a"] is data["b"] is data["c"][0]
    assert data["d"] is data["e"]


LINES = """\
version: 1
name: demo
defaults:
  voice: v
videos:
  - id: a
    avatar:
      style: s
  - id: b
    text: hi
  - id: c
    text: hi
"""

EXPECTED_LINES = {
    (): 1,
    ("version",): 1,
    ("name",): 2,
    ("defaults",): 3,
    ("defaults", "voice"): 4,
    ("videos",): 5,
    ("videos", 0): 6,
    ("videos", 0, "id"): 6,
    ("videos", 0, "avatar"): 7,
    ("videos", 0, "avatar", "style"): 8,
    ("videos", 1): 9,
    ("videos", 1, "id"): 9,
    ("videos", 1, "text"): 10,
    ("videos", 2): 11,
    ("videos", 2, "id"): 11,
    ("videos", 2, "text"): 12,
}


@pytest.mark.parametrize("load", [from_events, yamlsafe._load_from_nodes])
def test_every_key_path_has_its_line(load: Any) -> None:
    loaded = load(LINES, "course.yaml")
    assert dict(loaded.lines.items()) == EXPECTED_LINES
    assert len(loaded.lines) == len(EXPECTED_LINES)
    for path, line in EXPECTED_LINES.items():
        assert loaded.lines.get(path) == line
    assert loaded.lines.get(("videos", 1, "avatar")) is None
    assert loaded.lines.get(("videos", 3)) is None
    assert loaded.lines.get(("nope",)) is None
    assert loaded.line_of(("videos", 1, "avatar", "style")) == 9
    assert loaded.line_of(("videos", 0, "avatar", "character")) == 7
    assert loaded.line_of(("videos", 7, "id")) == 5


def test_items_with_the_same_keys_share_one_shape_of_lines() -> None:
    lines = from_events(LINES).lines
    first, second, third = (lines._items["videos"][i][0] for i in range(3))
    assert second is third
    assert first is not second  # video a has other keys


@pytest.mark.parametrize("text", ["a: 1\n", "a: [1\n", "a: &x 1\nb: *x\n", "a: 1\na: 2\n"])
def test_the_cycle_collector_runs_again_after_loading(text: str) -> None:
    assert gc.isenabled()
    with contextlib.suppress(ManifestError):
        yamlsafe.load_yaml(text, "course.yaml")
    assert gc.isenabled()


def test_a_disabled_cycle_collector_stays_disabled() -> None:
    gc.disable()
    try:
        yamlsafe.load_yaml("a: 1\n", "course.yaml")
        assert not gc.isenabled()
    finally:
        gc.enable()

"""The manifest cut into its items as text: only where the layout makes that safe."""

from __future__ import annotations

import pytest
import yaml

from avatarflow.manifestsplit import cut_again, split_videos

PLAIN = """\
version: 1
name: demo
defaults:
  voice: v
videos:
  # the first one
  - id: a
    text: |
      Hello.

      - not an item: inside the block
  - id: b
    vars: {x: 1}
# a comment at the left margin
  - id: c
output_dir: out
"""


def test_items_parse_alone_as_they_parse_in_the_whole_file() -> None:
    split = split_videos(PLAIN)
    assert split is not None
    alone = [yaml.safe_load(item.document())[0] for item in split.items]
    assert alone == yaml.safe_load(PLAIN)["videos"]
    assert [item.line for item in split.items] == [7, 12, 15]
    head = yaml.safe_load(split.head_document)
    assert head["videos"] is None and head["output_dir"] == "out"
    assert split.head_document.count("\n") == PLAIN.count("\n")  # lines stay in place


@pytest.mark.parametrize(
    "text",
    [
        "name: x\nvideos: []\n",  # flow style
        "name: x\nvideos:\n  - id: a\nvideos:\n  - id: b\n",  # two lists
        "---\nname: x\nvideos:\n  - id: a\n",  # a document marker
        "name: x\nvideos:\n\t- id: a\n",  # a tab
        "name: x\nvideos:\n  - id: a\n - id: b\n",  # an item indented less
        "{name: x, videos: [{id: a}]}\n",  # flow style at the top
        "videos:\n  - id: a\nname: x\n",  # the list first
        "name: x\nvideos: &all\n  - id: a\n",  # an anchor on the list
    ],
)
def test_layouts_the_text_cut_does_not_cover_are_left_to_the_full_parse(text: str) -> None:
    assert split_videos(text) is None


def test_the_same_text_cut_again_by_its_layout_is_the_same_split() -> None:
    split = split_videos(PLAIN)
    assert split is not None and split.span != (0, 0)
    again = cut_again(PLAIN, split.layout)
    assert (again.head, again.head_document, again.span) == (
        split.head,
        split.head_document,
        split.span,
    )
    assert len(again.items) == len(split.items) == 3
    assert tuple(again.items) == split.items  # each item made when asked for
    assert again.items[1:] == split.items[1:] and again.items[-1] == split.items[-1]
    assert again.layout == split.layout
    assert [item.text for item in again.items] == [item.text for item in split.items]
    assert PLAIN not in repr(split.items[0]) and PLAIN not in repr(again.items)

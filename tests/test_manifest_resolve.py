"""Resolving videos: ``defaults`` deep-merged into every video, settings models shared."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from avatarflow.manifest import VideoEntry, _resolve_entry, deep_merge, load_manifest

DEFAULTS = {
    "plain": "  ttl_hours: 24\n",
    "avatar-only": "  avatar: {character: lisa, style: graceful-sitting}\n",
    "full": (
        "  template: narration.ssml.j2\n"
        "  voice: en-US-AvaMultilingualNeural\n"
        "  avatar: {character: lisa, style: graceful-sitting, position: {x: 1, y: 2}}\n"
        "  video: {format: mp4, codec: h264, crop: {top_left: {x: 0, y: 0},"
        " bottom_right: {x: 10, y: 10}}}\n"
        "  synthesis: {rate: fast}\n"
        "  custom_voices: {Mine: my-deployment-01}\n"
        "  vars: {course: Git, nested: {a: 1, b: [1, 2]}}\n"
    ),
}

VIDEOS = """\
  - id: bare
    text: Hi
  - id: own-avatar
    text: Hi
    avatar: {character: harry, style: business}
  - id: partial-avatar
    text: Hi
    avatar: {style: casual-sitting}
  - id: same-partial-avatar
    text: Hi
    avatar: {style: casual-sitting}
  - id: other-partial-avatar
    text: Hi
    avatar: {style: casual-sitting, position: {x: 1, y: 3}}
  - id: own-video
    text: Hi
    video: {format: webm, codec: vp9}
    synthesis: {rate: slow}
  - id: vars
    text: Hi
    vars: {title: One, nested: {b: [3]}}
    custom_voices: {Other: other-deployment-02}
"""

# Resolves, but never into a valid video: no character left.
NULL_AVATAR = "  - id: null-avatar\n    text: Hi\n    avatar: null\n"


def as_data(value: Any) -> Any:
    """A model as its values and, at every level, the fields it was given."""
    if isinstance(value, BaseModel):
        return {
            "type": type(value).__name__,
            "set": sorted(value.model_fields_set),
            "fields": {name: as_data(getattr(value, name)) for name in type(value).model_fields},
        }
    return repr(value)


@pytest.mark.parametrize("defaults", DEFAULTS.values(), ids=DEFAULTS.keys())
def test_resolved_videos_are_the_deep_merge_of_defaults(tmp_path: Path, defaults: str) -> None:
    manifest = tmp_path / "course.yaml"
    videos = VIDEOS + NULL_AVATAR
    manifest.write_text(f"version: 1\nname: demo\ndefaults:\n{defaults}\nvideos:\n{videos}")
    model = load_manifest(manifest).model
    base = model.defaults.model_dump(exclude_unset=True)
    shared: dict[str, Any] = {}
    for entry in model.videos:
        # what every video used to be: the dumps merged, then validated whole again
        expected = VideoEntry.model_validate(deep_merge(base, entry.model_dump(exclude_unset=True)))
        resolved = _resolve_entry(model.defaults, base, entry, shared)
        assert as_data(resolved) == as_data(expected)
        assert resolved == expected


def test_settings_set_on_one_side_only_are_shared(tmp_path: Path) -> None:
    manifest = tmp_path / "course.yaml"
    videos = VIDEOS + "  - id: null-synthesis\n    text: Hi\n    synthesis: null\n"
    manifest.write_text(f"version: 1\nname: demo\ndefaults:\n{DEFAULTS['full']}\nvideos:\n{videos}")
    loaded = load_manifest(manifest)
    defaults = loaded.model.defaults
    by_id = {video.id: video.fields for video in loaded.videos_resolved()}
    assert by_id["bare"].avatar is defaults.avatar
    assert by_id["bare"].video is defaults.video
    assert by_id["vars"].synthesis is defaults.synthesis
    assert by_id["own-avatar"].avatar is not defaults.avatar  # merged with the defaults'
    # equal merges are validated once and shared, different ones are not
    assert by_id["partial-avatar"].avatar is by_id["same-partial-avatar"].avatar
    assert by_id["partial-avatar"].avatar is not by_id["other-partial-avatar"].avatar
    assert by_id["own-avatar"].video is defaults.video
    assert by_id["null-synthesis"].synthesis is None


def test_videos_given_the_same_fields_share_one_set_of_their_names(tmp_path: Path) -> None:
    manifest = tmp_path / "course.yaml"
    manifest.write_text(f"version: 1\nname: demo\ndefaults:\n{DEFAULTS['full']}\nvideos:\n{VIDEOS}")
    loaded = load_manifest(manifest)
    by_id = {video.id: video.fields for video in loaded.videos_resolved()}
    entries = {entry.id: entry for entry in loaded.model.videos}
    # the names are still each video's own...
    assert entries["bare"].model_fields_set == {"id", "text"}
    assert entries["own-avatar"].model_fields_set == {"id", "text", "avatar"}
    assert by_id["bare"].model_fields_set == {"id", "text"} | DEFAULT_NAMES
    assert by_id["own-video"].model_fields_set == {"id", "text"} | DEFAULT_NAMES
    # ...but one object for the same names
    assert entries["partial-avatar"].model_fields_set is entries["own-avatar"].model_fields_set
    first, second = (entries[name].avatar for name in ("partial-avatar", "same-partial-avatar"))
    assert first is not None and second is not None
    assert first.model_fields_set == {"style"}
    assert first.model_fields_set is second.model_fields_set
    assert by_id["bare"].model_fields_set is by_id["own-video"].model_fields_set
    copy = by_id["bare"].model_copy(update={"ttl_hours": 3})
    assert "ttl_hours" in copy.model_fields_set
    assert "ttl_hours" not in by_id["own-video"].model_fields_set


DEFAULT_NAMES = {
    "template",
    "voice",
    "avatar",
    "video",
    "synthesis",
    "custom_voices",
    "vars",
}

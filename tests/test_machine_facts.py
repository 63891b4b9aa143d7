"""The per-machine facts read for a few videos: the same as read whole, then filtered."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from avatarflow import machine
from avatarflow.machine import CACHE_DIR, FACTS_FILE, LastRender, MachineFacts, Materialised

# Ids that JSON escapes, or that look like the layout's own lines.
ODD_IDS = ['quote"d', "back\\slash", "new\nline", 'x": {', "ünï", "  - id", "}", "tab\t"]


def _facts(rng: random.Random, state_dir: Path, count: int) -> MachineFacts:
    facts = MachineFacts(state_dir / CACHE_DIR / FACTS_FILE)
    ids = [f"v{n}" for n in range(count)] + ODD_IDS
    for video_id in ids:
        digest = f"{rng.getrandbits(256):064x}"
        if rng.random() < 0.8:
            path = f"build/{video_id}.mp4"
            facts.outputs[video_id] = Materialised(digest, path, rng.randint(1, 9999), digest)
        if rng.random() < 0.8:
            sources = {"script": digest, "voice": "en-US-AvaNeural"} if rng.random() < 0.5 else {}
            facts.latest[video_id] = LastRender(digest, sources)
    facts.gone = {f"job-{n}" for n in range(rng.randint(0, 3))}
    facts.stored = {f"{n:064x}": {"team"} for n in range(rng.randint(0, 3))}
    facts.save()
    return facts


@pytest.mark.parametrize("seed", range(8))
def test_facts_read_for_some_videos_equal_the_whole_file_filtered(
    tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    written = _facts(rng, tmp_path, rng.choice([0, 1, 5, 40]))
    ids = sorted(written.outputs.keys() | written.latest.keys() | {"absent"})
    wanted = set(rng.sample(ids, k=min(len(ids), rng.randint(0, 6))))
    read = MachineFacts.load(tmp_path, lambda video_id: video_id in wanted)
    text = written.path.read_text("utf-8")
    assert machine._by_layout(text, lambda video_id: True) == json.loads(text)  # by layout
    assert read.outputs == {k: v for k, v in written.outputs.items() if k in wanted}
    assert read.latest == {k: v for k, v in written.latest.items() if k in wanted}
    assert (read.gone, read.stored) == (written.gone, written.stored)
    assert MachineFacts.load(tmp_path).outputs == written.outputs  # and whole


@pytest.mark.parametrize(
    "layout",
    [
        lambda data: json.dumps(data),  # compact: not the layout written, parsed whole
        lambda data: json.dumps(data, indent=2),
        lambda data: json.dumps(data, indent=1, sort_keys=True),
    ],
)
def test_facts_in_another_layout_are_read_whole(tmp_path: Path, layout: object) -> None:
    written = _facts(random.Random(1), tmp_path, 5)
    data = json.loads(written.path.read_text("utf-8"))
    written.path.write_text(layout(data) + "\n", "utf-8")  # type: ignore[operator]
    wanted = {"v1", 'quote"d'}
    for only in (None, wanted):  # each line looked at, or the wanted ones searched for
        read = MachineFacts.load(tmp_path, lambda video_id: video_id in wanted, only)
        assert read.outputs == {
            k: written.outputs[k] for k in sorted(wanted) if k in written.outputs
        }
        assert read.latest == {k: written.latest[k] for k in sorted(wanted) if k in written.latest}


def test_torn_facts_read_as_empty(tmp_path: Path) -> None:
    written = _facts(random.Random(2), tmp_path, 5)
    text = written.path.read_text("utf-8")
    written.path.write_text(text[: len(text) // 2], "utf-8")
    assert MachineFacts.load(tmp_path, lambda video_id: True).outputs == {}
    assert MachineFacts.load(tmp_path, lambda video_id: True, {"v1"}).outputs == {}
    cut = text.replace('\n  "v2": {', '\n  "v2": {{', 1)  # a broken entry of a wanted video
    written.path.write_text(cut, "utf-8")
    assert MachineFacts.load(tmp_path, lambda video_id: video_id == "v2").outputs == {}
    assert MachineFacts.load(tmp_path, lambda video_id: video_id == "v2", {"v2"}).outputs == {}


@pytest.mark.parametrize("seed", range(8))
def test_facts_searched_for_some_videos_equal_those_read_line_by_line(
    tmp_path: Path, seed: int
) -> None:
    rng = random.Random(100 + seed)
    written = _facts(rng, tmp_path, rng.choice([0, 1, 5, 40]))
    text = written.path.read_text("utf-8")
    ids = sorted(written.outputs.keys() | written.latest.keys() | {"absent", "v"})
    wanted = set(rng.sample(ids, k=min(len(ids), rng.randint(0, 8))))
    searched = machine._by_search(text, wanted)
    assert searched is not None
    assert searched == machine._by_layout(text, lambda video_id: video_id in wanted)
    # In the file's order, as the line loop reads them.
    for name in ("latest", "outputs"):
        assert list(searched.get(name, {})) == [k for k in json.loads(text)[name] if k in wanted]
    read = MachineFacts.load(tmp_path, lambda video_id: video_id in wanted, wanted)
    assert read.outputs == {k: v for k, v in written.outputs.items() if k in wanted}
    assert read.latest == {k: v for k, v in written.latest.items() if k in wanted}
    assert (read.gone, read.stored) == (written.gone, written.stored)


def test_many_videos_are_not_searched_for(tmp_path: Path) -> None:
    written = _facts(random.Random(9), tmp_path, 80)
    text = written.path.read_text("utf-8")
    many = {f"v{n}" for n in range(machine._MAX_SEARCHED + 1)}
    assert machine._by_search(text, many) is None
    read = MachineFacts.load(tmp_path, lambda video_id: video_id in many, many)
    assert read.outputs == {k: v for k, v in written.outputs.items() if k in many}

"""The incremental plan against a full re-plan, after random edits of everything a plan reads."""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from avatarflow import incremental, workflow
from avatarflow.display import plan_json
from avatarflow.errors import UserError
from avatarflow.options import PlanOptions
from avatarflow.statcache import sha256_file
from avatarflow.videostore import LocalVideoStore, StoredObject
from avatarflow.workflow import PlanResult

from .helpers import make_tree, open_course, record_all

SEED = 1721
EDITS = 60

TEMPLATE = """\
<speak version="1.0" xml:lang="en-US" xmlns="http://www.w3.org/2001/10/synthesis">
  <voice name="{{ video.voice }}">
    {% include "intro.j2" %}
    <s>Video {{ video.index }}.</s>
    {{ text }}
  </voice>
</speak>
"""
GESTURE = """\
<speak version="1.0" xml:lang="en-US" xmlns="http://www.w3.org/2001/10/synthesis">
  <voice name="{{ video.voice }}"><bookmark mark="gesture.{{ gesture }}"/>{{ text }}</voice>
</speak>
"""
HEAD = """\
version: 1
name: prop
# the course's defaults
defaults:
  template: narration.ssml.j2
  voice: en-US-AvaMultilingualNeural
  avatar:
    character: lisa
    style: graceful-sitting
  video:
    format: mp4
    codec: h264
  ttl_hours: 24
  vars:
    title: Intro
    course: Git
videos:
"""
VOICES = ("en-US-AndrewNeural", "en-US-JennyNeural", "en-US-GuyNeural")
WORDS = ("commit", "branch", "merge", "{{ course }}", "{{ title | upper }}", "rebase", "tag")


def _item(rng: random.Random, number: int) -> str:
    lines = [f"  - id: v{number}"]
    roll = rng.random()
    if roll < 0.3:
        lines.append(f"    text_file: scripts/v{number}.txt")
    elif roll < 0.4:
        lines.append("    template: gesture.ssml.j2")
        lines.append(f"    text: {json.dumps(_sentence(rng))}")
        lines.append("    vars:\n      gesture: wave-left-1")
    elif roll < 0.5:
        lines.append("    input_kind: plain_text")
        lines.append(f"    text: {json.dumps(_sentence(rng))}")
    else:
        lines.append("    text: |")
        lines.extend(f"      {_sentence(rng)}" for _ in range(rng.randint(1, 3)))
    if rng.random() < 0.3:
        lines.append(f"    voice: {rng.choice(VOICES)}")
    if rng.random() < 0.2:
        lines.append("    video: {background_color: '#1E3A5FFF'}")
    return "\n".join(lines) + "\n"


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8))).capitalize() + "."


class Course:
    """A course on disk and the random edits made to it."""

    def __init__(self, root: Path, rng: random.Random) -> None:
        self.root, self.rng = root, rng
        self.head = HEAD
        self.items = [_item(rng, n) for n in range(12)]
        self.next = 12
        self.kept: list[tuple[Path, bytes | None]] = []
        files: dict[str, str | bytes] = {
            "templates/narration.ssml.j2": TEMPLATE,
            "templates/gesture.ssml.j2": GESTURE,
            "templates/intro.j2": "<s>{{ title }}.</s>",
        }
        files.update({f"scripts/v{n}.txt": _sentence(rng) + "\n" for n in range(40)})
        make_tree(root, files)
        self.write()

    @property
    def manifest(self) -> Path:
        return self.root / "course.yaml"

    def write(self) -> None:
        self.manifest.write_text(self.head + "".join(self.items), "utf-8")

    def records(self) -> list[Path]:
        folder = self.root / ".avatarflow" / "prop" / "renders"
        return sorted(folder.glob("*.json")) if folder.is_dir() else []

    def outputs(self) -> list[Path]:
        folder = self.root / "build" / "videos"
        return sorted(folder.iterdir()) if folder.is_dir() else []

    # -- the edits -------------------------------------------------------------------
    def edit_text(self) -> None:
        i = self.rng.randrange(len(self.items))
        self.items[i] = self.items[i].replace(".", f" {self.rng.choice(WORDS)}.", 1)
        self.write()

    def edit_script(self) -> None:
        """A narration file the manifest reads, mostly; now and then another one."""
        used = re.findall(r"text_file: (\S+)", "".join(self.items))
        name = self.rng.choice(used) if used and self.rng.random() < 0.8 else "scripts/v39.txt"
        path = self.root / name
        if self.rng.random() < 0.3:  # same size, mtime set back: only the ctime tells
            before = path.stat()
            text = path.read_text("utf-8")
            # Letters outside the Jinja markup swap case: the narration stays valid.
            parts = re.split(r"(\{\{.*?\}\})", text)
            swapped = "".join(p if p.startswith("{{") else p.swapcase() for p in parts)
            path.write_text(swapped if swapped != text else text[::-1], "utf-8")
            os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        else:
            path.write_text(_sentence(self.rng) + "\n", "utf-8")

    def edit_defaults(self) -> None:
        old = self.rng.choice(
            ("ttl_hours: 24", "course: Git", "voice: en-US-AvaMultilingualNeural")
        )
        new = {"ttl_hours: 24": "ttl_hours: 48", "course: Git": "course: Git 2"}.get(
            old, "voice: en-US-JennyNeural"
        )
        self.head = self.head.replace(old, new) if old in self.head else HEAD
        self.write()

    def edit_template(self) -> None:
        name = self.rng.choice(("intro.j2", "narration.ssml.j2"))
        path = self.root / "templates" / name
        path.write_text(path.read_text("utf-8").replace("<s>", "<s>Now: ", 1), "utf-8")

    def place_template(self) -> None:
        """The intro template reads the video's index, or stops reading it."""
        path = self.root / "templates" / "intro.j2"
        text = path.read_text("utf-8")
        placed = "<s>{{ title }} ({{ video.index }}).</s>"
        path.write_text(placed if "index" not in text else "<s>{{ title }}.</s>", "utf-8")

    def add_video(self) -> None:
        self.items.insert(self.rng.randrange(len(self.items) + 1), _item(self.rng, self.next))
        self.next += 1
        self.write()

    def remove_video(self) -> None:
        if len(self.items) > 2:
            del self.items[self.rng.randrange(len(self.items))]
            self.write()

    def swap_videos(self) -> None:
        i, j = self.rng.sample(range(len(self.items)), 2)
        self.items[i], self.items[j] = self.items[j], self.items[i]
        self.write()

    def break_video(self) -> None:
        """An error: an unknown key, a bad style, a duplicate id, an alias across items."""
        i = self.rng.randrange(len(self.items))
        broken = self.rng.choice(
            (
                "    vioce: x\n",
                "    avatar: {character: lisa, style: nope}\n",
                "    template: missing.j2\n",
                "    description: *nowhere\n",
            )
        )
        if self.rng.random() < 0.3:
            self.items.insert(i, self.items[i])  # a duplicate id
        else:
            self.items[i] += broken
        self.write()

    def anchor(self) -> None:
        """An anchor in the head used in an item: only the full parse reads that. Done
        again, it is undone: the items then parse alone again."""
        if "&av" in self.head:
            self.head = self.head.replace("  avatar: &av\n", "  avatar:\n")
            self.items = [item.replace("    avatar: *av\n", "") for item in self.items]
            self.write()
            return
        self.head = self.head.replace("  avatar:\n", "  avatar: &av\n")
        plain = [i for i, item in enumerate(self.items) if "avatar" not in item]
        if plain:
            self.items[self.rng.choice(plain)] += "    avatar: *av\n"
        self.write()

    def apply(self) -> None:
        """As an apply leaves it: every video recorded and downloaded."""
        with contextlib.suppress(UserError):  # a broken manifest: apply refuses it too
            record_all(self.manifest)

    # -- the state: render records, kept by request hash -----------------------------
    @property
    def state_dir(self) -> Path:
        return self.root / ".avatarflow" / "prop"

    def keep(self, path: Path) -> None:
        """Remember ``path`` as it is, for :meth:`repair` to put back."""
        if all(kept != path for kept, _ in self.kept):
            self.kept.append((path, path.read_bytes() if path.exists() else None))

    def repair(self) -> None:
        """Put back the state files that an edit broke (an error stops every plan)."""
        for path, data in self.kept:
            if data is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(data)
        self.kept = []

    def edit_record(self, change: Callable[[dict[str, object]], None]) -> None:
        if records := self.records():
            path = self.rng.choice(records)
            data = json.loads(path.read_text("utf-8"))
            change(data)
            path.write_text(json.dumps(data, indent=2), "utf-8")

    def delete_record(self) -> None:
        if records := self.records():
            self.rng.choice(records).unlink()

    def fail_record(self) -> None:
        def fail(data: dict[str, object]) -> None:
            data.update(status="failed", error={"code": "X", "message": "broken"})
            data.pop("output", None)

        self.edit_record(fail)

    def in_flight_record(self) -> None:
        """A job submitted and not downloaded yet: the plan resumes it."""

        def submitted(data: dict[str, object]) -> None:
            data.update(status="submitted")
            for key in ("output", "completed_at", "expires_at"):
                data.pop(key, None)

        self.edit_record(submitted)

    def expire_record(self) -> None:
        """A job the service has deleted by now (by its time-to-live): a missing output
        is then rendered again instead of fetched."""

        def expired(data: dict[str, object]) -> None:
            data.update(completed_at="2020-01-01T00:00:00Z", expires_at="2020-01-02T00:00:00Z")

        self.edit_record(expired)

    def stray_record(self) -> None:
        """A render no video uses (another branch's), valid or not."""
        if records := self.records():
            data = json.loads(self.rng.choice(records).read_text("utf-8"))
            digest = f"{self.rng.getrandbits(256):064x}"
            data["request_hash"] = digest
            path = records[0].with_name(f"{digest}.json")
            self.keep(path)
            if self.rng.random() < 0.3:
                data["narration"] = 7  # not a string: the state is corrupt
            path.write_text(json.dumps(data), "utf-8")

    def corrupt_record(self) -> None:
        if records := self.records():
            path = self.rng.choice(records)
            self.keep(path)
            text = path.read_text("utf-8")
            path.write_text(self.rng.choice((text[:-3], "<<<<<<< HEAD\n" + text)), "utf-8")

    # -- the per-machine facts (.cache/ in the state folder) ---------------------------
    @property
    def facts(self) -> Path:
        return self.state_dir / ".cache" / "checkout.json"

    def edit_facts(self) -> None:
        """Forget what this checkout wrote (an output, a latest render), mark a job gone,
        or lose the whole file (a fresh clone)."""
        if not self.facts.exists():
            return
        data = json.loads(self.facts.read_text("utf-8"))
        roll = self.rng.random()
        if roll < 0.15:
            self.facts.unlink()
            return
        if roll < 0.25:
            self.facts.write_text("{torn", "utf-8")
            return
        for part in ("outputs", "latest"):
            if data[part] and self.rng.random() < 0.5:
                del data[part][self.rng.choice(sorted(data[part]))]
        if (records := self.records()) and self.rng.random() < 0.5:
            render = json.loads(self.rng.choice(records).read_text("utf-8"))
            data["gone"].append(render.get("job_id") or render["synthesis_id"])
        self.facts.write_text(json.dumps(data), "utf-8")

    def drop_hash_cache(self) -> None:
        (self.state_dir / ".cache" / "outputs.json").unlink(missing_ok=True)

    def store_output(self) -> None:
        """An output kept in the local video store: a missing one is fetched from there."""
        if outputs := [p for p in self.outputs() if p.suffix == ".mp4"]:
            path = self.rng.choice(outputs)
            LocalVideoStore().put(path, StoredObject(sha256_file(path), path.stat().st_size))

    # -- the outputs ----------------------------------------------------------------
    def touch_output(self) -> None:
        if outputs := self.outputs():
            path = self.rng.choice(outputs)
            data = path.read_bytes()
            path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # same size, other bytes

    def delete_output(self) -> None:
        if outputs := self.outputs():
            self.rng.choice(outputs).unlink()


def full_plan(manifest: Path) -> tuple[str, object]:
    """The reference: a full plan from scratch (no memo, no cache), or its error."""
    try:
        opened = open_course(manifest)
        opened.workspace.check_output_paths(opened.manifest, opened.requests)
        plan = opened.plan()
        return "plan", (plan_json(plan), opened.built.warnings)
    except UserError as exc:
        return "error", str(exc)


def status_of(manifest: Path) -> object:
    try:
        return [row.to_json() for row in workflow.status(manifest)]
    except UserError as exc:
        return str(exc)


def planned(manifest: Path) -> PlanResult:
    """A plan as ``avatarflow plan`` makes it: from the memo, the cache or in full."""
    return workflow.plan(manifest, PlanOptions())


def cached_plan(manifest: Path) -> tuple[tuple[str, object], int]:
    try:
        made = planned(manifest)
    except UserError as exc:
        return ("error", str(exc)), -1
    rendered = -1 if made.recalled else made.rendered  # the memo is not on trial here
    return ("plan", (plan_json(made.plan), made.warnings)), rendered


@pytest.mark.parametrize("placed", [True, False], ids=["template-reads-index", "moves-kept"])
def test_incremental_plan_equals_a_full_plan_after_random_edits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, placed: bool
) -> None:
    # Trust stats at once (the racy window is for coarse clocks), and take the
    # incremental path whatever the share of changed videos: it is the one on trial.
    monkeypatch.setattr(incremental, "RACY_NS", 0)
    monkeypatch.setattr(incremental, "MAX_CHANGED_SHARE", 1.0)
    if not placed:
        # The template does not read a video's index, so moved items keep their entries,
        # but now and then a narration, an inline text or the template does.
        here = sys.modules[__name__]
        monkeypatch.setattr(here, "TEMPLATE", TEMPLATE.replace("video.index", "video.id"))
        monkeypatch.setattr(here, "WORDS", (*WORDS, "{{ video.index }}"))
    rng = random.Random(SEED)
    course = Course(tmp_path, rng)
    edits: list[Callable[[], None]] = [
        course.edit_text,
        course.edit_text,
        course.edit_script,
        course.edit_script,
        course.edit_defaults,
        course.edit_template,
        course.place_template,
        course.add_video,
        course.add_video,
        course.remove_video,
        course.swap_videos,
        course.break_video,
        course.anchor,
        course.apply,
        course.apply,
        course.delete_record,
        course.fail_record,
        course.in_flight_record,
        course.expire_record,
        course.stray_record,
        course.corrupt_record,
        course.edit_facts,
        course.edit_facts,
        course.drop_hash_cache,
        course.store_output,
        course.touch_output,
        course.delete_output,
        course.delete_output,
    ]
    course.apply()
    planned(course.manifest)  # fills the cache
    decided: list[incremental.Incremental] = []  # the plans the incremental layer made
    real_plan = incremental._plan

    def spied(*args: object) -> incremental.Incremental:
        made = real_plan(*args)  # type: ignore[arg-type]
        decided.append(made)
        return made

    monkeypatch.setattr(incremental, "_plan", spied)
    incremental_runs = 0
    kinds: Counter[str] = Counter()
    for step in range(EDITS):
        edit = rng.choice(edits)
        good = course.head, list(course.items)
        edit()
        expected = full_plan(course.manifest)
        with monkeypatch.context() as full:
            full.setattr(incremental, "requested", lambda *_: None)
            expected_status = status_of(course.manifest)
        decided.clear()
        got, _ = cached_plan(course.manifest)
        assert got == expected, f"step {step}: {edit.__name__}"
        assert status_of(course.manifest) == expected_status, f"step {step}: {edit.__name__}"
        if got[0] == "plan" and decided:
            incremental_runs += 1
            kinds.update(a["action"] for a in got[1][0]["actions"])  # type: ignore[index]
        if got[0] == "error":  # errors do not pile up: most steps plan a valid course
            course.head, course.items = good
            course.write()
            course.repair()
    assert incremental_runs >= EDITS // 4  # the incremental path really was taken
    # ... and decided every kind of action a state kept by render leads to.
    assert {"noop", "create", "rerender", "resume", "download", "forget"} <= kinds.keys(), kinds


def test_one_edit_renders_one_video(tmp_path: Path) -> None:
    course = Course(tmp_path, random.Random(3))
    course.apply()
    first = planned(course.manifest)
    assert first.rendered == 12 and not first.plan.has_changes
    os.utime(course.manifest)
    course.items[4] = course.items[4].replace(
        "  - id: v4\n", "  - id: v4\n    voice: en-US-GuyNeural\n"
    )
    course.write()
    second = planned(course.manifest)
    assert second.rendered == 1
    assert [(a.video_id, a.kind.value) for a in second.plan.changes] == [("v4", "rerender")]
    assert plan_json(second.plan) == full_plan(course.manifest)[1][0]  # type: ignore[index]


def test_an_error_in_a_changed_item_is_located_as_by_the_full_plan(tmp_path: Path) -> None:
    course = Course(tmp_path, random.Random(5))
    planned(course.manifest)
    course.items[7] += "    avatar: {character: lisa, style: nope}\n"
    course.write()
    with pytest.raises(UserError) as caught:
        planned(course.manifest)
    line = 1 + (course.head + "".join(course.items[:8])).count("\n") - 1
    assert str(caught.value).startswith(f"course.yaml:{line}: ")
    assert "videos[7].avatar.style" in str(caught.value)


def _cache_files(tmp_path: Path) -> dict[str, bytes]:
    folder = Path(os.environ["AVATARFLOW_CACHE_DIR"]) / "videos"
    return {p.suffix: p.read_bytes() for p in folder.iterdir()}


def test_one_edit_writes_a_journal_beside_the_cache_and_the_next_plan_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(incremental, "RACY_NS", 0)  # stats trusted at once
    monkeypatch.setattr(incremental, "JOURNAL_SHARE", 0.3)  # 12 videos: 3 changes may journal
    monkeypatch.setattr(incremental, "_JOURNAL_MIN", 0)
    course = Course(tmp_path, random.Random(3))
    course.apply()
    planned(course.manifest)
    planned(course.manifest)  # the no-ops kept in each row
    whole = _cache_files(tmp_path)
    assert ".journal" not in whole
    os.utime(course.manifest)
    course.items[4] = course.items[4].replace(
        "  - id: v4\n", "  - id: v4\n    voice: en-US-GuyNeural\n"
    )
    course.write()
    first = planned(course.manifest)
    after = _cache_files(tmp_path)
    assert after[".rows"] == whole[".rows"] and ".journal" in after  # the rows file as it was
    assert len(after[".journal"]) < len(whole[".rows"]) / 3
    # The next plan reads the cache and its journal: one video is rendered, the same plan.
    course.items[4] += "    video: {background_color: '#1E3A5FFF'}\n"
    course.write()
    second = planned(course.manifest)
    assert second.rendered == 1 and first.rendered == 1
    assert plan_json(second.plan) == full_plan(course.manifest)[1][0]  # type: ignore[index]


@pytest.mark.parametrize("damage", ["torn", "foreign", "older"])
def test_a_broken_or_stale_journal_is_a_cache_as_its_file_has_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    monkeypatch.setattr(incremental, "RACY_NS", 0)
    monkeypatch.setattr(incremental, "_JOURNAL_MIN", 0)
    monkeypatch.setattr(incremental, "JOURNAL_SHARE", 1.0)
    course = Course(tmp_path, random.Random(4))
    course.apply()
    for note in range(2):  # a plan in full (the cache written whole), then one from it
        course.items[3] += f"    # note {note}\n"
        course.write()
        planned(course.manifest)
    folder = Path(os.environ["AVATARFLOW_CACHE_DIR"]) / "videos"
    journal = next(folder.glob("*.journal"))
    if damage == "torn":
        journal.write_bytes(journal.read_bytes()[:-7])
    elif damage == "foreign":
        journal.write_bytes(b"not a journal")
    else:  # a sound journal written for another cache file
        data, _ = incremental._read_marshalled(journal)
        incremental._write_marshalled(journal, (bytes(32), *data[1:]))
    cache = incremental.RequestCache.open(course.manifest, "azure")
    assert len(cache.rows) == len(course.items)
    course.items[6] += "    # note 2\n"
    course.write()
    got = cached_plan(course.manifest)[0]
    assert got == full_plan(course.manifest)


def test_narrations_in_linked_and_nested_folders_plan_as_in_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(incremental, "RACY_NS", 0)
    course = Course(tmp_path / "course", random.Random(11))
    # The scripts through a symlink to a folder inside the course, and one narration in
    # a nested folder of its own.
    (course.root / "scripts").rename(course.root / "library")
    (course.root / "scripts").symlink_to("library", target_is_directory=True)
    make_tree(course.root, {"deep/er/v0.txt": "Deep inside.\n"})
    course.items[0] = "  - id: v0\n    text_file: deep/er/v0.txt\n"
    course.write()
    scripted = [n for n, item in enumerate(course.items) if "text_file: scripts/" in item]
    assert scripted, "the seed gives some videos a script"
    course.apply()
    assert not planned(course.manifest).plan.has_changes
    number = re.search(r"scripts/v(\d+)\.txt", course.items[scripted[0]])
    assert number is not None
    script = course.root / "library" / f"v{number.group(1)}.txt"
    script.write_text(script.read_text("utf-8") + "Edited through the link.\n", "utf-8")
    (course.root / "deep/er/v0.txt").write_text("Deep inside, edited.\n", "utf-8")
    edited = planned(course.manifest)
    assert edited.rendered == 2
    assert {a.video_id for a in edited.plan.changes} == {"v0", f"v{scripted[0]}"}
    assert plan_json(edited.plan) == full_plan(course.manifest)[1][0]  # type: ignore[index]
    # The link now leads out of the course: the cache trusts nothing it knew of it.
    outside = tmp_path / "elsewhere"
    (course.root / "library").rename(outside)
    (course.root / "scripts").unlink()
    (course.root / "scripts").symlink_to(outside, target_is_directory=True)
    expected = full_plan(course.manifest)
    assert expected[0] == "error" and "points outside the manifest's folder" in str(expected[1])
    assert cached_plan(course.manifest)[0] == expected


def test_a_video_removed_while_status_ran_is_still_forgotten_by_the_next_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The cache knows the facts keep no output of a video gone from the manifest, for
    # the videos of its rows: status rewrites the rows after a video is removed, and the
    # plan after it must look for that video's output again.
    monkeypatch.setattr(incremental, "RACY_NS", 0)
    monkeypatch.setattr(incremental, "MAX_CHANGED_SHARE", 1.0)  # the items after it moved
    course = Course(tmp_path, random.Random(21))
    course.apply()
    assert not planned(course.manifest).plan.has_changes
    gone = course.items.pop(3)
    course.write()
    status_of(course.manifest)
    course.items[5] = course.items[5].replace("  - id: ", "  - voice: en-US-GuyNeural\n    id: ", 1)
    course.write()
    made = planned(course.manifest)
    assert 0 <= made.rendered < len(course.items)  # the incremental path
    gone_id = gone.split("\n", 1)[0].removeprefix("  - id: ")
    assert ("forget", gone_id) in {(a.kind.value, a.video_id) for a in made.plan.actions}
    assert plan_json(made.plan) == full_plan(course.manifest)[1][0]  # type: ignore[index]


def _facts_searched(monkeypatch: pytest.MonkeyPatch) -> list[set[str]]:
    """The videos each read of the facts searched for, from now on; a read of every
    line fails the test."""
    from avatarflow import machine

    searched: list[set[str]] = []
    real = machine._by_search

    def spy(text: str, videos: set[str]) -> object:
        searched.append(set(videos))
        return real(text, videos)

    monkeypatch.setattr(machine, "_by_search", spy)
    monkeypatch.setattr(machine, "_by_layout", lambda *_: pytest.fail("every line read"))
    return searched


def _course_whose_moves_keep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int) -> Course:
    """``_rendered_course`` with a template that does not read a video's index (items
    that move keep their entries)."""
    here = sys.modules[__name__]
    monkeypatch.setattr(here, "TEMPLATE", TEMPLATE.replace("video.index", "video.id"))
    return _rendered_course(tmp_path, monkeypatch, seed)


def _rendered_course(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int) -> Course:
    """A course rendered and planned (nothing to do), its stats trusted at once."""
    monkeypatch.setattr(incremental, "RACY_NS", 0)
    course = Course(tmp_path, random.Random(seed))
    course.apply()
    assert not planned(course.manifest).plan.has_changes
    return course


def test_one_edit_looks_for_its_video_alone_in_the_facts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    course = _rendered_course(tmp_path, monkeypatch, 23)
    searched = _facts_searched(monkeypatch)
    course.items[2] = course.items[2].replace("  - id: ", "  - voice: en-US-GuyNeural\n    id: ", 1)
    course.write()
    made = planned(course.manifest)
    assert made.rendered == 1 and searched == [{"v2"}]
    assert plan_json(made.plan) == full_plan(course.manifest)[1][0]  # type: ignore[index]


def test_with_outputs_of_videos_gone_one_edit_looks_for_its_video_and_those(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Outputs kept for videos removed from the manifest (until prune): the facts are
    # searched for the changed video and the removed ones, not read line by line.
    from avatarflow import machine

    course = _course_whose_moves_keep(tmp_path, monkeypatch, 23)
    gone = [course.items.pop(7), course.items.pop(3)]
    gone_ids = {item.split("\n", 1)[0].removeprefix("  - id: ") for item in gone}
    course.write()
    first = planned(course.manifest)
    assert {a.video_id for a in first.plan.actions if a.kind.value == "forget"} == gone_ids
    by_layout = machine._by_layout
    searched = _facts_searched(monkeypatch)
    course.items[2] = course.items[2].replace("  - id: ", "  - voice: en-US-GuyNeural\n    id: ", 1)
    course.write()
    made = planned(course.manifest)
    assert made.rendered == 1 and searched == [{"v2", *gone_ids}]
    assert plan_json(made.plan) == full_plan(course.manifest)[1][0]  # type: ignore[index]
    # A video of the manifest again: the facts are read as they are (its id is wanted).
    monkeypatch.setattr(machine, "_by_layout", by_layout)
    course.items.append(gone[0])
    course.write()
    again = planned(course.manifest)
    assert plan_json(again.plan) == full_plan(course.manifest)[1][0]  # type: ignore[index]


def test_a_video_added_at_the_top_renders_that_video_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(incremental, "RACY_NS", 0)
    here = sys.modules[__name__]
    monkeypatch.setattr(here, "TEMPLATE", TEMPLATE.replace("video.index", "video.id"))
    course = Course(tmp_path, random.Random(31))
    # One narration that reads its video's place: it moves, so its request changes.
    course.items[6] = "  - id: v6\n    text: 'Video number {{ video.index }}.'\n"
    course.write()
    course.apply()
    assert not planned(course.manifest).plan.has_changes
    course.items.insert(0, "  - id: first\n    text: A new first video.\n")
    course.write()
    made = planned(course.manifest)
    assert made.rendered == 2  # the new video, and the one whose request names its place
    assert {(a.video_id, a.kind.value) for a in made.plan.changes} == {
        ("first", "create"),
        ("v6", "rerender"),
    }
    assert plan_json(made.plan) == full_plan(course.manifest)[1][0]  # type: ignore[index]
    del course.items[0]  # and taken away again: every video as it was
    course.write()
    back = planned(course.manifest)
    assert back.rendered <= 1 and not back.plan.has_changes
    assert plan_json(back.plan) == full_plan(course.manifest)[1][0]  # type: ignore[index]


def test_a_template_that_reads_the_index_rebuilds_every_video_that_moved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(incremental, "RACY_NS", 0)
    course = Course(tmp_path, random.Random(31))  # its template reads ``video.index``
    course.apply()
    planned(course.manifest)
    course.items.insert(0, "  - id: first\n    text: A new first video.\n")
    course.write()
    made = planned(course.manifest)
    assert {a.video_id for a in made.plan.changes} == {"first", *(f"v{n}" for n in range(12))}
    assert plan_json(made.plan) == full_plan(course.manifest)[1][0]  # type: ignore[index]


@pytest.mark.parametrize(
    "text",
    [
        "{{ video }}",
        "{% for k in video %}{{ k }}{% endfor %}",
        "{{ loop_index }}",
        "{{ video['id'] }}",
    ],
)
def test_what_may_read_a_video_s_place(text: str) -> None:
    assert incremental.reads_place(f"Hello {text}.")


@pytest.mark.parametrize(
    "text",
    [
        "{{ video.id }} {{ video.voice }}",
        "{{ video . avatar.style }}",
        "video: plain words",
        "Stage it in the index first. {{ course }}",
        "",
    ],
)
def test_what_does_not_read_a_video_s_place(text: str) -> None:
    assert not incremental.reads_place(text)


def _scripted(course: Course) -> list[Path]:
    """The narration files the course's videos read."""
    found = re.findall(r"text_file: (\S+)", "".join(course.items))
    assert len(found) >= 3, "the seed gives some videos a script"
    return [course.root / name for name in found]


def test_a_narration_file_gone_or_made_a_link_plans_as_in_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every narration file is taken by its stat in one pass: one gone, or one that is a
    # link now, is looked at alone, and the plan is the full plan's.
    course = _rendered_course(tmp_path, monkeypatch, 31)
    first, second, third = _scripted(course)[:3]
    kept = first.read_bytes()
    first.unlink()
    expected = full_plan(course.manifest)
    assert expected[0] == "error" and first.name in str(expected[1])
    assert cached_plan(course.manifest)[0] == expected
    first.write_bytes(kept)
    assert cached_plan(course.manifest)[0] == full_plan(course.manifest)
    # A link to another narration: the video reads what the link leads to.
    second.unlink()
    second.symlink_to(third.name)
    expected = full_plan(course.manifest)
    got, rendered = cached_plan(course.manifest)
    assert got == expected
    assert rendered == 1 or expected[0] == "error"


def test_the_cache_keeps_the_narration_files_its_videos_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    course = _course_whose_moves_keep(tmp_path, monkeypatch, 31)
    scripts = _scripted(course)

    def known() -> set[str]:
        return set(incremental.RequestCache.open(course.manifest, "azure").narrations)

    relative = {path.relative_to(course.root).as_posix() for path in scripts}
    scripts[1].write_text("Edited.\n", "utf-8")  # a plan of the cache, not the memo
    assert planned(course.manifest).rendered == 1
    assert known() == relative
    # A video that read a file removed: the file is known no more, though it is there.
    gone = scripts[0].relative_to(course.root).as_posix()
    course.items = [item for item in course.items if f"text_file: {gone}\n" not in item]
    course.write()
    assert planned(course.manifest).rendered == 1  # the edited one, still to render
    assert scripts[0].exists() and known() == relative - {gone}

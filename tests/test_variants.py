"""Variants: one manifest, every video rendered per language, each with its own id,
narration file, output and render."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from avatarflow.emulator.requestlog import create_counts, read_request_log
from avatarflow.packing import group

from .helpers import MANIFEST, copy_example, course, open_course, run_cli

REPO = Path(__file__).resolve().parent.parent
BASES = ["01-welcome", "02-commits", "03-branches", "04-merging", "05-recap", "06-outro"]
GERMAN = [f"{video}@de-DE" for video in BASES]

LANGUAGES = """\
variants:
  locale:
    en-US: {primary: true}
    de-DE:
      voice: de-DE-KatjaNeural
      vars: {title: Einleitung}
"""


@pytest.fixture(autouse=True)
def fast_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AVATARFLOW_EMULATOR_CONFIG", json.dumps({"width": 160, "height": 90}))
    monkeypatch.delenv("AVATARFLOW_EMULATOR_FAULTS", raising=False)


def bilingual(tmp_path: Path) -> Path:
    return copy_example(tmp_path) / "git-course-i18n.yaml"


def creates(manifest: Path) -> Counter[str]:
    data = manifest.parent / ".avatarflow" / "git-course-i18n" / "emulator" / "service"
    return Counter(r.job_id or "" for r in read_request_log(data) if r.created)


def apply(manifest: Path, *args: str) -> str:
    result = run_cli("apply", str(manifest), "--emulator", "--yes", *args)
    assert result.code == 0, result.err
    return result.out


def test_example_course_plans_every_video_in_both_languages(tmp_path: Path) -> None:
    manifest = bilingual(tmp_path)
    data = json.loads(run_cli("plan", "--json", str(manifest)).out)
    ids = [a["video"] for a in data["actions"]]
    assert sorted(ids) == sorted(BASES + GERMAN)
    assert data["summary"]["create"] == 12
    body = json.loads(run_cli("render", "--json", str(manifest), "02-commits@de-DE").out)
    assert (
        'xml:lang="de-DE"' in body["input"] and "de-DE-SeraphinaMultilingualNeural" in body["input"]
    )
    assert "Ein Commit ist eine Momentaufnahme" in body["input"]  # scripts/de-DE/02-commits.txt
    assert "Commits &amp; Verlauf." in body["input"]  # a templated var, from the variant's vars
    english = json.loads(run_cli("render", "--json", str(manifest), "02-commits").out)
    assert "A commit is a snapshot" in english["input"] and "{{" not in english["input"]


def test_german_edit_rerenders_only_its_variant_and_outputs_land_per_language(
    tmp_path: Path,
) -> None:
    manifest = bilingual(tmp_path)
    apply(manifest)
    first = creates(manifest)
    assert len(first) == 12 and set(first.values()) == {1}
    drafts = manifest.parent / "build" / "videos-i18n-drafts"
    assert sorted(p.name for p in (drafts / "de-DE").glob("*.mp4")) == [f"{b}.mp4" for b in BASES]
    assert (drafts / "de-DE" / "06-outro.vtt").is_file()  # subtitles: external_file, per language
    assert sorted(p.name for p in drafts.glob("*.mp4")) == [f"{b}.mp4" for b in BASES]

    script = manifest.parent / "scripts" / "de-DE" / "03-branches.txt"
    script.write_text(script.read_text("utf-8") + "Lösche gemergte Branches.\n", "utf-8")
    plan = run_cli("plan", "--emulator", str(manifest)).out
    assert "~ 03-branches@de-DE  script changed" in plan
    assert "Plan: 0 to create, 1 to re-render," in plan
    apply(manifest)
    after = creates(manifest)
    new = [job for job in after if job not in first]
    assert len(new) == 1 and new[0].startswith("git-course-i18n-03-branches-de-DE-")
    assert "No changes" in apply(manifest)


def test_only_selects_a_language_by_glob(tmp_path: Path) -> None:
    manifest = bilingual(tmp_path)
    out = apply(manifest, "--only", "*@de-DE")
    planned = re.findall(r"^  \+ (\S+) +new video", out, re.MULTILINE)
    assert planned == GERMAN
    state = open_course(manifest, "emulator").load_state()
    assert sorted(state.records) == sorted(GERMAN)
    counts = create_counts(manifest.parent / ".avatarflow/git-course-i18n/emulator/service")
    assert len(counts) == 6


def test_adding_a_language_leaves_the_first_one_untouched(tmp_path: Path) -> None:
    one = open_course(course(tmp_path / "one"))
    both = open_course(
        course(tmp_path / "two", MANIFEST.replace("videos:\n", LANGUAGES + "videos:\n"))
    )
    hashes = {r.video_id: r.content_hash for r in both.requests}
    assert list(hashes) == ["a", "a@de-DE", "b", "b@de-DE", "c", "c@de-DE"]
    for request in one.requests:
        assert hashes[request.video_id] == request.content_hash  # no re-render, same id
    german = both.request("b@de-DE")
    assert "de-DE-KatjaNeural" in german.rendered.content
    assert "<s>Einleitung.</s>" in german.rendered.content
    assert both.workspace.output_path(german).relative_to(tmp_path / "two") == Path(
        "build/videos/de-DE/b.mp4"
    )


def test_a_video_can_keep_to_some_variants(tmp_path: Path) -> None:
    text = MANIFEST.replace("videos:\n", LANGUAGES + "videos:\n").replace(
        "  - id: c\n", "  - id: c\n    variants: {locale: [de-DE]}\n"
    )
    ids = [r.video_id for r in open_course(course(tmp_path, text)).requests]
    assert ids == ["a", "a@de-DE", "b", "b@de-DE", "c@de-DE"]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (
            ("  - id: c\n", "  - id: c\n    variants: {locale: [de-CH]}\n"),
            "course.yaml:21: videos[2].variants.locale: unknown locale 'de-CH' "
            "(did you mean 'de-DE'?); locale values: en-US, de-DE",
        ),
        (
            ("  - id: c\n", "  - id: c\n    variants: {lokale: [de-DE]}\n"),
            "course.yaml:21: videos[2].variants.lokale: unknown variant dimension 'lokale' "
            "(did you mean 'locale'?)",
        ),
        (
            ("    de-DE:\n", "    de/DE:\n"),
            "course.yaml:12: variants.locale.de/DE: variant 'de/DE' may only use letters",
        ),
        (
            ("    de-DE:\n", "    de-DE:\n      primary: true\n"),
            "course.yaml:13: variants.locale.de-DE.primary: only one value of 'locale' may be "
            "primary ('en-US' is already)",
        ),
    ],
)
def test_variant_mistakes_are_located(tmp_path: Path, change: tuple[str, str], error: str) -> None:
    text = MANIFEST.replace("videos:\n", LANGUAGES + "videos:\n").replace(*change)
    result = run_cli("validate", str(course(tmp_path, text)))
    assert result.code == 1
    assert result.err.startswith("Error: " + error), result.err
    assert len(result.err.splitlines()) == 1


def test_packing_groups_variants_only_with_identical_settings(tmp_path: Path) -> None:
    avatars = LANGUAGES.replace(
        "      vars: {title: Einleitung}\n",
        "      vars: {title: Einleitung}\n    fr-FR:\n      voice: fr-FR-DeniseNeural\n"
        "      avatar: {character: harry, style: business}\n",
    )
    opened = open_course(course(tmp_path, MANIFEST.replace("videos:\n", avatars + "videos:\n")))
    packs = [[r.video_id for r in pack] for pack in group(opened.requests)]
    # English and German differ only in their SSML input: one pack; French has its own
    # avatar, so its own pack.
    assert packs == [
        ["a", "a@de-DE", "b", "b@de-DE", "c", "c@de-DE"],
        ["a@fr-FR", "b@fr-FR", "c@fr-FR"],
    ]

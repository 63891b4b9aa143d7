"""Identity: the hash follows the request body, and nothing else."""

from __future__ import annotations

from pathlib import Path

from avatarflow.payload import ID_RE, synthesis_id

from .helpers import MANIFEST, course, open_course


def hashes(manifest: Path) -> dict[str, str]:
    return {r.video_id: r.content_hash for r in open_course(manifest).requests}


def test_editing_one_text_changes_only_that_hash(tmp_path: Path) -> None:
    before = hashes(course(tmp_path / "one"))
    after = hashes(course(tmp_path / "two", MANIFEST.replace("video b.", "video B!")))
    assert [k for k in before if before[k] != after[k]] == ["b"]


def test_formatting_reordering_comments_and_unused_vars_change_nothing(tmp_path: Path) -> None:
    reformatted = """\
    # a comment that changes nothing
    name: demo      # trailing comment
    version: 1
    videos:
        -   text:   "Hello from video a."
            id: a
        -   id: b
            text: Hello from video b.
        -   {id: c, text: Hello from video c.}
    defaults:
        vars: {title: Intro, unused: not referenced anywhere}
        video: {codec: h264, format: mp4}
        avatar:
            style: graceful-sitting
            character: lisa
        voice: en-US-AvaMultilingualNeural
        template: narration.ssml.j2
    """
    assert hashes(course(tmp_path / "one")) == hashes(course(tmp_path / "two", reformatted))


def test_every_request_field_is_part_of_the_identity(tmp_path: Path) -> None:
    base = hashes(course(tmp_path / "base"))
    variants = {
        "codec": MANIFEST.replace("codec: h264", "codec: hevc"),
        "voice": MANIFEST.replace("AvaMultilingualNeural", "AndrewNeural"),
        "style": MANIFEST.replace("graceful-sitting", "casual-sitting"),
        "title": MANIFEST.replace("title: Intro", "title: Outro"),
        "ttl": MANIFEST.replace("  vars:", "  ttl_hours: 24\n  vars:"),
    }
    for name, text in variants.items():
        changed = hashes(course(tmp_path / name, text))
        assert all(changed[k] != base[k] for k in base), name


def test_synthesis_id_keeps_the_service_rule_for_long_and_odd_ids() -> None:
    digest = "ab" * 32
    short = synthesis_id("git-course", "01-welcome", digest)
    assert short == "git-course-01-welcome-abababababab"
    long_a = synthesis_id("course", "x" * 100 + "a", digest)
    long_b = synthesis_id("course", "x" * 100 + "b", digest)
    for value in (short, long_a, long_b, synthesis_id("n", "_odd.id_", digest)):
        assert ID_RE.match(value), value
        assert 3 <= len(value) <= 64
    assert long_a != long_b


def test_same_manifest_gives_same_ids_across_runs(tmp_path: Path) -> None:
    manifest = course(tmp_path)
    first = [r.synthesis_id for r in open_course(manifest).requests]
    second = [r.synthesis_id for r in open_course(manifest).requests]
    assert first == second
    assert first[0].startswith("demo-a-")

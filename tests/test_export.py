"""export: the course as one video with chapters and one merged .vtt, checked with the
bundled ffmpeg's own reading of the file."""

from __future__ import annotations

import html
import re
import subprocess
from pathlib import Path

import pytest

from avatarflow.coursevideo import export
from avatarflow.emulator import probe
from avatarflow.emulator.video import ffmpeg_exe
from avatarflow.errors import ConfigError
from avatarflow.options import ExportOptions, ReviewOptions
from avatarflow.reviewpage import review

from .course_fixtures import VIDEOS, apply_drafts, copy_example, vtt_cues
from .helpers import open_course, run_cli

_CHAPTER_RE = re.compile(
    r"Chapter #0:(\d+): start (\d+\.\d+), end (\d+\.\d+)\s+Metadata:\s+title\s+: (.*)"
)


pytestmark = pytest.mark.usefixtures("fast_emulator")


def chapters(path: Path) -> list[tuple[float, float, str]]:
    text = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True, check=False
    ).stderr
    return [(float(s), float(e), t.strip()) for _, s, e, t in _CHAPTER_RE.findall(text)]


def durations(manifest: Path) -> dict[str, float]:
    state = open_course(manifest, "emulator").load_state()
    return {
        vid: probe(manifest.parent / rec.output.path).duration
        for vid, rec in state.records.items()
        if rec.output
    }


def _words(text: str) -> str:
    return " ".join(re.sub(r"<[^>]*>", " ", html.unescape(text)).split())


def test_export_joins_the_course_without_reencoding(tmp_path: Path) -> None:
    manifest = copy_example(tmp_path)
    apply_drafts(manifest)
    out = tmp_path / "out" / "course.mp4"
    result = run_cli("export", str(manifest), "--emulator", "-o", str(out))
    assert result.code == 0, result.err
    assert "6 chapters" in result.out and "joined without re-encoding" in result.out

    parts = durations(manifest)
    assert abs(probe(out).duration - sum(parts.values())) <= 0.5
    found = chapters(out)
    assert [title.split(":")[0] for _, _, title in found] == VIDEOS
    assert found[1][2] == "02-commits: Commits & history <basics>"
    clock = 0.0
    for (start, end, _), video_id in zip(found, VIDEOS, strict=True):
        assert abs(start - clock) < 0.05 and abs(end - start - parts[video_id]) < 0.05
        clock = end

    vtt = out.with_suffix(".vtt")
    cues = vtt_cues(vtt.read_text("utf-8"))
    # 02-commits says its title "Commits & history <basics>": its embedded track keeps the
    # words in <...>, and the merged file has them escaped, as WebVTT text must be.
    said = " ".join(text for _, _, text in cues)
    assert "Commits &amp; history &lt;basics&gt;." in said
    assert "<" not in said and "&amp;amp;" not in said
    starts = [s for s, _, _ in cues]
    assert starts == sorted(starts) and cues[-1][1] <= clock + 0.05
    spoken = _words(" ".join(text for _, _, text in cues))
    state = open_course(manifest, "emulator").load_state()
    for video_id in VIDEOS:
        narration = state.records[video_id].narration
        assert narration
        for sentence in re.split(r"(?<=[.!?])\s+", _words(narration)):
            assert sentence in spoken, (video_id, sentence)
    assert sorted((tmp_path / "out").iterdir()) == sorted([out, vtt])  # no temp files

    # On a terminal the same export draws a progress bar while ffmpeg writes.
    again = tmp_path / "again.mp4"
    shown = run_cli("--color", "always", "export", str(manifest), "--emulator", "-o", str(again))
    assert shown.code == 0, shown.err
    assert "export" in shown.err and "━" in shown.err
    assert abs(probe(again).duration - probe(out).duration) < 0.05


def test_mixed_formats_are_reencoded_and_only_selects_videos(tmp_path: Path) -> None:
    manifest = copy_example(tmp_path)
    text = manifest.read_text().replace(
        "    vars: {title: Branches}",
        "    vars: {title: Branches}\n    video: {format: webm, codec: vp9}",
    )
    manifest.write_text(text)
    apply_drafts(manifest, "--only", "0[234]-*")
    out = tmp_path / "part.mp4"
    result = export(manifest, out, ExportOptions(emulator=True, only=("0[234]-*",)))
    assert result.reencoded
    assert [c.video_id for c in result.chapters] == ["02-commits", "03-branches", "04-merging"]
    parts = durations(manifest)
    assert abs(probe(out).duration - sum(parts.values())) <= 0.5
    info = probe(out)
    assert info.video_codec == "h264" and info.audio_codecs == ["aac"]
    assert len(chapters(out)) == 3


def test_export_of_an_unrendered_course_is_one_error_line(tmp_path: Path) -> None:
    manifest = copy_example(tmp_path)
    out = tmp_path / "course.mp4"
    result = run_cli("export", str(manifest), "--emulator", "-o", str(out))
    assert result.code == 1
    assert result.err.strip() == (
        "Error: video 01-welcome has no intact rendered file; run apply --emulator first"
    )
    assert not out.exists() and list(tmp_path.glob("*.mp4")) == []
    result = run_cli("export", str(manifest), "--emulator", "-o", str(out), "--only", "nope*")
    assert result.code == 1 and "no video matches 'nope*'" in result.err
    result = run_cli("export", str(manifest), "--emulator", "-o", str(tmp_path / "course.avi"))
    assert (result.code, result.err.strip()) == (
        1,
        "Error: course.avi: export writes .mp4 or .webm files",
    )
    (tmp_path / "page").write_text("a file, not a folder")
    result = run_cli("review", str(manifest), "--emulator", "-o", str(tmp_path / "page"))
    assert result.code == 1 and "is a file" in result.err  # click's own check
    with pytest.raises(ConfigError, match="exists and is not a folder"):
        review(manifest, ReviewOptions(emulator=True, out_dir=tmp_path / "page"))

"""subtitles: external_file — a .vtt beside each video, verified and recorded like it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from avatarflow.emulator import probe
from avatarflow.emulator.requestlog import read_request_log
from avatarflow.statcache import sha256_file

from .course_fixtures import VIDEOS, apply_drafts, copy_example, vtt_cues
from .helpers import open_course, render_file, run_cli, temp_files

pytestmark = pytest.mark.usefixtures("fast_emulator")


@pytest.mark.parametrize("api_version", ["2024-08-01", "3.1-preview1"])
def test_external_file_puts_a_vtt_beside_every_video(tmp_path: Path, api_version: str) -> None:
    manifest = copy_example(tmp_path)
    text = manifest.read_text().replace("subtitles: soft_embedded", "subtitles: external_file")
    text = text.replace(
        "templates_dir: ../templates",
        f"templates_dir: ../templates\nservice: {{api_version: {api_version}}}",
    )
    manifest.write_text(text)
    apply_drafts(manifest)

    state = open_course(manifest, "emulator").load_state()
    for video_id in VIDEOS:
        record = state.records[video_id]
        assert record.output is not None and record.subtitles is not None
        video = manifest.parent / record.output.path
        vtt = manifest.parent / record.subtitles.path
        assert vtt == video.with_suffix(".vtt")
        assert sha256_file(vtt) == record.subtitles.sha256
        assert vtt.stat().st_size == record.subtitles.size
        cues = vtt_cues(vtt.read_text("utf-8"))
        assert cues, video_id
        duration = probe(video).duration
        starts = [start for start, _, _ in cues]
        assert starts == sorted(starts)
        for start, end, words in cues:
            assert 0 <= start < end <= duration + 0.05, (video_id, start, end, duration)
            assert words.strip()
        # The record says which words were asked for, so later diffs have a "before".
        assert record.narration and cues[0][2].split()[0] in record.narration
    assert temp_files(manifest.parent / "build") == []


def test_soft_embedded_writes_no_sidecar(tmp_path: Path) -> None:
    manifest = copy_example(tmp_path)
    apply_drafts(manifest, "--only", "01-welcome", "--only", "06-outro")
    drafts = manifest.parent / "build" / "videos-drafts"
    assert sorted(p.name for p in drafts.iterdir()) == [
        "01-welcome.mp4",
        "06-outro.mp4",
        "06-outro.vtt",  # the example's outro asks for an external file
    ]
    record = json.loads(render_file(manifest, "01-welcome", "emulator").read_text())
    assert "subtitles" not in record


def test_a_lost_vtt_is_downloaded_again_without_a_new_render(tmp_path: Path) -> None:
    manifest = copy_example(tmp_path)
    apply_drafts(manifest, "--only", "06-outro")
    vtt = manifest.parent / "build" / "videos-drafts" / "06-outro.vtt"
    original = vtt.read_bytes()
    vtt.unlink()
    plan = run_cli("plan", str(manifest), "--emulator")
    assert "↓ 06-outro" in plan.out
    creates = len([r for r in read_request_log(data_dir(manifest)) if r.kind == "create"])
    apply_drafts(manifest, "--only", "06-outro")
    assert vtt.read_bytes() == original
    assert len([r for r in read_request_log(data_dir(manifest)) if r.kind == "create"]) == creates


def data_dir(manifest: Path) -> Path:
    return manifest.parent / ".avatarflow" / "git-course" / "emulator" / "service"

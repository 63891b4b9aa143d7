"""apply's progress: one overall display on a terminal, plain lines in a pipe."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console

from avatarflow.display import ApplyProgress
from avatarflow.runner import Event

from .course_fixtures import VIDEOS, copy_example
from .helpers import run_cli

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


pytestmark = pytest.mark.usefixtures("fast_emulator")


def test_stage_counts_follow_the_events() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    progress = ApplyProgress(console, 4)
    assert progress.stages() == "4 waiting"
    progress(Event("submitted", "a", "submitted as a-1", {"job": "a-1"}))
    progress(Event("adopted", "b", "adopted existing job b-1"))
    progress(Event("status", "a", "a-1 is Running", {"status": "Running"}))
    assert progress.stages() == "2 waiting · 1 submitted · 1 rendering"
    progress(Event("status", "b", "b-1 is Succeeded", {"status": "Succeeded"}))
    progress(Event("downloaded", "a", "saved a.mp4 (10 bytes)"))
    progress(Event("failed", "c", "failed: Boom: no"))
    assert progress.stages() == "1 waiting · 1 downloading · 1 done · 1 failed"
    task = progress.progress.tasks[0]
    assert (task.completed, task.total) == (2, 4)


def test_apply_on_a_terminal_shows_one_overall_display(tmp_path: Path) -> None:
    manifest = copy_example(tmp_path)
    result = run_cli("--color", "always", "apply", str(manifest), "--emulator", "--yes")
    assert result.code == 0, result.err
    text = ANSI.sub("", result.err)
    assert "0/?" not in text
    assert "6/6" in text and "6 done" in text
    lines = re.split(r"[\r\n]+", text)  # the live display redraws with carriage returns
    for video in VIDEOS:  # each finished video printed once above the display
        assert sum(line.startswith(f"{video}: saved ") for line in lines) == 1, video
    assert any(re.search(r"\d+/6 .*eta .*\d+ (rendering|submitted|queued)", ln) for ln in lines)


def test_apply_in_a_pipe_prints_plain_lines(tmp_path: Path) -> None:
    manifest = copy_example(tmp_path)
    result = run_cli("apply", str(manifest), "--emulator", "--yes")
    assert result.code == 0, result.err
    assert not ANSI.search(result.err) and "\r" not in result.err
    saved = [line for line in result.err.splitlines() if ": saved " in line]
    assert sorted(line.split(":")[0] for line in saved) == VIDEOS
    plan_lines = result.out.splitlines()
    assert all(len(line) <= 100 for line in plan_lines)

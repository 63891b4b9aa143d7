"""The example course copied into a test folder and rendered on the emulator, shared by
the review, export, subtitle and workflow tests."""

from __future__ import annotations

import re
from pathlib import Path

from .helpers import REPO, VIDEOS, example, run_cli

__all__ = ["REPO", "VIDEOS"]
_CUE_RE = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) --> (\d\d):(\d\d):(\d\d)\.(\d{3})$")


def copy_example(root: Path) -> Path:
    return example(root)


def apply_drafts(manifest: Path, *args: str) -> None:
    result = run_cli("apply", str(manifest), "--emulator", "--yes", *args)
    assert result.code == 0, result.err


def vtt_cues(text: str) -> list[tuple[float, float, str]]:
    """(start, end, text) of every cue of a WebVTT file; asserts its header."""
    lines = text.splitlines()
    assert lines and lines[0].startswith("WEBVTT"), lines[:1]
    cues: list[tuple[float, float, str]] = []
    for index, line in enumerate(lines):
        match = _CUE_RE.match(line.strip())
        if match:
            g = [int(x) for x in match.groups()]
            start = g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000
            end = g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000
            cues.append((start, end, lines[index + 1] if index + 1 < len(lines) else ""))
    return cues

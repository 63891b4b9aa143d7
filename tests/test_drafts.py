"""Drafts worth reviewing: the emulator's picture shows the slide, voice and avatar, the
current caption, a marker while a gesture plays, and a mouth that follows the narration's
loudness. Checked on the decoded pixels of real renders."""

from __future__ import annotations

import subprocess
from array import array
from pathlib import Path

import pytest

from avatarflow.emulator.narration import parse_ssml
from avatarflow.emulator.speech import espeak_paths
from avatarflow.emulator.validation import RenderSettings
from avatarflow.emulator.video import ProcessGroup, ffmpeg_exe, render_video
from avatarflow.emulator.worker import slide_name

WIDTH, HEIGHT, FPS = 320, 180, 25
SSML = (
    "<speak version='1.0' xml:lang='en-US'><voice name='en-US-AndrewNeural'>"
    "Branches let every teammate work on a feature of their own. <break time='2000ms'/>"
    "<bookmark mark='gesture.show-front-1'/>Merge them back when the work is done.</voice></speak>"
)
SETTINGS = RenderSettings(
    character="lisa",
    style="casual-sitting",
    customized=False,
    photo=False,
    video_format="mp4",
    codec="h264",
    bitrate_kbps=2000,
    subtitle_type="soft_embedded",
    background="#FFFFFFFF",
    transparent=False,
    voice="en-US-AvaNeural",
)


def frames(path: Path) -> list[bytes]:
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    ).stdout
    size = WIDTH * HEIGHT * 3
    return [raw[i : i + size] for i in range(0, len(raw) - size + 1, size)]


def pixel(frame: bytes, x: int, y: int) -> tuple[int, int, int]:
    i = (y * WIDTH + x) * 3
    return frame[i], frame[i + 1], frame[i + 2]


def mouth_rows(frame: bytes) -> int:
    """Rows of black mouth in the figure's head (the centre column of the mouth box)."""
    unit = min(WIDTH, HEIGHT) // 12
    middle = HEIGHT // 2 - 2 * unit
    return sum(
        1 for y in range(middle - unit, middle + unit) if max(pixel(frame, WIDTH // 2, y)) < 60
    )


def yellow(frame: bytes) -> int:
    return sum(
        1
        for y in range(0, HEIGHT, 2)
        for x in range(0, WIDTH, 2)
        if (p := pixel(frame, x, y))[0] > 200 and p[1] > 150 and p[2] < 80
    )


@pytest.mark.parametrize("speech", [True, False], ids=["espeak", "tone"])
def test_draft_picture(tmp_path: Path, speech: bool) -> None:
    if speech and espeak_paths() is None:
        pytest.skip("espeak-ng wheel not installed")
    narration = parse_ssml(SSML)
    assert narration.gestures() == [(6.4, "show-front-1")]  # 11 words, then 2 s of break
    out = tmp_path / "draft.mp4"
    work = tmp_path / "work"
    render_video(
        SETTINGS,
        narration,
        out,
        work,
        ProcessGroup(),
        width=WIDTH,
        height=HEIGHT,
        fps=FPS,
        speech=speech,
        slide="git-course-03-branches",
    )
    header = (work / "header.txt").read_text()
    assert header.splitlines() == [
        "git-course-03-branches",
        "en-US-AndrewNeural · lisa / casual-sitting · draft",
    ]
    captions = sorted(p.read_text() for p in work.glob("cue*.txt"))
    assert "Merge them back when the work is done." in captions

    video = frames(out)
    at = {round(i / FPS, 2): f for i, f in enumerate(video)}
    mouth = [mouth_rows(f) for f in video]
    assert len(set(mouth[5:90])) >= 3, mouth  # it opens and closes, by degrees
    assert max(mouth) >= 4
    if speech:
        # The mouth follows the loudness of the sound track itself.
        loud = loudness(out, len(video))
        top = max(loud)
        quiet = [m for m, level in zip(mouth, loud, strict=True) if level < top * 0.02]
        spoken = [m for m, level in zip(mouth, loud, strict=True) if level > top * 0.4]
        assert len(quiet) >= 20 and len(spoken) >= 20, (len(quiet), len(spoken))
        assert sum(m <= 1 for m in quiet) >= 0.9 * len(quiet), (quiet, mouth)
        assert sum(m >= 4 for m in spoken) >= 0.7 * len(spoken), (spoken, mouth)
    else:
        # A tone: the mouth moves while a caption is on and rests in the 2 s break.
        assert max(mouth[round(4.6 * FPS) : round(6.2 * FPS)]) <= 1
    assert yellow(at[1.0]) == 0 and yellow(at[6.2]) == 0
    assert yellow(at[6.6]) > 50 and yellow(at[7.6]) > 50  # the gesture plays from 6.4 s
    assert yellow(at[8.2]) == 0


def loudness(path: Path, count: int) -> list[int]:
    """Peak-to-peak level of the video's audio in each frame's 1/25 s."""
    raw = subprocess.run(
        [
            ffmpeg_exe(),
            "-v",
            "error",
            "-i",
            str(path),
            "-ac",
            "1",
            "-ar",
            "8000",
            "-f",
            "s16le",
            "-",
        ],
        capture_output=True,
        check=True,
    ).stdout
    samples = array("h", raw[: len(raw) // 2 * 2])
    step = 8000 // FPS
    levels = [
        max(samples[i : i + step]) - min(samples[i : i + step])
        for i in range(0, len(samples) - step + 1, step)
    ]
    return (levels + [0] * count)[:count]


def test_slide_names() -> None:
    assert slide_name("git-course-03-branches-01a375745cc5-r0", 1, 1) == "git-course-03-branches"
    assert slide_name("git-course-03-branches-01a375745cc5", 1, 1) == "git-course-03-branches"
    assert slide_name("git-course-pack-0123456789ab", 7, 40) == "git-course-pack #7"
    assert slide_name("my job", 1, 1) == "my job"

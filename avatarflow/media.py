"""ffmpeg for the review page and the course export: poster frames, probing, joining.

The ffmpeg binary is the one bundled by ``imageio-ffmpeg`` (also the emulator's), run
with a timeout; every file it writes goes to a temp name renamed into place.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from . import atomicfile
from .emulator.probe import MediaInfo
from .emulator.probe import probe as _probe
from .emulator.video import ffmpeg_exe
from .errors import MediaError

FFMPEG_TIMEOUT_SECONDS = 600.0


def probe(path: Path, shown: str) -> MediaInfo:
    """Container, streams and duration of ``path``; ``shown`` names it in errors."""
    try:
        return _probe(path)
    except (ValueError, OSError, subprocess.SubprocessError):
        raise MediaError(f"{shown}: ffmpeg cannot read this file") from None


def run_ffmpeg(arguments: list[str], what: str, timeout: float = FFMPEG_TIMEOUT_SECONDS) -> None:
    """Run ffmpeg quietly; a failure is one line naming ``what`` and ffmpeg's last words."""
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *arguments]
    try:
        result = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise MediaError(f"{what}: ffmpeg took longer than {timeout:.0f} s") from None
    if result.returncode != 0:
        tail = result.stderr.decode(errors="replace").strip().splitlines()[-2:]
        raise MediaError(f"{what}: ffmpeg failed: {' | '.join(tail) or 'no message'}")


def temp_beside(target: Path, suffix: str) -> Path:
    """A fresh temp path in ``target``'s folder (so the rename is atomic), named by the
    one rule the stale-file sweep knows."""
    return atomicfile.new_temp(target, suffix=suffix)


def publish(tmp: Path, target: Path) -> None:
    """Rename a finished temp file (from :func:`temp_beside`) into place; it already has
    ordinary permissions (a page, a poster or a course video is for sharing)."""
    atomicfile.commit(tmp, target)


def write_file(target: Path, data: bytes) -> None:
    """``data`` into ``target`` atomically: a temp file beside it, synced, renamed."""
    atomicfile.write_bytes(target, data)


def poster_frame(video: Path, target: Path, at_seconds: float, shown: str) -> None:
    """One JPEG frame of ``video`` at ``at_seconds``, written atomically to ``target``."""
    tmp = temp_beside(target, ".jpg")
    try:
        run_ffmpeg(
            [
                "-ss",
                f"{at_seconds:.3f}",
                "-i",
                str(video),
                "-frames:v",
                "1",
                "-q:v",
                "3",
                "-f",
                "image2",
                "-c:v",
                "mjpeg",
                str(tmp),
            ],
            f"poster frame of {shown}",
        )
        publish(tmp, target)
    finally:
        atomicfile.discard(tmp)

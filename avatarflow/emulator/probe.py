"""Read a media file's container, streams and duration from ``ffmpeg -i`` (no ffprobe needed)."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from avatarflow.emulator.video import ffmpeg_exe

_DURATION_RE = re.compile(r"Duration:\s*(\d+):(\d+):(\d+(?:\.\d+)?)")
_INPUT_RE = re.compile(r"Input #0, ([^ ]+), from")
_STREAM_RE = re.compile(r"Stream #0:\d+[^:]*: (Video|Audio|Subtitle): ([A-Za-z0-9_]+)(.*)")
_SIZE_RE = re.compile(r"\b(\d{2,5})x(\d{2,5})\b")
_ALPHA_RE = re.compile(r"alpha_mode\s*:\s*1")


@dataclass
class MediaInfo:
    formats: tuple[str, ...]
    """Demuxer names, e.g. ``("mov", "mp4", ...)`` or ``("matroska", "webm")``."""
    duration: float
    video_codec: str | None = None
    width: int = 0
    height: int = 0
    pixel_format: str | None = None
    alpha: bool = False
    audio_codecs: list[str] = field(default_factory=list)
    subtitle_codecs: list[str] = field(default_factory=list)


def probe(path: str | Path) -> MediaInfo:
    """Describe ``path``; raises ``ValueError`` when ffmpeg cannot read it."""
    result = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
        capture_output=True,
        check=False,
        timeout=60,
    )
    text = result.stderr.decode(errors="replace")
    header = _INPUT_RE.search(text)
    duration = _DURATION_RE.search(text)
    if not header or not duration:
        raise ValueError(f"ffmpeg cannot read {path}: {text.strip().splitlines()[-1:]}")
    hours, minutes, seconds = duration.groups()
    info = MediaInfo(
        formats=tuple(header.group(1).rstrip(",").split(",")),
        duration=int(hours) * 3600 + int(minutes) * 60 + float(seconds),
        alpha=bool(_ALPHA_RE.search(text)),
    )
    for kind, codec, rest in _STREAM_RE.findall(text):
        if kind == "Video" and info.video_codec is None:
            info.video_codec = codec
            size = _SIZE_RE.search(rest)
            if size:
                info.width, info.height = int(size.group(1)), int(size.group(2))
            pixel = re.search(r"\), (\w+)\(|, (yuva?\w+)", rest)
            if pixel:
                info.pixel_format = pixel.group(1) or pixel.group(2)
        elif kind == "Audio":
            info.audio_codecs.append(codec)
        elif kind == "Subtitle":
            info.subtitle_codecs.append(codec)
    return info

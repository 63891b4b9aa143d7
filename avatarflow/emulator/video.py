"""Real draft videos with ffmpeg: placeholder avatar, narration audio, subtitles.

One ffmpeg run per input: a ``color`` source in the requested background colour (with an
alpha plane for transparent webm/vp9), and on it what a reviewer needs to know which
slide this is and whether it says the right thing: the slide (the job's name and input),
voice and avatar as a header; a boxy placeholder figure whose mouth opens with the
narration's loudness (``sendcmd`` drives the mouth box frame by frame from the speech's
envelope); a marker when a gesture bookmark fires; the caption being spoken. Narration
audio is espeak-ng speech fitted to the modelled length (or a tone), and subtitles are as
the request's ``subtitleType`` asks: a ``mov_text``/``webvtt`` track (soft), drawn into
the picture (hard), or nothing here (external files are written by the caller).

Encoders run at their fastest settings: these are drafts, not final renders."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import threading
import wave
from array import array
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from avatarflow.emulator.narration import Narration, ass
from avatarflow.emulator.speech import Speech, synthesize
from avatarflow.emulator.validation import RenderSettings

SERVICE_WIDTH, SERVICE_HEIGHT = 1920, 1080
RENDER_TIMEOUT_SECONDS = 600.0
_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/Library/Fonts/Arial.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "C:/Windows/Fonts/arial.ttf",
)
_FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "/Library/Fonts")
_VIDEO_ENCODERS = {
    "h264": ["-c:v", "libx264", "-preset", "ultrafast"],
    "hevc": [
        "-c:v",
        "libx265",
        "-preset",
        "ultrafast",
        "-x265-params",
        "log-level=error",
        "-tag:v",
        "hvc1",
    ],
    "av1": ["-c:v", "libaom-av1", "-usage", "realtime", "-cpu-used", "8", "-row-mt", "1"],
    "vp9": ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-row-mt", "1"],
}


class RenderCancelledError(RuntimeError):
    """The emulator is stopping; the job will be rendered again by the next instance."""


class RenderFailedError(RuntimeError):
    """ffmpeg failed; the message carries the end of its log."""


@dataclass(frozen=True)
class RenderResult:
    seconds: float
    audio: str
    """``"espeak"`` or ``"tone"``."""


@cache
def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


@cache
def find_font() -> str | None:
    """A TrueType font for captions, or ``None`` (captions are then left out)."""
    for candidate in _FONT_CANDIDATES:
        if Path(candidate).is_file():
            return candidate
    for folder in _FONT_DIRS:
        root = Path(folder)
        if root.is_dir():
            for found in sorted(root.rglob("*.ttf")):
                return str(found)
    return None


class ProcessGroup:
    """Runs ffmpeg processes and can end all of them at once when the emulator stops."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[bytes]] = set()
        self._closed = False

    def run(self, command: list[str], timeout: float = RENDER_TIMEOUT_SECONDS) -> None:
        with self._lock:
            if self._closed:
                raise RenderCancelledError("the emulator is stopping")
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            self._running.add(process)
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise RenderFailedError(f"ffmpeg took longer than {timeout:.0f} s") from None
        finally:
            with self._lock:
                self._running.discard(process)
        if self._closed:
            raise RenderCancelledError("the emulator is stopping")
        if process.returncode != 0:
            tail = stderr.decode(errors="replace").strip().splitlines()[-5:]
            raise RenderFailedError("ffmpeg failed: " + " | ".join(tail))

    def close(self) -> None:
        """Refuse new processes and kill the running ones."""
        with self._lock:
            self._closed = True
            running = list(self._running)
        for process in running:
            process.kill()


def frame_size(settings: RenderSettings, width: int, height: int) -> tuple[int, int]:
    """Draft frame before cropping: photo avatars are square like the service's 512x512."""
    if settings.photo:
        side = min(width, height)
        return side, side
    return width, height


def _even(value: float) -> int:
    return max(16, int(value) // 2 * 2)


def crop_box(settings: RenderSettings, width: int, height: int) -> tuple[int, int, int, int] | None:
    """``videoCrop`` (service pixels of a 1920x1080 frame) scaled to the draft frame."""
    if not settings.crop:
        return None
    left, top, right, bottom = settings.crop
    sx, sy = width / SERVICE_WIDTH, height / SERVICE_HEIGHT
    x = min(int(left * sx), width - 16)
    y = min(int(top * sy), height - 16)
    w = min(_even((right - left) * sx), (width - x) // 2 * 2)
    h = min(_even((bottom - top) * sy), (height - y) // 2 * 2)
    return w, h, x, y


def _rgb(color: str) -> tuple[str, str]:
    """``#RRGGBBAA`` → (``0xRRGGBB``, alpha 0..1 as text)."""
    return "0x" + color[1:7], f"{int(color[7:9], 16) / 255:.3f}"


def _figure_color(character: str) -> str:
    digest = hashlib.sha256(character.lower().encode()).hexdigest()
    return "0x" + digest[:6]


def _quote(path: str | Path) -> str:
    """A path as a quoted filter option value (only the quote itself needs escaping)."""
    return "'" + str(path).replace("\\", "/").replace("'", "'\\''") + "'"


def has_alpha(settings: RenderSettings) -> bool:
    """Only webm/vp9 carries an alpha plane; other codecs get an opaque background."""
    return (
        settings.video_format == "webm"
        and settings.codec == "vp9"
        and int(settings.background[7:9], 16) < 255
    )


def _text_filter(font: str, text_file: Path, x: str, y: str, size: int, extra: str = "") -> str:
    return (
        f"drawtext=fontfile={_quote(font)}:textfile={_quote(text_file)}:expansion=none:"
        f"x={x}:y={y}:fontsize={size}:fontcolor=white:box=1:boxcolor=black@0.6:boxborderw=3"
        + (f":{extra}" if extra else "")
    )


MOUTH_LEVELS = 5  # closed, then four openings
GESTURE_SECONDS = 1.5  # how long a gesture marker stays on screen
_ENVELOPE_WINDOW = 0.04  # seconds of audio per mouth position (one frame at 25 fps)


def _video_filters(
    settings: RenderSettings,
    narration: Narration,
    speech: Speech | None,
    slide: str,
    width: int,
    height: int,
    work: Path,
) -> str:
    """The filter chain that draws the placeholder avatar, captions and subtitles."""
    pix = "yuva420p" if has_alpha(settings) else "yuv420p"
    body = _figure_color(settings.character)
    cues = narration.cues()
    cx, unit = width // 2, max(2, min(width, height) // 12)
    head_y = height // 2 - 4 * unit
    mouth_y = height // 2 - 2 * unit  # the middle of the mouth
    commands = work / "mouth.cmd"
    commands.write_text(
        _mouth_commands(_levels(narration, speech), mouth_y, unit), encoding="utf-8"
    )
    filters = [
        f"format={pix}",
        f"drawbox=x={cx - 2 * unit}:y={head_y}:w={4 * unit}:h={3 * unit}:color={body}:t=fill",
        f"drawbox=x={cx - 3 * unit}:y={height // 2 - unit}:w={6 * unit}:h={5 * unit}"
        f":color={body}:t=fill",
        f"sendcmd=f={_quote(commands)}",
        f"drawbox@mouth=x={cx - unit}:y={mouth_y}:w={2 * unit}:h=1:color=black:t=fill",
    ]
    for at, _ in narration.gestures():
        # The figure lights up while the gesture plays.
        filters.append(
            f"drawbox=x={cx - 3 * unit - 2}:y={head_y - 2}:w={6 * unit + 4}:h={8 * unit + 4}"
            f":color=0xFFC400:t={max(2, unit // 3)}"
            f":enable='between(t,{at:.3f},{at + GESTURE_SECONDS:.3f})'"
        )
    font = find_font()
    if font:
        size = max(8, height // 20)
        voice = narration.voice or settings.voice or "default voice"
        style = f" / {settings.style}" if settings.style else ""
        header = work / "header.txt"
        header.write_text(f"{slide}\n{voice} · {settings.character}{style} · draft", "utf-8")
        filters.append(_text_filter(font, header, "8", "8", size, "line_spacing=3"))
        for index, (at, gesture) in enumerate(narration.gestures()):
            marker = work / f"gesture{index:03d}.txt"
            marker.write_text(f"gesture: {gesture}", encoding="utf-8")
            when = f"enable='between(t,{at:.3f},{at + GESTURE_SECONDS:.3f})'"
            filters.append(
                _text_filter(
                    font, marker, "w-text_w-8", f"{3 * size}", size, f"fontcolor=0xFFC400:{when}"
                )
            )
        hard = settings.subtitle_type == "hard_embedded"
        caption_size = max(8, height // 16)
        for index, cue in enumerate(cues):
            words = work / f"cue{index:04d}.txt"
            words.write_text(cue.text, encoding="utf-8")
            when = f"enable='between(t,{cue.start:.3f},{cue.end:.3f})'"
            # The caption being spoken, in the lower third (above burnt-in subtitles).
            y = f"h-text_h-{12 + (caption_size * 2 if hard else 0)}"
            filters.append(_text_filter(font, words, "(w-text_w)/2", y, caption_size, when))
            if hard:
                filters.append(
                    _text_filter(
                        font, words, "(w-text_w)/2", "h-text_h-6", max(8, height // 14), when
                    )
                )
    box = crop_box(settings, width, height)
    if box:
        filters.append("crop={}:{}:{}:{}".format(*box))
    return ",".join(filters)


def _levels(narration: Narration, speech: Speech | None) -> list[int]:
    """The mouth's opening (0..MOUTH_LEVELS-1) per envelope window of the video."""
    windows = max(1, int(narration.duration / _ENVELOPE_WINDOW) + 1)
    if speech is not None:
        loudness = _speech_envelope(speech, narration.duration, windows)
        if loudness is not None:
            return loudness
    # A tone says nothing: open and close while a caption is on, four times a second.
    levels = [0] * windows
    for cue in narration.cues():
        for window in range(int(cue.start / _ENVELOPE_WINDOW), int(cue.end / _ENVELOPE_WINDOW)):
            if window < windows:
                levels[window] = (1, 3, 4, 2)[(window // 2) % 4]
    return levels


def _speech_envelope(speech: Speech, seconds: float, windows: int) -> list[int] | None:
    """Peak-to-peak loudness of the speech per window, on the video's clock (the audio
    filter speeds a long speech up to fit), quantised to the mouth's levels."""
    try:
        with wave.open(str(speech.path), "rb") as wav:
            if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
                return None
            rate = wav.getframerate()
            samples = array("h", wav.readframes(wav.getnframes()))
    except (OSError, wave.Error, EOFError):
        return None
    if sys.byteorder == "big":
        samples.byteswap()
    tempo = min(speech.seconds / seconds, 4.0) if speech.seconds / seconds > 1.01 else 1.0
    step = max(1, int(rate * _ENVELOPE_WINDOW * tempo))
    peaks = [
        max(samples[i : i + step]) - min(samples[i : i + step])
        for i in range(0, len(samples), step)
    ]
    loudest = sorted(peaks)[int(len(peaks) * 0.95)] if peaks else 0
    if loudest <= 0:
        return None
    levels = [min(MOUTH_LEVELS - 1, round(p / loudest * (MOUTH_LEVELS - 1))) for p in peaks]
    return (levels + [0] * windows)[:windows]


def _mouth_commands(levels: list[int], middle: int, unit: int) -> str:
    """``sendcmd`` lines that resize the mouth box whenever its opening changes."""
    lines: list[str] = []
    previous = -1
    for window, level in enumerate(levels):
        if level == previous:
            continue
        height = max(1, round(level * unit / (MOUTH_LEVELS - 1)))
        at = window * _ENVELOPE_WINDOW
        lines.append(f"{at:.3f} drawbox@mouth h {height}, drawbox@mouth y {middle - height // 2};")
        previous = level
    return "\n".join(lines) + "\n"


def _audio_filter(speech: Speech | None, seconds: float) -> str:
    if speech is None:
        return "volume=0.2"
    factor = speech.seconds / seconds
    # Fit the speech to the modelled length: speed it up when it runs long, pad otherwise.
    tempo = f"atempo={min(factor, 4.0):.4f}," if factor > 1.01 else ""
    return f"{tempo}apad"


def _bitrate(settings: RenderSettings, width: int, height: int) -> str:
    """The requested bitrate, scaled from the service's frame size to the draft size."""
    share = (width * height) / (SERVICE_WIDTH * SERVICE_HEIGHT)
    return f"{max(50, round(settings.bitrate_kbps * share))}k"


def build_command(
    settings: RenderSettings,
    narration: Narration,
    speech: Speech | None,
    out_path: Path,
    work: Path,
    *,
    width: int,
    height: int,
    fps: int,
    slide: str = "",
) -> list[str]:
    seconds = narration.duration
    width, height = frame_size(settings, width, height)
    rgb, alpha = _rgb(settings.background)
    color = f"{rgb}@{alpha}" if has_alpha(settings) else rgb
    cues = narration.cues()
    command = [
        ffmpeg_exe(),
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"color=c={color}:s={width}x{height}:r={fps}:d={seconds:.3f}",
    ]
    if speech is None:
        command += ["-f", "lavfi", "-i", f"sine=frequency=220:sample_rate=24000:d={seconds:.3f}"]
    else:
        command += ["-i", str(speech.path)]
    soft = settings.subtitle_type == "soft_embedded" and bool(cues)
    if soft:
        subtitles = work / "subtitles.ass"
        subtitles.write_text(ass(cues), encoding="utf-8")
        command += ["-f", "ass", "-i", str(subtitles)]
    command += [
        "-filter_complex",
        f"[0:v]{_video_filters(settings, narration, speech, slide, width, height, work)}[v];"
        f"[1:a]{_audio_filter(speech, seconds)}[a]",
        "-map",
        "[v]",
        "-map",
        "[a]",
    ]
    if soft:
        command += [
            "-map",
            "2:s",
            "-c:s",
            "mov_text" if settings.video_format == "mp4" else "webvtt",
        ]
    command += _VIDEO_ENCODERS[settings.codec]
    command += [
        "-pix_fmt",
        "yuva420p" if has_alpha(settings) else "yuv420p",
        "-b:v",
        _bitrate(settings, width, height),
        "-g",
        str(fps * 2),
    ]
    if settings.video_format == "mp4":
        command += ["-c:a", "aac", "-b:a", "64k", "-movflags", "+faststart", "-f", "mp4"]
    else:
        command += ["-c:a", "libopus", "-b:a", "48k", "-f", "webm"]
    command += ["-t", f"{seconds:.3f}", str(out_path)]
    return command


def render_video(
    settings: RenderSettings,
    narration: Narration,
    out_path: Path,
    work: Path,
    processes: ProcessGroup,
    *,
    width: int,
    height: int,
    fps: int = 25,
    speech: bool = True,
    slide: str = "",
) -> RenderResult:
    """Render one input to ``out_path``; ``work`` is a scratch folder the caller removes."""
    work.mkdir(parents=True, exist_ok=True)
    spoken = synthesize(narration, work / "speech.wav") if speech else None
    command = build_command(
        settings,
        narration,
        spoken,
        out_path,
        work,
        width=width,
        height=height,
        fps=fps,
        slide=slide,
    )
    processes.run(command)
    return RenderResult(narration.duration, "tone" if spoken is None else "espeak")


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)

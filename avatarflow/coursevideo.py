"""The course as one video: every rendered video joined in manifest order, one chapter
each, and one merged WebVTT file of all their subtitles.

Videos of one format (container, codecs, frame size, pixel and audio layout) are joined
by ffmpeg's concat demuxer without re-encoding (``-c copy``); a mixed course is
re-encoded through the concat filter to the first video's frame size. Chapters come from
an ffmetadata file, their bounds from each video's probed duration. Subtitles are read
from each video's external ``.vtt`` or from its embedded subtitle track. Everything is
written to temp files renamed into place: an interrupted export leaves no half file.
"""

from __future__ import annotations

import fnmatch
import re
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import atomicfile
from .course import Course, read_course
from .emulator.narration import Cue, webvtt, xml_escape
from .emulator.probe import MediaInfo
from .emulator.video import ffmpeg_exe
from .errors import MediaError, SelectionError
from .media import FFMPEG_TIMEOUT_SECONDS, probe, publish, run_ffmpeg, temp_beside, write_file
from .options import ExportOptions
from .planner import ActionKind
from .state import StateRecord
from .workspace import target_name

Progress = Callable[[float, float], None]  # seconds written, seconds in all
_COPY_INTO = {  # codecs each output container takes as they are
    ".mp4": ({"h264", "hevc", "av1", "vp9"}, {"aac", "opus", "mp3"}),
    ".webm": ({"vp9", "av1", "vp8"}, {"opus", "vorbis"}),
}
_REENCODE = {
    ".mp4": ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-c:a", "aac", "-b:a", "128k"],
    ".webm": [
        "-c:v",
        "libvpx-vp9",
        "-deadline",
        "realtime",
        "-cpu-used",
        "8",
        "-b:v",
        "1M",
        "-c:a",
        "libopus",
        "-b:a",
        "96k",
    ],
}
_CUE_TIME_RE = re.compile(r"^\s*(\S+)\s+-->\s+(\S+)(.*)$")
_PROGRESS_RE = re.compile(rb"^out_time_(?:ms|us)=(\d+)")
MAX_SUBTITLE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Chapter:
    video_id: str
    title: str
    start: float
    end: float


@dataclass(frozen=True)
class Export:
    path: Path
    subtitles: Path
    chapters: tuple[Chapter, ...]
    duration: float
    reencoded: bool
    cues: int
    outdated: tuple[str, ...]  # videos joined as last rendered, with a change pending


@dataclass(frozen=True)
class _Part:
    video_id: str
    title: str
    path: Path
    shown: str
    info: MediaInfo
    record: StateRecord


def export(
    manifest: Path | str,
    output: Path,
    options: ExportOptions | None = None,
    *,
    on_progress: Progress | None = None,
) -> Export:
    """Join the course (or the videos matching ``options.only``) into ``output`` (.mp4 or
    .webm); ``on_progress`` hears the seconds written while ffmpeg joins."""
    options = options or ExportOptions()
    suffix = output.suffix.lower()
    if suffix not in _COPY_INTO:
        raise MediaError(f"{output.name}: export writes .mp4 or .webm files")
    parts, outdated = _parts(read_course(manifest, target_name(options.emulator)), options.only)
    chapters = _chapters(parts)
    total = chapters[-1].end
    output = output.resolve()
    subtitles = output.with_suffix(".vtt")
    reencode = not _same_format(parts, suffix)
    with tempfile.TemporaryDirectory(prefix="avatarflow-export-") as scratch:
        work = Path(scratch)
        metadata = work / "chapters.txt"
        metadata.write_text(ffmetadata(chapters), encoding="utf-8")
        tmp = temp_beside(output, suffix)
        try:
            _join(parts, metadata, tmp, suffix, reencode, work, total, on_progress)
            cues = _merged_subtitles(parts, chapters, work)
            write_file(subtitles, cues.encode("utf-8"))
            publish(tmp, output)
        finally:
            atomicfile.discard(tmp)
    count = cues.count(" --> ")
    return Export(output, subtitles, tuple(chapters), total, reencode, count, tuple(outdated))


def _parts(course: Course, only: Sequence[str]) -> tuple[list[_Part], list[str]]:
    actions = {a.video_id: a for a in course.plan.actions}
    ids = [r.video_id for r in course.requests]
    for pattern in only:
        if not fnmatch.filter(ids, pattern):
            raise SelectionError(f"no video matches {pattern!r}; videos: {', '.join(ids)}")
    parts: list[_Part] = []
    outdated: list[str] = []
    for request in course.requests:
        video_id = request.video_id
        if only and not any(fnmatch.fnmatchcase(video_id, p) for p in only):
            continue
        action = actions[video_id]
        record = action.record
        if record is None or record.output is None or course.outputs(record) != "ok":
            raise MediaError(
                f"video {video_id} has no intact rendered file; run apply"
                + (" --emulator" if course.workspace.is_emulator else "")
                + " first"
            )
        if action.kind is not ActionKind.NOOP:
            outdated.append(video_id)
        path = course.workspace.root / record.output.path
        title = str((request.rendered.video.fields.vars or {}).get("title", ""))
        info = probe(path, record.output.path)
        if info.duration <= 0 or info.video_codec is None:
            raise MediaError(f"{record.output.path}: no video stream to export")
        parts.append(_Part(video_id, title, path, record.output.path, info, record))
    if not parts:
        raise SelectionError("no video to export")
    return parts, outdated


def _chapters(parts: Sequence[_Part]) -> list[Chapter]:
    chapters: list[Chapter] = []
    clock = 0.0
    for part in parts:
        title = f"{part.video_id}: {part.title}" if part.title else part.video_id
        chapters.append(Chapter(part.video_id, title, clock, clock + part.info.duration))
        clock += part.info.duration
    return chapters


def _escape_meta(text: str) -> str:
    """ffmetadata values escape ``=``, ``;``, ``#``, ``\\`` and newlines with a backslash."""
    return re.sub(r"([=;#\\\n])", r"\\\1", text)


def ffmetadata(chapters: Sequence[Chapter]) -> str:
    lines = [";FFMETADATA1"]
    for chapter in chapters:
        lines += [
            "[CHAPTER]",
            "TIMEBASE=1/1000",
            f"START={round(chapter.start * 1000)}",
            f"END={round(chapter.end * 1000)}",
            f"title={_escape_meta(chapter.title)}",
        ]
    return "\n".join(lines) + "\n"


def _signature(info: MediaInfo) -> tuple[object, ...]:
    return (
        info.formats,
        info.video_codec,
        info.width,
        info.height,
        info.pixel_format,
        tuple(info.audio_codecs[:1]),
    )


def _same_format(parts: Sequence[_Part], suffix: str) -> bool:
    first = parts[0].info
    video_ok, audio_ok = _COPY_INTO[suffix]
    return (
        all(_signature(p.info) == _signature(first) for p in parts)
        and first.video_codec in video_ok
        and len(first.audio_codecs) >= 1
        and first.audio_codecs[0] in audio_ok
        and not first.alpha
    )


def _concat_list(parts: Sequence[_Part]) -> str:
    def quoted(path: Path) -> str:
        return "'" + str(path).replace("'", "'\\''") + "'"

    return "ffconcat version 1.0\n" + "".join(f"file {quoted(p.path)}\n" for p in parts)


def _join(
    parts: Sequence[_Part],
    metadata: Path,
    out: Path,
    suffix: str,
    reencode: bool,
    work: Path,
    total: float,
    on_progress: Progress | None,
) -> None:
    muxer = ["-f", "mp4", "-movflags", "+faststart"] if suffix == ".mp4" else ["-f", "webm"]
    if not reencode:
        listing = work / "inputs.txt"
        listing.write_text(_concat_list(parts), encoding="utf-8")
        arguments = [
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
            str(listing),
            "-i",
            str(metadata),
            "-map",
            "0:v:0",
            "-map",
            "0:a:0",
            "-c",
            "copy",
            "-map_metadata",
            "1",
            "-map_chapters",
            "1",
        ]
    else:
        first = parts[0].info
        width, height = first.width // 2 * 2 or 1280, first.height // 2 * 2 or 720
        arguments = []
        for part in parts:
            arguments += ["-i", str(part.path)]
        arguments += ["-i", str(metadata)]
        chains = []
        for index, part in enumerate(parts):
            chains.append(
                f"[{index}:v:0]scale={width}:{height}:force_original_aspect_ratio=decrease,"
                f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps=25,format=yuv420p[v{index}]"
            )
            # A silent video still needs an audio segment for concat to line up.
            seconds = part.info.duration
            audio = f"[{index}:a:0]" if part.info.audio_codecs else ""
            audio = audio or f"anullsrc=r=48000:cl=stereo:d={seconds:.3f},"
            chains.append(f"{audio}aresample=48000,aformat=channel_layouts=stereo[a{index}]")
        joined = "".join(f"[v{i}][a{i}]" for i in range(len(parts)))
        chains.append(f"{joined}concat=n={len(parts)}:v=1:a=1[v][a]")
        arguments += [
            "-filter_complex",
            ";".join(chains),
            "-map",
            "[v]",
            "-map",
            "[a]",
            *_REENCODE[suffix],
            "-map_metadata",
            str(len(parts)),
            "-map_chapters",
            str(len(parts)),
        ]
    arguments += [*muxer, str(out)]
    _run_with_progress(arguments, total, on_progress)


def _run_with_progress(arguments: list[str], total: float, on_progress: Progress | None) -> None:
    """ffmpeg with ``-progress`` on its stdout, read line by line (each line bounded)."""
    if on_progress is None:
        run_ffmpeg(arguments, "export")
        return
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
    command += ["-progress", "pipe:1", "-nostats", *arguments]
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors
        )
        assert process.stdout is not None
        try:
            while line := process.stdout.readline(4096):
                match = _PROGRESS_RE.match(line)
                if match:
                    on_progress(min(total, int(match.group(1)) / 1_000_000), total)
            process.wait(timeout=FFMPEG_TIMEOUT_SECONDS)
        except BaseException:
            process.kill()
            process.wait()
            raise
        if process.returncode != 0:
            errors.seek(0)
            tail = errors.read(64 * 1024).decode(errors="replace").strip().splitlines()[-2:]
            raise MediaError(f"export: ffmpeg failed: {' | '.join(tail) or 'no message'}")
    on_progress(total, total)


def _merged_subtitles(parts: Sequence[_Part], chapters: Sequence[Chapter], work: Path) -> str:
    merged: list[Cue] = []
    for index, (part, chapter) in enumerate(zip(parts, chapters, strict=True)):
        text, escaped = _subtitles_of(part, work / f"sub{index:04d}.vtt")
        for start, end, lines in _cues(text or ""):
            begin = min(chapter.end, chapter.start + start)
            finish = min(chapter.end, chapter.start + end)
            if finish > begin:
                body = lines if escaped else [_escaped_track_line(line) for line in lines]
                merged.append(Cue(begin, finish, "\n".join(body)))
    return webvtt(merged, escaped=True)  # as the files had it, or escaped here


# ffmpeg writes a subtitle track's text into WebVTT as it is ("a < b" stays so, which a
# WebVTT reader takes for a tag); the only markup there is the style tags its own writer
# makes of the track's styles. Everything else is escaped as WebVTT text must be.
_FFMPEG_STYLE_TAG_RE = re.compile(r"(</?[biu]>)")


def _escaped_track_line(line: str) -> str:
    pieces = _FFMPEG_STYLE_TAG_RE.split(line)  # text, tag, text, tag, ..., text
    return "".join(piece if index % 2 else xml_escape(piece) for index, piece in enumerate(pieces))


def _subtitles_of(part: _Part, scratch: Path) -> tuple[str | None, bool]:
    """The video's external ``.vtt`` (escaped: a WebVTT file), else its embedded subtitle
    track as ffmpeg writes it (not escaped), else nothing."""
    record = part.record
    if record.subtitles is not None:
        sidecar = part.path.with_suffix(".vtt")
        if sidecar.is_file() and sidecar.stat().st_size <= MAX_SUBTITLE_BYTES:
            return sidecar.read_text("utf-8", errors="replace"), True
    if not part.info.subtitle_codecs:
        return None, True
    run_ffmpeg(
        ["-i", str(part.path), "-map", "0:s:0", "-f", "webvtt", str(scratch)],
        f"subtitles of {part.shown}",
    )
    if scratch.stat().st_size > MAX_SUBTITLE_BYTES:
        raise MediaError(f"{part.shown}: its subtitle track is too large")
    return scratch.read_text("utf-8", errors="replace"), False


def _cues(text: str) -> list[tuple[float, float, list[str]]]:
    """(start, end, text lines) of each cue of a WebVTT text; notes and styles skipped."""
    cues: list[tuple[float, float, list[str]]] = []
    lines = text.replace("\r\n", "\n").split("\n")
    index = 0
    while index < len(lines):
        match = _CUE_TIME_RE.match(lines[index])
        index += 1
        if not match:
            continue
        start, end = _seconds(match.group(1)), _seconds(match.group(2))
        body: list[str] = []
        while index < len(lines) and lines[index].strip():
            body.append(lines[index])
            index += 1
        if start is not None and end is not None and body:
            cues.append((start, end, body))
    return cues


def _seconds(stamp: str) -> float | None:
    try:
        fields = [float(x) for x in stamp.replace(",", ".").split(":")]
    except ValueError:
        return None
    seconds = 0.0
    for value in fields:
        seconds = seconds * 60 + value
    return seconds

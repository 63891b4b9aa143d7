"""Is a downloaded file the video it claims to be? Checked before it is accepted.

Three checks, cheapest first: the container's signature in the first bytes (an MP4 has
an ``ftyp`` box at offset 4, a WebM file starts with the EBML magic); for an MP4, its
top-level boxes, each of which must end within the file, with a ``moov`` and an ``mdat``
among them; then a read of every packet by the ffmpeg bundled with imageio-ffmpeg
(``-c copy``: no decoding). A proxy's "502 Bad Gateway" page fails the first; a body cut
short, even one whose ``Content-Length`` was cut with it, fails the second or the third
("partial file", "File ended prematurely"). ffmpeg alone says nothing of an MP4 cut
exactly between two of its samples: the boxes tell. The probe is needed only when no
length from the job vouches for the file (a destination container's jobs report none).
"""

from __future__ import annotations

import asyncio
import os
import struct
from pathlib import Path

from .errors import MediaCheckError
from .secrets import redact

__all__ = ["check_media", "signature_problem"]

_HEAD_BYTES = 64
_MAX_BOXES = 10_000  # top-level boxes looked at: an MP4 has a handful
_MAX_PROBE_OUTPUT = 4096
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"


def signature_problem(head: bytes, kind: str) -> str | None:
    """Why ``head`` (a file's first bytes) is not the start of a ``kind`` file, or None."""
    kind = kind.lower()
    if kind == "mp4":
        if len(head) >= 8 and head[4:8] == b"ftyp":
            return None
        return f"is not an MP4 file (no 'ftyp' box at its start; it begins {_shown(head)})"
    if kind == "webm":
        if head.startswith(_EBML_MAGIC):
            return None
        return f"is not a WebM file (no EBML header; it begins {_shown(head)})"
    return None  # other kinds have no signature check


def mp4_box_problem(path: Path) -> str | None:
    """Why the top-level boxes of the MP4 file at ``path`` are not a whole file (one that
    runs past the file's end, or no ``moov`` or ``mdat``), or None."""
    size = path.stat().st_size
    seen: set[bytes] = set()
    offset = 0
    with path.open("rb") as handle:
        for _ in range(_MAX_BOXES):
            if offset == size:
                break
            handle.seek(offset)
            header = handle.read(16)
            if len(header) < 8:
                return f"is cut short: {size - offset} byte(s) after its last box"
            length, kind = struct.unpack(">I4s", header[:8])
            if length == 1:  # a 64-bit length follows the type
                if len(header) < 16:
                    return f"is cut short in the header of its '{_name(kind)}' box"
                (length,) = struct.unpack(">Q", header[8:16])
            elif length == 0:  # the box runs to the end of the file
                length = size - offset
            if length < 8:
                return f"has a '{_name(kind)}' box of {length} byte(s) at offset {offset}"
            if offset + length > size:
                return (
                    f"is cut short: its '{_name(kind)}' box needs {length:,} bytes from offset "
                    f"{offset:,}, and the file ends after {size:,}"
                )
            seen.add(kind)
            offset += length
        else:
            return f"has more than {_MAX_BOXES:,} top-level boxes"
    missing = [name.decode() for name in (b"moov", b"mdat") if name not in seen]
    return f"has no '{missing[0]}' box" if missing else None


def _name(kind: bytes) -> str:
    return kind.decode("latin-1") if kind.isascii() and kind.isalnum() else kind.hex()


def _shown(head: bytes) -> str:
    text = head[:24].decode("latin-1")
    printable = "".join(c if c.isprintable() else "." for c in text)
    return repr(printable)


async def check_media(path: Path, kind: str, *, probe: bool = True) -> None:
    """Raise :class:`MediaCheckError` unless ``path`` is a complete ``kind`` video.

    ``probe=False`` checks the signature only: enough when the file's length was checked
    against the job's own account of it (the probe costs ~33 ms of CPU for a 12 s draft
    video, more for longer and larger ones)."""
    kind = kind.lower()
    if kind not in ("mp4", "webm"):
        return
    with path.open("rb") as handle:
        head = handle.read(_HEAD_BYTES)
    problem = signature_problem(head, kind)
    if problem is not None:
        raise MediaCheckError(problem)
    if kind == "mp4" and (problem := mp4_box_problem(path)) is not None:
        raise MediaCheckError(f"is not a complete MP4 video: {problem}")
    if not probe:
        return
    problem = await _probe(path)
    if problem is not None:
        raise MediaCheckError(f"is not a complete {kind.upper()} video: {problem}")


def _ffmpeg() -> str | None:
    try:
        import imageio_ffmpeg
    except ImportError:  # pragma: no cover - a dependency of the project
        return None
    try:
        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except RuntimeError:  # pragma: no cover - a wheel without its binary
        return None


async def _probe(path: Path) -> str | None:
    """ffmpeg's complaint about ``path`` (read packet by packet, no decoding), or None.

    ``-v error`` prints nothing for a sound file; ffmpeg exits 0 on a truncated one but
    says so, so any output counts as a problem.
    """
    exe = _ffmpeg()
    if exe is None:  # pragma: no cover - signature check only
        return None
    process = await asyncio.create_subprocess_exec(
        exe,
        "-nostdin",
        "-v",
        "error",
        "-i",
        os.fspath(path),
        "-map",
        "0",
        "-c",
        "copy",
        "-f",
        "null",
        "-",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    output = await process.stderr.read(_MAX_PROBE_OUTPUT)
    await process.stderr.read()  # drain, so that ffmpeg never blocks on a full pipe
    code = await process.wait()
    lines = [line.strip() for line in output.decode("utf-8", "replace").splitlines()]
    lines = [line for line in lines if line]
    if code == 0 and not lines:
        return None
    # "[in#0/mov,... @ 0x55...] stream 1, offset 0x51ad: partial file": the part after "] ".
    first = lines[0].split("] ", 1)[-1] if lines else f"ffmpeg exited with {code}"
    return redact(first.replace(os.fspath(path), path.name))

"""Is a downloaded file the video it claims to be? Checked before it is accepted.

Two checks, cheapest first: the container's signature in the first bytes (an MP4 has an
``ftyp`` box at offset 4, a WebM file starts with the EBML magic), then a read of every
packet by the ffmpeg bundled with imageio-ffmpeg (``-c copy``: no decoding). A proxy's
"502 Bad Gateway" page fails the first; a body cut short, even one whose
``Content-Length`` was cut with it, fails the second ("partial file", "File ended
prematurely"), since both containers index or frame their packets. The second is
needed only when no length from the job vouches for the file (a destination container's
jobs report none).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from .errors import MediaCheckError
from .secrets import redact

__all__ = ["check_media", "signature_problem"]

_HEAD_BYTES = 64
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

"""Test helpers: build file trees inline, run the CLI in-process, record fake renders."""

from __future__ import annotations

import contextlib
import io
import textwrap
from dataclasses import dataclass
from pathlib import Path

from avatarflow.atomicfile import is_temp_name
from avatarflow.cli import main
from avatarflow.payload import VideoRequest
from avatarflow.project import Project
from avatarflow.statcache import sha256_file
from avatarflow.state import OutputFile, State, StateRecord, utc_now

TEMPLATE = """\
<speak version="1.0" xml:lang="en-US" xmlns="http://www.w3.org/2001/10/synthesis">
  <voice name="{{ video.voice }}">
    <s>{{ title }}.</s>
    {{ text }}
  </voice>
</speak>
"""

MANIFEST = """\
version: 1
name: demo
defaults:
  template: narration.ssml.j2
  voice: en-US-AvaMultilingualNeural
  avatar: {character: lisa, style: graceful-sitting}
  video: {format: mp4, codec: h264}
  vars: {title: Intro}
videos:
  - id: a
    text: Hello from video a.
  - id: b
    text: Hello from video b.
  - id: c
    text: Hello from video c.
"""


def make_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    """Write ``files`` (path → content, dedented) under ``root``; return ``root``."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content), "utf-8")
    return root


def course(root: Path, manifest: str = MANIFEST, **extra: str | bytes) -> Path:
    """A small valid course; returns the manifest path."""
    files: dict[str, str | bytes] = {
        "course.yaml": manifest,
        "templates/narration.ssml.j2": TEMPLATE,
    }
    files.update({k.replace("__", "/"): v for k, v in extra.items()})
    make_tree(root, files)
    return root / "course.yaml"


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_cli(*args: str) -> Result:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--color", "never", *args])
    return Result(code, out.getvalue(), err.getvalue())


def temp_files(folder: Path, *, outside: Path | None = None) -> list[Path]:
    """Temp files of unfinished atomic writes below ``folder`` (not below ``outside``)."""
    return sorted(
        p
        for p in folder.rglob("*")
        if is_temp_name(p.name) and not (outside is not None and p.is_relative_to(outside))
    )


def record_rendered(project: Project, state: State, request: VideoRequest) -> StateRecord:
    """Pretend ``request`` was rendered and downloaded: write an output and its record."""
    state.ensure_meta(project.manifest.model.name)
    path = project.output_path(request)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(f"video for {request.content_hash}".encode())
    now = utc_now()
    return state.put(
        StateRecord(
            video_id=request.video_id,
            status="downloaded",
            input_hash=request.content_hash,
            synthesis_id=request.synthesis_id,
            surface=request.surface,
            remote_id=request.synthesis_id,
            request=request.recorded_body(),
            sources=request.rendered.sources,
            submitted_at=now,
            completed_at=now,
            updated_at=now,
            output=OutputFile(
                path=project.display(path), size=path.stat().st_size, sha256=sha256_file(path)
            ),
        )
    )


def record_all(manifest: Path) -> None:
    project = Project.open(manifest)
    state = project.load_state()
    for request in project.requests:
        record_rendered(project, state, request)

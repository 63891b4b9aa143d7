"""Test helpers: build file trees inline, run the CLI in-process, record fake renders."""

from __future__ import annotations

import contextlib
import io
import textwrap
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from avatarflow import workflow
from avatarflow.backends.local import LocalStore
from avatarflow.build import Built, build_requests, find_request
from avatarflow.cli import main
from avatarflow.client import SpeechClient
from avatarflow.manifest import LoadedManifest
from avatarflow.payload import VideoRequest
from avatarflow.planner import Plan
from avatarflow.runner import JobSettings, Runner, RunOptions
from avatarflow.service import Service
from avatarflow.statcache import sha256_file
from avatarflow.state import OutputFile, State, StateRecord, StateStore, utc_now
from avatarflow.stores import load_state, local_store, open_store
from avatarflow.workspace import TargetName, Workspace

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


@dataclass(frozen=True)
class Opened:
    """A manifest opened as the workflow opens it, for a test to look at its pieces."""

    manifest: LoadedManifest
    workspace: Workspace

    @cached_property
    def built(self) -> Built:
        return build_requests(self.manifest)

    @property
    def requests(self) -> list[VideoRequest]:
        return self.built.requests

    def request(self, video_id: str) -> VideoRequest:
        return find_request(self.manifest, self.built, video_id)

    def store(self) -> StateStore:
        return open_store(self.manifest, self.workspace)

    def local_store(self) -> LocalStore:
        return local_store(self.workspace)

    def load_state(self) -> State:
        return load_state(self.store(), self.workspace)[0]

    def plan(self, state: State | None = None, **kw: Any) -> Plan:
        """The full plan (``remote_gone``, ``replace``, ``verify`` as the workflow takes them)."""
        state = state if state is not None else self.load_state()
        return workflow.full_plan(self.manifest, self.workspace, self.built, state, None, **kw)[0]

    def runner(self, state: State, client: SpeechClient, options: RunOptions) -> Runner:
        service = Service(self.manifest.model.service, self.workspace)
        jobs = JobSettings.of(self.manifest.model, service.destination)
        return Runner(self.workspace, jobs, state, client, options)


def open_course(manifest: Path, target: TargetName = "azure") -> Opened:
    return Opened(*workflow.open_manifest(manifest, target))


def record_rendered(opened: Opened, state: State, request: VideoRequest) -> StateRecord:
    """Pretend ``request`` was rendered and downloaded: write an output and its record."""
    state.ensure_meta(opened.manifest.model.name)
    path = opened.workspace.output_path(request)
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
                path=opened.workspace.display(path),
                size=path.stat().st_size,
                sha256=sha256_file(path),
            ),
        )
    )


def record_all(manifest: Path) -> None:
    opened = open_course(manifest)
    state = opened.load_state()
    for request in opened.requests:
        record_rendered(opened, state, request)

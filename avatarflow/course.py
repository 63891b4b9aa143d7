"""A course as ``review`` and ``export`` read it: the manifest, its target's folders, every
video's request and the plan against the state and the files on disk. Reads only."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .build import build_requests
from .manifest import LoadedManifest
from .payload import VideoRequest
from .planner import Plan
from .stores import load_state, open_store
from .workflow import full_plan, open_manifest
from .workspace import OutputChecker, TargetName, Workspace


@dataclass(frozen=True)
class Course:
    manifest: LoadedManifest
    workspace: Workspace
    requests: list[VideoRequest]
    plan: Plan
    outputs: OutputChecker  # is a recorded output on disk, byte for byte


def read_course(path: Path | str, target: TargetName) -> Course:
    """Load, render and plan ``path`` for ``target``; no request, no state write."""
    manifest, workspace = open_manifest(path, target)
    built = build_requests(manifest)
    state, _ = load_state(open_store(manifest, workspace), workspace, built)
    plan, _ = full_plan(manifest, workspace, built, state, None)
    return Course(manifest, workspace, built.requests, plan, workspace.output_checker())

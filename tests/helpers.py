"""Test helpers: build file trees inline, run the CLI in-process, record fake renders."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import httpx
import pytest

from avatarflow import workflow
from avatarflow.atomicfile import is_temp_name
from avatarflow.backends.local import LocalStore
from avatarflow.build import Built, build_requests, find_request
from avatarflow.cli import main
from avatarflow.client import SpeechClient
from avatarflow.emulator import Emulator, EmulatorConfig
from avatarflow.emulator.requestlog import RequestRecord, read_request_log
from avatarflow.manifest import LoadedManifest
from avatarflow.payload import VideoRequest
from avatarflow.planner import Plan
from avatarflow.runner import JobSettings, Runner, RunOptions
from avatarflow.scaffold import TEMPLATE
from avatarflow.service import Service
from avatarflow.statcache import sha256_file
from avatarflow.state import OutputFile, State, StateRecord, StateStore, utc_now
from avatarflow.stores import load_state, local_store, open_store
from avatarflow.workspace import TargetName, Workspace

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


def plan_json_of(result: Result) -> dict[str, Any]:
    """The plan ``plan --json`` printed (the command must have succeeded)."""
    assert result.code == 0, result
    data: dict[str, Any] = json.loads(result.out)
    return data


def planned_of(plan: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """Each video's planned action and whether it pays."""
    return {a["video"]: (a["action"], a["paid"]) for a in plan["actions"]}


def temp_files(folder: Path, *, outside: Path | None = None) -> list[Path]:
    """Temp files of unfinished atomic writes below ``folder`` (not below ``outside``)."""
    return sorted(
        p
        for p in folder.rglob("*")
        if is_temp_name(p.name) and not (outside is not None and p.is_relative_to(outside))
    )


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
        return load_state(self.store(), self.workspace, self.built)[0]

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


def record_rendered(
    opened: Opened, state: State, request: VideoRequest, *, keep: bool = True
) -> StateRecord:
    """Pretend ``request`` was rendered and downloaded: write an output and its record
    (``keep=False``: only return the record, for a test to record another outcome)."""
    state.ensure_meta(opened.manifest.model.name)
    path = opened.workspace.output_path(request)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(f"video for {request.content_hash}".encode())
    now = utc_now()
    record = StateRecord(
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
    return state.put(record) if keep else record


def render_file(manifest: Path, video_id: str, target: TargetName = "azure") -> Path:
    """The committed record of the render ``video_id``'s request uses."""
    opened = open_course(manifest, target)
    digest = opened.request(video_id).content_hash
    return opened.workspace.state_dir / "renders" / f"{digest}.json"


def record_all(manifest: Path) -> None:
    opened = open_course(manifest)
    state = opened.load_state()
    for request in opened.requests:
        record_rendered(opened, state, request)


# -- a course applied on the embedded emulator ----------------------------------------------

REPO = Path(__file__).resolve().parent.parent
VIDEOS = ["01-welcome", "02-commits", "03-branches", "04-merging", "05-recap", "06-outro"]
SMALL = {"width": 160, "height": 90}  # draft frames: fast renders, real videos


def emulate(monkeypatch: pytest.MonkeyPatch, faults: str = "", **config: Any) -> None:
    """The next in-process apply starts its embedded emulator with these faults."""
    monkeypatch.setenv("AVATARFLOW_EMULATOR_CONFIG", json.dumps({**SMALL, **config}))
    monkeypatch.setenv("AVATARFLOW_EMULATOR_FAULTS", faults)
    monkeypatch.delenv("AVATARFLOW_KILL_AT", raising=False)


def apply_faulty(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    faults: str,
    *args: str,
    api_version: str | None = None,
    expect: int = 0,
    **config: Any,
) -> tuple[Path, str, str]:
    """A fresh example course applied once under ``faults``: manifest, stdout, stderr."""
    manifest = example(tmp_path, api_version)
    emulate(monkeypatch, faults, **config)
    code, out, err = apply(manifest, *args)
    assert code == expect, err
    return manifest, out, err


def copy_example(tmp_path: Path) -> Path:
    """The example course's folders copied under ``tmp_path``, without the state, drafts
    and emulator data that running the quickstart leaves in a checkout; the manifests
    folder."""
    skip = shutil.ignore_patterns(".avatarflow", "build")
    shutil.copytree(REPO / "manifests", tmp_path / "manifests", ignore=skip)
    shutil.copytree(REPO / "templates", tmp_path / "templates", ignore=skip)
    return tmp_path / "manifests"


def example(tmp_path: Path, api_version: str | None = None) -> Path:
    """A copy of the repository's example course (six videos); its manifest."""
    manifest = copy_example(tmp_path) / "git-course.yaml"
    if api_version:
        text = manifest.read_text().replace(
            "templates_dir: ../templates",
            f"templates_dir: ../templates\nservice: {{api_version: {api_version}}}",
        )
        manifest.write_text(text)
    return manifest


def data_dir(manifest: Path) -> Path:
    """The embedded emulator's folder of the draft target: its jobs and request log."""
    return open_course(manifest, "emulator").workspace.emulator_data_dir


def apply(manifest: Path, *args: str) -> tuple[int, str, str]:
    result = run_cli("apply", str(manifest), "--emulator", "--yes", *args)
    return result.code, result.out, result.err


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd`` with a fixed identity; its stdout (it must succeed)."""
    env = dict(
        os.environ,
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@e",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@e",
    )
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def run_killed(manifest: Path, kill_at: str, *args: str, sigterm: bool = False, **env: str) -> str:
    """Run apply in a subprocess that must die by SIGKILL at ``kill_at`` (or stop on the
    SIGTERM it sends itself there, with exit code 143); its stderr. ``env`` is added to
    this process's environment."""
    done = subprocess.run(
        [sys.executable, "-m", "avatarflow", "apply", str(manifest), "--emulator", "--yes", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=dict(
            os.environ,
            AVATARFLOW_KILL_AT=kill_at,
            AVATARFLOW_KILL_SIGNAL="TERM" if sigterm else "KILL",
            NO_COLOR="1",
            **env,
        ),
        timeout=120,
    )
    expected = 128 + signal.SIGTERM if sigterm else -signal.SIGKILL
    assert done.returncode == expected, (
        f"apply was not killed at {kill_at} (exit {done.returncode}):\n{done.stderr}"
    )
    return done.stderr


def state_temp_files(manifest: Path) -> list[Path]:
    """Temp files of our own state writes (not the service's)."""
    state_dir = open_course(manifest, "emulator").workspace.state_dir
    return temp_files(state_dir, outside=data_dir(manifest))


def download_temp_files(manifest: Path) -> list[Path]:
    return temp_files(manifest.parent / "build")


def assert_all_rendered(manifest: Path, videos: list[str] | None = None) -> None:
    """``videos`` (all six by default) downloaded, intact and vouched for by state."""
    state = open_course(manifest, "emulator").load_state()
    if videos is None:
        assert sorted(state.records) == VIDEOS
    for video in VIDEOS if videos is None else videos:
        record = state.records[video]
        assert record.status == "downloaded", record
        assert record.output is not None
        path = manifest.parent / record.output.path
        assert path.parent.name == "videos-drafts"
        assert sha256_file(path) == record.output.sha256
        assert path.stat().st_size == record.output.size > 1000
    assert download_temp_files(manifest) == []


def emulator_jobs(service: Path) -> dict[str, tuple[str, str]]:
    """Every job the emulator in ``service`` holds: id → (job key, status); the key is
    what creates count (the GA id, or the preview ``displayName``)."""
    jobs: dict[str, tuple[str, str]] = {}
    for path in (service / "jobs").glob("*/*.json"):
        job = json.loads(path.read_text("utf-8"))
        jobs[job["id"]] = (job["name"], job["status"])
    return jobs


def paid_creates(service: Path) -> Counter[str]:
    """Creates that made a job, per job key, counted twice over: the request log misses
    a create whose answer never left (a process killed in the handler, after the job was
    stored: the client saw no answer and must adopt the job), the job store misses a job
    deleted since. The larger count of each key is what was paid."""
    logged = Counter(r.name for r in read_request_log(service) if r.created and r.name)
    stored = Counter(name for name, _ in emulator_jobs(service).values())
    return logged | stored


def assert_paid_once_and_complete(manifest: Path) -> None:
    """Every video rendered, on disk, vouched for by state, and created exactly once."""
    requests = open_course(manifest, "emulator").requests
    service = data_dir(manifest)
    # Under its first job id: a re-submission would show up as a ``-r1`` id, a repeated
    # create of the same id (or a second preview job of the same name) as a 2.
    counted = dict(paid_creates(service))
    expected = {r.synthesis_id: 1 for r in requests}
    assert counted == expected, (
        f"creates counted {counted}, expected one each of {sorted(expected)}; logged "
        f"creates:\n" + "\n".join(repr(r) for r in read_request_log(service) if r.created)
    )
    assert_all_rendered(manifest)
    assert state_temp_files(manifest) == []


def delete_remote_job(manifest: Path, job_id: str) -> None:
    """What the service does when a job's time-to-live runs out."""
    with Emulator(data_dir(manifest), EmulatorConfig()) as emulator:
        url = f"{emulator.url}/avatar/batchsyntheses/{job_id}?api-version=2024-08-01"
        response = httpx.delete(url, headers={"Ocp-Apim-Subscription-Key": "k"})
        assert response.status_code == 204


def requests_by_kind(manifest: Path) -> Counter[str]:
    return Counter(r.kind for r in read_request_log(data_dir(manifest)))


# -- packs and destination containers -----------------------------------------------------

# Tiny frames, a tone instead of speech, and a create throttle of 2 per minute scaled
# to 2 per second: what packing is for, at a pace a test can afford.
PACK_EMULATOR = {
    "width": 32,
    "height": 18,
    "speech": False,
    "creates_per_minute": 2,
    "time_scale": 60,
}
DEST_PATH = "courses/demo"


def packed_course(
    root: Path, container_url: str, count: int, *, service: str = "", text: str = "Hi {i}."
) -> Path:
    videos = "\n".join(
        f"  - id: v{i:04d}\n    text: {text.format(i=i)}" for i in range(1, count + 1)
    )
    manifest = (
        "version: 1\n"
        "name: demo\n"
        "defaults:\n"
        "  template: narration.ssml.j2\n"
        "  voice: en-US-AvaMultilingualNeural\n"
        "  avatar: {character: lisa, style: graceful-sitting}\n"
        "  video: {format: mp4, codec: h264}\n"
        "  vars: {title: Hi}\n"
        "service:\n"
        "  pack: true\n"
        f"  destination_container_url: {container_url}\n"
        f"  destination_path: {DEST_PATH}\n"
        f"{service}"
        f"videos:\n{videos}\n"
    )
    make_tree(root, {"course.yaml": manifest, "templates/narration.ssml.j2": TEMPLATE})
    return root / "course.yaml"


def creates(manifest: Path) -> list[str]:
    """Job ids of the creates that made a job (throttled attempts make none)."""
    return [r.name or "" for r in read_request_log(data_dir(manifest)) if r.created]


def records(manifest: Path) -> dict[str, Any]:
    return open_course(manifest, "emulator").load_state().records


def assert_downloaded_and_intact(manifest: Path, *, packed: bool = True) -> None:
    project = open_course(manifest, "emulator")
    state = project.load_state()
    assert sorted(state.records) == sorted(r.video_id for r in project.requests)
    for record in state.records.values():
        assert record.status == "downloaded", record
        assert record.output is not None and (record.pack_index is not None) == packed
        path = manifest.parent / record.output.path
        assert path.stat().st_size == record.output.size > 500
        assert sha256_file(path) == record.output.sha256


def container_blobs(container_url: str, sas: str) -> dict[str, int]:
    """Blob name → size, listed through the Blob API."""
    response = httpx.get(f"{container_url}?restype=container&comp=list&{sas}")
    assert response.status_code == 200, response.text
    root = ET.fromstring(response.content)
    return {
        blob.findtext("Name") or "": int(blob.findtext("Properties/Content-Length") or 0)
        for blob in root.iter("Blob")
    }


def state_text(manifest: Path) -> str:
    state_dir = open_course(manifest, "emulator").workspace.state_dir
    return "".join(p.read_text() for p in state_dir.rglob("*.json") if "service" not in p.parts)


def remote_manifest(container_url: str, name: str = "team.json") -> str:
    service = f"service:\n  state: {{backend: azureblob, container_url: '{container_url}', "
    return MANIFEST.replace("defaults:", f"{service}name: {name}}}\ndefaults:", 1)


def ignored_by_git(root: Path, *paths: Path) -> list[str]:
    """Which of ``paths`` the ``.gitignore`` of ``root`` ignores (``root`` becomes a repo)."""
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    ignored = subprocess.run(
        ["git", "-C", str(root), "check-ignore", *map(str, paths)],
        capture_output=True,
        text=True,
    )
    return ignored.stdout.splitlines()


def log_of(manifest: Path) -> list[RequestRecord]:
    return read_request_log(data_dir(manifest))


def faults_by_kind(manifest: Path) -> Counter[tuple[str, str | None]]:
    return Counter((r.kind, r.fault) for r in log_of(manifest) if r.fault)


def synthesis_id(manifest: Path, video_id: str) -> str:
    return open_course(manifest, "emulator").request(video_id).synthesis_id

"""Randomised soak: a seeded storm of faults and SIGKILLs, then the money invariants.

One soak run generates a course of ``videos`` tiny videos, then runs ``avatarflow apply
--emulator`` as a subprocess again and again against the same folders (so the embedded
emulator's jobs and request log persist on disk), each round with random fault rates and,
most rounds, a SIGKILL at a random named kill point. Rounds repeat until an apply exits
0 in a round without a kill. Then it checks, from the emulator's own records:

* no job id was created twice, and every job paid for either delivered a video or was
  failed by the service (an injected ``fail``): nothing else was rendered;
* every video is on disk with the size and sha256 its state record vouches for;
* no temp file (state write or partial download) is left;
* ``plan`` says "No changes." and sends nothing.

With a :class:`Packing` the videos travel as multi-input jobs written into a blob
container (Azurite in the tests), and the same rules hold per packed job.

Every fault plan and kill point comes from one ``random.Random(seed)``: a failing seed
replays the same storm (where a kill lands inside it still depends on timing).
Used by ``tests/test_soak.py`` (a few seeds) and ``benchmarks/soak.py`` (many).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from avatarflow.display import footer
from avatarflow.emulator.requestlog import read_request_log
from avatarflow.statcache import sha256_file

from .helpers import emulator_jobs, open_course, paid_creates, temp_files

NAME = "soak"
KILL_POINTS = (
    "before-create",
    "after-create",
    "polling",
    "mid-download",
    "after-download",
    "mid-state-write",
    "mid-store-put",  # a verified download copied into the local video store
)
# Tiny, fast renders: the soak is about bookkeeping, not pixels.
EMULATOR = {"width": 16, "height": 16, "fps": 5, "speech": False, "render_workers": 2}
TEMPLATE = (
    '<speak version="1.0" xml:lang="en-US">'
    '<voice name="{{ video.voice }}">{{ text }}</voice></speak>\n'
)


@dataclass(frozen=True)
class Packing:
    """Pack the videos into multi-input jobs written into this container."""

    container_url: str
    sas: str  # handed to apply through AZURE_STORAGE_SAS_TOKEN
    max_inputs: int = 50


@dataclass
class SoakResult:
    seed: int
    videos: int
    rounds: int = 0
    kills: int = 0
    creates: int = 0
    duplicates: int = 0  # the same job id created more than once
    unexplained: int = 0  # extra renders of a video not caused by a failed job
    injected_failures: int = 0
    seconds: float = 0.0
    exits: Counter[int] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def write_course(
    root: Path, videos: int, api_version: str | None = None, pack: Packing | None = None
) -> Path:
    """A course of ``videos`` one-sentence videos; returns the manifest path."""
    (root / "templates").mkdir(parents=True, exist_ok=True)
    (root / "templates" / "t.ssml.j2").write_text(TEMPLATE, "utf-8")
    service = [f"api_version: {api_version}"] if api_version else []
    if pack is not None:
        service += [
            "pack: true",
            f"pack_max_inputs: {pack.max_inputs}",
            f"destination_container_url: {pack.container_url}",
            f"destination_path: {NAME}",
        ]
    lines = [
        "version: 1",
        f"name: {NAME}",
        "templates_dir: templates",
        f"service: {{{', '.join(service)}}}" if service else "",
        "defaults:",
        "  template: t.ssml.j2",
        "  voice: en-US-AvaMultilingualNeural",
        "  avatar: {character: lisa, style: graceful-sitting}",
        "videos:",
    ]
    lines += [f"  - {{id: v{i:04d}, text: Clip {i}.}}" for i in range(videos)]
    manifest = root / "course.yaml"
    manifest.write_text("\n".join(line for line in lines if line) + "\n", "utf-8")
    return manifest


def random_faults(rng: random.Random, videos: int, packed: bool = False) -> str:
    """A fault plan with random rates of every request, job and download fault."""

    def pct(high: float) -> str:
        return f"{rng.uniform(0, high):.1f}%"

    items = [
        f"throttle={pct(6)}",
        "retry_after=0",
        f"error={pct(6)}",
        f"error_status={rng.choice((500, 502, 503, 504))}",
        f"drop={pct(5)}@create/get/list/download",
        f"lose_create={rng.randint(0, 3)}",
        f"truncate={rng.randint(0, 3)}",
        f"expire_urls={rng.randint(0, 3)}",
        f"seed={rng.randrange(1 << 30)}",
    ]

    # A packed job is named for its pack, not a video: then one in 16 jobs is hit.
    def job_glob() -> str:
        return (
            f"*{rng.choice('0123456789abcdef')}" if packed else f"*-v{rng.randrange(videos):04d}-*"
        )

    if rng.random() < 0.3:
        items.append(f"stuck={job_glob()}")
    if rng.random() < 0.3:
        items.append(f"fail={job_glob()}:SoakFailure:injected")
    return ",".join(items)


def random_kill(rng: random.Random, videos: int, jobs: int) -> str:
    point = rng.choice(KILL_POINTS)
    # Early enough that the point is still reached when much of the work is done: a
    # create happens once per job, a download and a state write once per video or more.
    limit = {"mid-state-write": videos, "before-create": jobs, "after-create": jobs}
    return f"{point}:{rng.randint(1, max(1, limit.get(point, videos // 4)))}"


def apply_once(
    manifest: Path,
    faults: str,
    kill_at: str | None,
    timeout: float | None,
    env: dict[str, str],
    verbose: bool = False,
) -> int:
    env = dict(
        os.environ,
        AVATARFLOW_EMULATOR_CONFIG=json.dumps(EMULATOR),
        AVATARFLOW_EMULATOR_FAULTS=faults,
        NO_COLOR="1",
        **env,
    )
    env.pop("AVATARFLOW_KILL_AT", None)
    if kill_at:
        env["AVATARFLOW_KILL_AT"] = kill_at
    args = [sys.executable, "-m", "avatarflow", "apply", str(manifest), "--emulator", "--yes"]
    args += ["--parallelism", "50"]
    if timeout is not None:
        args += ["--timeout", str(timeout)]
    done = subprocess.run(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        timeout=600,
    )
    if done.returncode not in (0, 3, -signal.SIGKILL):
        # 1 is allowed too (a request that failed all its retries), but say why.
        tail = done.stderr.strip().splitlines()[-1:] or ["(no output)"]
        print(f"  apply exited {done.returncode}: {tail[0]}", file=sys.stderr)
    if done.returncode == 3 and verbose:  # which videos failed or timed out, and why
        reasons = Counter(
            line.split(": ", 1)[1][:90]
            for line in done.stderr.splitlines()
            if ": failed: " in line or (" after " in line and "still" in line)
        )
        for reason, count in reasons.most_common(3):
            print(f"    {count} x {reason}")
    return done.returncode


def soak(
    root: Path,
    videos: int,
    seed: int,
    *,
    max_rounds: int = 30,
    stormy_rounds: int = 6,
    sure_kills: int = 3,
    api_version: str | None = None,
    pack: Packing | None = None,
    verbose: bool = False,
) -> SoakResult:
    """Apply until done under faults and kills; return the figures and any broken rule."""
    rng = random.Random(seed)
    result = SoakResult(seed=seed, videos=videos)
    manifest = write_course(root, videos, api_version, pack)
    env = {"AZURE_STORAGE_SAS_TOKEN": pack.sas} if pack else {}
    # The local video store and plan memos of this run only, never the user's.
    env["AVATARFLOW_CACHE_DIR"] = str(root / "user-cache")
    jobs = -(-videos // pack.max_inputs) if pack else videos
    started = time.monotonic()
    for round_no in range(max_rounds):
        stormy = round_no < stormy_rounds
        faults = random_faults(rng, videos, pack is not None) if stormy else ""
        # The first rounds are always killed; later ones only sometimes, to finish.
        killed = round_no < sure_kills or rng.random() < 0.5
        kill_at = random_kill(rng, videos, jobs) if stormy and killed else None
        # A stuck job needs a timeout to give the round back.
        timeout = 3.0 if "stuck=" in faults else None
        began = time.monotonic()
        code = apply_once(manifest, faults, kill_at, timeout, env, verbose)
        result.rounds += 1
        result.exits[code] += 1
        result.kills += code == -signal.SIGKILL
        if verbose:
            took = time.monotonic() - began
            print(f"  round {round_no}: {took:.1f} s, kill {kill_at}, exit {code}, {faults}")
        if code == 0:
            break
    else:
        result.problems.append(f"not done after {max_rounds} rounds: exits {dict(result.exits)}")
    result.seconds = time.monotonic() - started
    check_invariants(manifest, result)
    return result


def check_invariants(manifest: Path, result: SoakResult) -> None:
    project = open_course(manifest, "emulator")
    state = project.load_state()
    service = project.workspace.emulator_data_dir
    jobs = emulator_jobs(service)
    creates = paid_creates(service)
    failed = {name for name, status in jobs.values() if status == "Failed"}
    result.creates = sum(creates.values())
    result.duplicates = sum(n - 1 for n in creates.values())
    result.injected_failures = sum(1 for name in creates if name in failed)
    problems = result.problems
    if result.duplicates:
        problems.append(f"job ids created twice: {[k for k, n in creates.items() if n > 1]}")
    delivered: set[str] = set()
    for request in project.requests:
        record = state.records.get(request.video_id)
        if record is None or record.status != "downloaded" or record.output is None:
            problems.append(f"{request.video_id}: not downloaded ({record and record.status})")
            continue
        path = project.manifest.root / record.output.path
        if not path.is_file() or sha256_file(path) != record.output.sha256:
            problems.append(f"{request.video_id}: output missing or not what state says")
        if record.remote_id in jobs:
            delivered.add(jobs[record.remote_id][0])
    # Every paid job delivered a video, or the service failed it: nothing else was paid for.
    wasted = sorted(name for name in creates if name not in delivered and name not in failed)
    result.unexplained = len(wasted)
    if wasted:
        problems.append(f"jobs paid for but neither delivered nor failed: {wasted[:5]}")
    state_dir = project.workspace.state_dir
    leftovers = temp_files(state_dir, outside=service) + temp_files(project.workspace.output_dir)
    if leftovers:
        problems.append(f"temp files left: {[p.name for p in leftovers]}")
    before = len(read_request_log(service))
    plan = project.plan(project.load_state())
    if plan.has_changes:
        problems.append(f"plan still has changes: {footer(plan)}")
    if len(read_request_log(service)) != before:
        problems.append("planning sent requests")


def describe(result: SoakResult) -> str:
    return (
        f"seed {result.seed}: {result.videos} videos, {result.rounds} applies, "
        f"{result.kills} kills, {result.creates} creates ({result.injected_failures} after "
        f"injected failures), {result.duplicates} duplicates, {result.unexplained} unexplained, "
        f"{result.seconds:.1f} s, exits {dict(sorted(result.exits.items()))}"
    )

"""The git team workflow end to end: two clones of a bare repository, one emulator as the
shared service (jobs expire after a shortened TTL), an Azurite container as the team's
video store, one local video store per "machine".

Every apply is checked against its plan: the paid creates in the emulator's request log
equal the ``summary.paid`` that ``plan --json`` promised just before.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from avatarflow.emulator.requestlog import read_request_log

from .azurite import Azurite
from .helpers import Result, git, plan_json_of, planned_of, run_cli

pytest_plugins = ["tests.azurite"]

REPO = Path(__file__).resolve().parent.parent
VIDEOS = ["01-welcome", "02-commits", "03-branches", "04-merging", "05-recap", "06-outro"]
TTL_SECONDS_PER_HOUR = 0.05  # the example's 168 h become 8.4 s
FULL_TTL = 3600.0  # jobs live for the example's full TTL


@dataclass
class ServedEmulator:
    """An ``avatarflow emulator`` process: the shared service, as a team runs it."""

    url: str
    data_dir: Path


@dataclass
class Service:
    emulator: ServedEmulator

    def speech_requests(self) -> int:
        return len(read_request_log(self.emulator.data_dir))

    def paid_creates(self) -> int:
        return sum(1 for r in read_request_log(self.emulator.data_dir) if r.created)

    def job_exists(self, job_id: str) -> bool:
        url = f"{self.emulator.url}/avatar/batchsyntheses/{job_id}?api-version=2024-08-01"
        return httpx.get(url, headers={"Ocp-Apim-Subscription-Key": "k"}).status_code == 200

    def delete_job(self, job_id: str) -> None:
        url = f"{self.emulator.url}/avatar/batchsyntheses/{job_id}?api-version=2024-08-01"
        assert httpx.delete(url, headers={"Ocp-Apim-Subscription-Key": "k"}).status_code == 204


@dataclass
class Clone:
    """One teammate: a clone of the course and a machine of their own (its cache)."""

    name: str
    root: Path
    cache: Path
    service: Service
    monkeypatch: pytest.MonkeyPatch

    @property
    def manifest(self) -> Path:
        return self.root / "manifests" / "git-course.yaml"

    def env(self) -> dict[str, str]:
        return {
            "AVATARFLOW_CACHE_DIR": str(self.cache),
            "AZURE_SPEECH_ENDPOINT": self.service.emulator.url,
            "AZURE_SPEECH_KEY": "k",
        }

    def cli(self, *args: str) -> Result:
        for key, value in self.env().items():
            self.monkeypatch.setenv(key, value)
        return run_cli(*args)

    def git(self, *args: str) -> str:
        return git(self.root, *args)

    def plan_json(self) -> dict[str, Any]:
        return plan_json_of(self.cli("plan", str(self.manifest), "--json"))

    def planned(self) -> dict[str, tuple[str, bool]]:
        return planned_of(self.plan_json())

    def plan_paid(self) -> int:
        summary = self.plan_json()["summary"]
        assert isinstance(summary, dict)
        return int(summary["paid"])

    def apply(self, *args: str, code: int = 0) -> Result:
        """apply, checking that it pays exactly what the plan made just before said."""
        promised = self.plan_paid()
        before = self.service.paid_creates()
        result = self.cli("apply", str(self.manifest), "--yes", *args)
        assert result.code == code, result
        if code == 0:
            assert self.service.paid_creates() - before == promised, result
        else:
            assert self.service.paid_creates() == before  # stopped before paying
        return result

    def pull(self) -> Result:
        before = self.service.speech_requests()
        result = self.cli("pull", str(self.manifest))
        assert result.code == 0, result
        assert self.service.speech_requests() == before  # not one Speech request
        return result

    def render_course(self) -> None:
        """Apply the whole course and commit its state, as the team tests start."""
        self.apply()
        self.commit("the course")

    def commit(self, message: str) -> None:
        self.git("add", "-A")
        self.git("commit", "-qm", message)
        assert self.status() == ""

    def status(self) -> str:
        return self.git("status", "--porcelain")

    def videos(self) -> dict[str, bytes]:
        folder = self.root / "manifests" / "build" / "videos"
        return {p.name: p.read_bytes() for p in sorted(folder.glob("*.mp4"))}

    def edit(self, rel: str, old: str, new: str) -> None:
        path = self.root / "manifests" / rel
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new))


@pytest.fixture
def service(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Service]:
    """The emulator as a separate service (its own process), jobs expiring after a shortened
    TTL (a test may pass its own); the request log it writes counts what the team paid."""
    data_dir = tmp_path / "service"
    ttl = getattr(request, "param", TTL_SECONDS_PER_HOUR)
    config = {"width": 160, "height": 90, "ttl_seconds_per_hour": ttl}
    env = dict(os.environ, AVATARFLOW_EMULATOR_CONFIG=json.dumps(config))
    env.pop("AVATARFLOW_EMULATOR_FAULTS", None)
    command = [sys.executable, "-m", "avatarflow", "emulator", "--data-dir", str(data_dir)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # "avatarflow emulator listening on URL"
        assert "listening on " in line, line
        yield Service(ServedEmulator(line.rsplit(" ", 1)[1].strip(), data_dir))
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0


@pytest.fixture
def team(
    tmp_path: Path, service: Service, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> tuple[Clone, Clone]:
    """Alice has the course in a repository pushed to a bare origin; Bob is yet to clone."""
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    monkeypatch.delenv("AZURE_STORAGE_SAS_TOKEN", raising=False)
    monkeypatch.delenv("AVATARFLOW_EMULATOR_CONFIG", raising=False)
    container = f"{azurite.blob_url}/{azurite.new_container('videos')}"
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    alice = Clone("alice", tmp_path / "alice", tmp_path / "alice-cache", service, monkeypatch)
    alice.root.mkdir()
    shutil.copytree(REPO / "manifests", alice.root / "manifests")
    shutil.copytree(REPO / "templates", alice.root / "templates")
    alice.edit(
        "git-course.yaml",
        "templates_dir: ../templates\n",
        f"templates_dir: ../templates\nservice:\n  store: {{container_url: '{container}'}}\n",
    )
    # A repository whose .gitignore knows nothing of avatarflow's own folders.
    (alice.root / ".gitignore").write_text("build/\n")
    alice.git("init", "-q", "-b", "main")
    assert alice.cli("git-setup", str(alice.root)).code == 0
    alice.git("remote", "add", "origin", str(origin))
    bob = Clone("bob", tmp_path / "bob", tmp_path / "bob-cache", service, monkeypatch)
    return alice, bob


def clone(bob: Clone, origin: Path) -> None:
    git(origin.parent, "clone", "-q", str(origin), str(bob.root))
    assert bob.cli("git-setup", str(bob.root)).code == 0
    assert bob.status() == ""


def team_container(who: Clone, azurite: Azurite) -> Any:
    """The team store's container, as a client of the Blob API."""
    from azure.storage.blob import ContainerClient

    container = who.manifest.read_text().split("container_url: '")[1].split("'")[0]
    return ContainerClient.from_connection_string(
        azurite.connection_string, container.rsplit("/", 1)[1]
    )


def wait_until_expired(service: Service, job_ids: list[str]) -> None:
    deadline = time.monotonic() + 120
    while any(service.job_exists(j) for j in job_ids):
        assert time.monotonic() < deadline, "jobs did not expire"
        time.sleep(0.5)


def job_ids(clone: Clone) -> list[str]:
    folder = clone.root / "manifests" / ".avatarflow" / "git-course" / "renders"
    return [json.loads(p.read_text())["job_id"] for p in folder.glob("*.json")]


def test_a_teammate_cloning_after_the_ttl_gets_every_video_free_and_merges_without_conflict(
    team: tuple[Clone, Clone], service: Service
) -> None:
    alice, bob = team
    alice.apply()
    assert service.paid_creates() == 6
    alice.commit("the course")
    assert alice.status() == ""
    alice.git("push", "-q", "origin", "main")
    wait_until_expired(service, job_ids(alice))

    clone(bob, alice.root.parent / "origin.git")
    plan = bob.plan_json()
    actions = plan["actions"]
    assert isinstance(actions, list)
    assert [(a["action"], a["source"], a["paid"]) for a in actions] == [
        ("download", "team store", False)
    ] * 6
    bob.pull()
    assert bob.videos() == alice.videos()
    assert bob.status() == ""
    assert bob.cli("plan", str(bob.manifest)).out == "No changes. Every video is up to date.\n"

    # Bob edits slide 2, Alice slide 3: one paid render each, no conflict.
    bob.edit(
        "scripts/02-commits.txt",
        ".",
        ", Bob says.",
    )
    bob.apply()
    bob.commit("slide 2")
    alice.edit("scripts/03-branches.txt", ".", ", Alice says.")
    alice.apply()
    alice.commit("slide 3")
    alice.git("push", "-q", "origin", "main")
    bob.git("pull", "-q", "--no-rebase", "--no-edit", "origin", "main")
    bob.git("push", "-q", "origin", "main")
    alice.git("pull", "-q", "--no-rebase", "--no-edit", "origin", "main")
    for who in (alice, bob):
        who.pull()
        before = service.speech_requests()
        result = who.cli("plan", str(who.manifest), "--detailed-exitcode")
        assert (result.code, result.out) == (0, "No changes. Every video is up to date.\n")
        assert service.speech_requests() == before
        assert who.status() == ""
    assert alice.videos() == bob.videos()

    # Both edit slide 4 differently on their branches: the only conflict is the narration.
    alice.git("checkout", "-q", "-b", "alice-4")
    alice.edit("scripts/04-merging.txt", ".", "! Alice.")
    alice.apply()
    alice.commit("slide 4, Alice's way")
    bob.git("checkout", "-q", "-b", "bob-4")
    bob.edit("scripts/04-merging.txt", ".", "? Bob.")
    bob.apply()
    bob.commit("slide 4, Bob's way")
    bob.git("push", "-q", "origin", "bob-4")
    alice.git("fetch", "-q", "origin")
    merged = subprocess.run(
        ["git", "merge", "--no-edit", "origin/bob-4"], cwd=alice.root, capture_output=True
    )
    assert merged.returncode != 0
    conflicted = alice.git("diff", "--name-only", "--diff-filter=U").split()
    assert conflicted == ["manifests/scripts/04-merging.txt"]


def test_rename_move_revert_and_branch_switch_pay_nothing(
    team: tuple[Clone, Clone], service: Service
) -> None:
    alice, _ = team
    alice.render_course()
    requests = service.speech_requests()

    # Rename an id: the render is reused, the old output removed.
    alice.edit("git-course.yaml", "id: 05-recap", "id: 05-summary")
    kinds = alice.planned()
    assert kinds["05-summary"] == ("reuse", False), kinds
    assert kinds["05-recap"] == ("forget", False)
    alice.apply()
    assert not (alice.root / "manifests/build/videos/05-recap.mp4").exists()
    assert (alice.root / "manifests/build/videos/05-summary.mp4").is_file()
    alice.commit("rename")

    # Move a slide: nothing changes at all.
    manifest = alice.manifest.read_text()
    outro = manifest[manifest.index("  - id: 06-outro") :]
    alice.manifest.write_text(
        manifest.replace(outro, "").replace("videos:\n", "videos:\n" + outro + "\n", 1)
    )
    assert alice.plan_paid() == 0
    alice.apply()
    alice.commit("move")

    # Revert an edit: the earlier render comes back from the local store.
    alice.edit("scripts/02-commits.txt", ".", "!")
    alice.apply()
    alice.commit("edit 2")
    with_edit = service.paid_creates()
    alice.git("revert", "--no-edit", "HEAD")
    assert alice.planned()["02-commits"] == ("reuse", False)
    alice.apply()
    assert service.paid_creates() == with_edit
    assert alice.status() == ""

    # Switch branches in one checkout: the other branch's videos come back for free.
    before_branch = alice.videos()
    alice.git("checkout", "-q", "-b", "other")
    alice.edit("scripts/03-branches.txt", ".", "; on a branch.")
    alice.apply()
    alice.commit("other 3")
    paid = service.paid_creates()
    requests = service.speech_requests()
    alice.git("checkout", "-q", "main")
    alice.apply()
    assert (service.paid_creates(), service.speech_requests()) == (paid, requests)
    assert alice.videos() == before_branch
    assert alice.status() == ""
    alice.git("checkout", "-q", "other")
    alice.pull()
    assert alice.status() == ""
    assert service.speech_requests() == requests


@pytest.mark.parametrize("service", [FULL_TTL], indirect=True)
def test_a_job_deleted_early_stops_apply_before_paying_then_a_new_confirmation_renders(
    team: tuple[Clone, Clone], service: Service, azurite: Azurite
) -> None:
    alice, _ = team
    alice.render_course()
    job = next(j for j in job_ids(alice) if "03-branches" in j)
    service.delete_job(job)
    # Only the service could give the video back now.
    shutil.rmtree(alice.cache / "videos")
    client = team_container(alice, azurite)
    for blob in client.list_blobs():
        client.delete_blob(blob.name)
    (alice.root / "manifests/build/videos/03-branches.mp4").unlink()

    assert alice.plan_paid() == 0  # offline, the job lives until its expiry
    result = alice.apply(code=1)
    assert "03-branches: its job" in result.err and "nothing was paid" in result.err
    assert alice.status() == ""
    plan = alice.plan_json()
    assert plan["summary"]["paid"] == 1
    alice.apply()
    assert (alice.root / "manifests/build/videos/03-branches.mp4").is_file()


# A pull from the team store reads each object (``mid-pull``, once a 1 MiB chunk) and
# keeps it in the local store (``mid-store-put``): six videos and 06-outro's .vtt.
KILL_POINTS = ["mid-pull", "mid-store-put"]
OBJECTS = len(VIDEOS) + 1
MAX_KILLS = 40  # well above every pass of a point in one run: the loop is bounded


def killed_at(who: Clone, point: str, *command: str) -> bool:
    """Run ``avatarflow COMMAND`` in a subprocess that SIGKILLs itself at ``point``; True
    when it was killed, False when it finished (the point is passed fewer times)."""
    env = {**os.environ, **who.env(), "AVATARFLOW_KILL_AT": point, "NO_COLOR": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "avatarflow", *command, str(who.manifest)],
        env=env,
        check=False,
        capture_output=True,
        text=True,
    )
    assert done.returncode in (-9, 0), done.stderr
    return done.returncode == -9


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_pull_killed_anywhere_loses_nothing_and_pays_nothing(
    team: tuple[Clone, Clone], service: Service, point: str, tmp_path: Path
) -> None:
    """SIGKILL at every pass of ``point``, each in a fresh clone on a fresh machine."""
    alice, bob = team
    alice.render_course()
    alice.git("push", "-q", "origin", "main")
    requests = service.speech_requests()
    kills = 0
    for count in range(1, MAX_KILLS + 1):
        bob = Clone(
            "bob",
            tmp_path / f"bob-{count}",
            tmp_path / f"bob-cache-{count}",
            service,
            bob.monkeypatch,
        )
        clone(bob, alice.root.parent / "origin.git")
        if not killed_at(bob, f"{point}:{count}", "pull"):
            break
        kills += 1
        assert bob.status() == ""  # no committed file written, no temp file left in git's view
        bob.pull()
        assert bob.videos() == alice.videos()
        assert not list((bob.root / "manifests/build/videos").glob(".*"))
        assert service.speech_requests() == requests
    print(f"pull killed at {kills} passes of {point}")
    assert kills >= OBJECTS  # every object's copy was cut short once


def test_store_uploads_killed_anywhere_finish_on_the_next_run(
    team: tuple[Clone, Clone], service: Service, azurite: Azurite, tmp_path: Path
) -> None:
    """SIGKILL at every pass of ``mid-store-upload`` while a pull puts a checkout's
    outputs into an empty team store: the next pull stores everything, with no Speech
    request, and a fresh clone then gets every video from the team store."""
    alice, bob = team
    alice.apply()
    alice.commit("the course")
    alice.git("push", "-q", "origin", "main")
    requests = service.speech_requests()
    container = team_container(alice, azurite)
    kills = 0
    for count in range(1, MAX_KILLS + 1):
        for blob in container.list_blobs():
            container.delete_blob(blob.name)
        # This machine's record of what the stores hold goes with them (it is disposable).
        (alice.root / "manifests/.avatarflow/git-course/.cache/checkout.json").unlink()
        if not killed_at(alice, f"mid-store-upload:{count}", "pull"):
            break
        kills += 1
        assert alice.status() == ""
        alice.pull()
        assert len(list(container.list_blobs())) == OBJECTS
        fresh = Clone(
            "bob",
            tmp_path / f"bob-{count}",
            tmp_path / f"bob-cache-{count}",
            service,
            bob.monkeypatch,
        )
        clone(fresh, alice.root.parent / "origin.git")
        assert all(a["source"] == "team store" for a in fresh.plan_json()["actions"])
        fresh.pull()
        assert fresh.videos() == alice.videos()
    print(f"pull killed at {kills} passes of mid-store-upload")
    assert kills >= OBJECTS
    assert service.speech_requests() == requests
    assert service.paid_creates() == len(VIDEOS)


def test_an_apply_killed_during_store_uploads_stores_everything_on_the_next_run(
    team: tuple[Clone, Clone], service: Service
) -> None:
    alice, bob = team
    env = {**os.environ, **alice.env(), "AVATARFLOW_KILL_AT": "mid-store-upload:3"}
    killed = subprocess.run(
        [sys.executable, "-m", "avatarflow", "apply", str(alice.manifest), "--yes"],
        env=env,
        check=False,
        capture_output=True,
    )
    assert killed.returncode == -9
    alice.apply()  # finishes the renders and the uploads
    assert service.paid_creates() == 6
    alice.commit("the course")
    alice.git("push", "-q", "origin", "main")
    clone(bob, alice.root.parent / "origin.git")
    assert all(a["source"] == "team store" for a in bob.plan_json()["actions"])
    bob.pull()
    assert bob.videos() == alice.videos()


def test_a_saved_plan_is_applied_exactly_or_refused(
    team: tuple[Clone, Clone], service: Service, tmp_path: Path
) -> None:
    alice, _ = team
    saved = tmp_path / "plan.json"
    assert alice.cli("plan", str(alice.manifest), "-o", str(saved)).code == 0
    promised = json.loads(saved.read_text())["plan"]["summary"]["paid"]
    result = alice.cli("apply", str(saved))  # its own confirmation: no --yes needed
    assert result.code == 0, result
    assert service.paid_creates() == promised == 6
    alice.commit("the course")

    assert alice.cli("plan", str(alice.manifest), "-o", str(saved)).code == 0
    alice.edit("scripts/02-commits.txt", ".", "!")
    refused = alice.cli("apply", str(saved))
    assert refused.code == 1 and "no longer holds" in refused.err, refused
    assert "02-commits: its request changed" in refused.err
    assert service.paid_creates() == 6

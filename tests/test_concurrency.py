"""Two applies at once, a holder that hangs or dies, a state changed under a plan.

Every apply here is a real ``avatarflow apply`` subprocess on the Azure target, pointed
at one emulator of this test process through ``AZURE_SPEECH_ENDPOINT``, so that two
checkouts share one service; with the remote backend they also share one state blob in
Azurite. The proof of "never paid twice" is the emulator's own request log.
"""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import pytest

from avatarflow.emulator import Emulator
from avatarflow.statcache import sha256_file

from .azurite import Azurite
from .emulator_fixtures import EmulatorFactory
from .helpers import (
    MANIFEST,
    course,
    open_course,
    record_rendered,
    remote_manifest,
    render_file,
)

pytest_plugins = ["tests.azurite", "tests.emulator_fixtures"]

DRAFT = {"width": 160, "height": 90}


class Apply:
    """One ``avatarflow`` subprocess whose stderr is collected as it runs."""

    def __init__(self, env: dict[str, str], *args: str, stdin: int = subprocess.DEVNULL) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "avatarflow", *args],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        self.out: list[bytes] = []
        self.err: list[bytes] = []
        self._readers = [
            threading.Thread(target=_drain, args=(stream, sink), daemon=True)
            for stream, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))
        ]
        for reader in self._readers:
            reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def stdout(self) -> str:
        return b"".join(self.out).decode()

    @property
    def stderr(self) -> str:
        return b"".join(self.err).decode()

    def wait_for(self, needle: str, stream: str = "stderr") -> None:
        deadline = time.monotonic() + 60
        while needle not in getattr(self, stream):
            assert self.proc.poll() is None, f"exited {self.proc.returncode}: {self.stderr}"
            assert time.monotonic() < deadline, self.stderr
            time.sleep(0.05)

    def wait(self) -> int:
        code = self.proc.wait(timeout=120)
        for reader in self._readers:  # everything it wrote, up to the end of its pipes
            reader.join(timeout=10)
        return code


def _drain(stream: IO[bytes], sink: list[bytes]) -> None:
    # os.read returns what is there (a prompt without a newline too) without waiting.
    while chunk := os.read(stream.fileno(), 4096):
        sink.append(chunk)


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "avatarflow", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def service_env(emulator: Emulator, azurite: Azurite | None = None, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AVATARFLOW_", "AZURE_SPEECH_", "AZURE_STORAGE_"))
        or k == "AVATARFLOW_CACHE_DIR"  # the test's own cache, never the user's
    }
    env.update(AZURE_SPEECH_ENDPOINT=emulator.url, AZURE_SPEECH_KEY="k", NO_COLOR="1", **extra)
    if azurite is not None:
        env["AZURE_STORAGE_CONNECTION_STRING"] = azurite.connection_string
    return env


def job_ids(manifest: Path) -> dict[str, int]:
    """Each video's first job id, created once: what "never paid twice" looks like."""
    return {r.synthesis_id: 1 for r in open_course(manifest).requests}


def assert_all_downloaded(manifest: Path) -> None:
    """Every video recorded as downloaded, and its file in this checkout is that file."""
    state = open_course(manifest).load_state()
    assert sorted(state.records) == ["a", "b", "c"]
    for record in state.records.values():
        assert record.status == "downloaded" and record.output is not None, record
        assert sha256_file(manifest.parent / record.output.path) == record.output.sha256


def lock_id_in(message: str) -> str:
    found = re.search(r"force-unlock (\S+) MANIFEST", message)
    assert found, message
    return found.group(1)


def remote_container(azurite: Azurite, project: Any) -> Any:
    """The container of ``project``'s remote state, seen directly through the SDK."""
    from azure.storage.blob import ContainerClient

    url = project.manifest.model.service.state.container_url
    return ContainerClient.from_connection_string(azurite.connection_string, url.rsplit("/", 1)[1])


@pytest.fixture
def remote(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> str:
    """The text of a manifest whose state is a blob in a fresh Azurite container."""
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    return remote_manifest(f"{azurite.blob_url}/{azurite.new_container()}")


def test_two_checkouts_sharing_a_remote_state_create_each_video_once(
    tmp_path: Path, make_emulator: EmulatorFactory, azurite: Azurite, remote: str
) -> None:
    # Long enough that the refused apply below starts (a cold Python process, slow on a
    # busy machine) while the first still holds the lease.
    emulator = make_emulator(queue_seconds=10.0, **DRAFT)
    one, two = course(tmp_path / "one", remote), course(tmp_path / "two", remote)
    env = service_env(emulator, azurite)

    first = Apply(env, "apply", str(one), "--yes")
    first.wait_for("submitted as")  # it holds the lease until its jobs finish
    second = Apply(env, "apply", str(two), "--yes", "--lock-timeout", "120")
    second.wait_for("Waiting for the state lock: lock")
    refused = run(env, "apply", str(two), "--yes")  # no --lock-timeout: refused at once

    assert refused.returncode == 1, refused.stderr
    assert re.search(rf"held by pid ({first.pid}|{second.pid}) ", refused.stderr), refused.stderr
    assert first.wait() == 0, first.stderr
    assert second.wait() == 0, second.stderr
    assert f"held by pid {first.pid}" in second.stderr
    assert emulator.create_counts() == job_ids(one)
    # The second checkout found every video rendered and only downloaded its own copies.
    assert "submitted as" not in second.stderr
    assert second.stderr.count("in place from the local store") == 3  # one machine
    assert_all_downloaded(one)
    assert_all_downloaded(two)


def test_killed_lease_holder_is_reported_and_force_unlock_then_apply_pays_nothing_twice(
    tmp_path: Path, make_emulator: EmulatorFactory, azurite: Azurite, remote: str
) -> None:
    emulator = make_emulator(**DRAFT)
    one, two = course(tmp_path / "one", remote), course(tmp_path / "two", remote)
    env = service_env(emulator, azurite)
    killed = Apply(
        service_env(emulator, azurite, AVATARFLOW_KILL_AT="after-create:2"),
        "apply",
        str(one),
        "--yes",
        "--parallelism",
        "1",
    )
    assert killed.wait() == -signal.SIGKILL, killed.stderr

    refused = run(env, "apply", str(two), "--yes")
    assert refused.returncode == 1
    assert f"held by pid {killed.pid}" in refused.stderr
    assert f"process {killed.pid} is no longer running" in refused.stderr
    unlocked = run(env, "force-unlock", lock_id_in(refused.stderr), str(two))
    assert unlocked.returncode == 0, unlocked.stderr
    done = run(env, "apply", str(two), "--yes")

    assert done.returncode == 0, done.stderr
    assert "adopted existing job" in done.stderr  # created, never recorded: not paid again
    assert emulator.create_counts() == job_ids(two)
    assert_all_downloaded(two)


def test_a_hung_local_lock_holder_is_named_and_force_unlock_lets_apply_finish(
    tmp_path: Path, make_emulator: EmulatorFactory
) -> None:
    emulator = make_emulator(queue_seconds=1.0, **DRAFT)
    manifest = course(tmp_path)
    env = service_env(emulator)
    hung = Apply(env, "apply", str(manifest), "--yes")
    hung.wait_for("submitted as")
    os.kill(hung.pid, signal.SIGSTOP)  # alive, holding its flock, doing nothing
    try:
        refused = run(env, "apply", str(manifest), "--yes")
        assert refused.returncode == 1
        assert f"held by pid {hung.pid}" in refused.stderr
        unlocked = run(env, "force-unlock", lock_id_in(refused.stderr), str(manifest))
        assert unlocked.returncode == 0, unlocked.stderr
        done = run(env, "apply", str(manifest), "--yes")
    finally:
        hung.proc.kill()
        hung.wait()
    assert done.returncode == 0, done.stderr
    assert emulator.create_counts() == job_ids(manifest)
    assert_all_downloaded(manifest)


@pytest.mark.parametrize("backend", ["local", "azureblob"])
def test_state_changed_between_plan_and_confirmation_is_refused(
    tmp_path: Path, make_emulator: EmulatorFactory, backend: str, request: pytest.FixtureRequest
) -> None:
    emulator = make_emulator(**DRAFT)
    text = MANIFEST if backend == "local" else request.getfixturevalue("remote")
    azurite = request.getfixturevalue("azurite") if backend == "azureblob" else None
    manifest = course(tmp_path, text)
    project = open_course(manifest)
    state = project.load_state()
    record_rendered(project, state, project.request("a"))
    digest = project.request("a").content_hash
    master, slave = pty.openpty()  # the child reads its answer from a terminal
    apply = Apply(service_env(emulator, azurite), "apply", str(manifest), stdin=slave)
    try:
        apply.wait_for("Apply this plan?", "stdout")
        # Another process (a git pull, a hand edit) rewrites a record meanwhile.
        if backend == "local":
            record = render_file(manifest, "a")
            record.write_text(record.read_text().replace('"job_id"', '"duration_ms": 1, "job_id"'))
        else:
            assert azurite is not None
            container = remote_container(azurite, project)
            blob = container.get_blob_client(f"team.json.renders/{digest}.json")
            text = blob.download_blob().readall().decode()
            blob.upload_blob(text.replace('"job_id"', '"duration_ms": 1, "job_id"'), overwrite=True)
        os.write(master, b"y\n")
        code = apply.wait()
    finally:
        os.close(master)
        os.close(slave)
    assert code == 1
    assert "the state changed since the plan was made" in apply.stderr
    assert emulator.create_counts() == {}
    if backend == "azureblob":  # the other writer's record stays as it wrote it
        assert open_course(manifest).load_state().records["a"].duration_ms == 1

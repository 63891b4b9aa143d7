"""Fixtures and helpers of the emulator tests (real HTTP over loopback, no mocks).

Test modules load it with ``pytest_plugins = ["tests.emulator_fixtures"]`` and import its
helpers, so it is imported before pytest could rewrite its asserts: PYTEST_DONT_REWRITE.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from avatarflow.emulator import Emulator, EmulatorConfig

GA_VERSION = "2024-08-01"
KEY = "emulator-test-key-0001"
HEADERS = {"Ocp-Apim-Subscription-Key": KEY}
PREVIEW_ROOT = "/api/texttospeech/3.1-preview1/batchsynthesis/talkingavatar"
FINAL = ("Succeeded", "Failed")
TEXT = "Hello there, this is a short test of the emulator."
# The avatar settings of both surfaces' bodies (GA ``avatarConfig``, preview ``properties``).
AVATAR = {
    "talkingAvatarCharacter": "lisa",
    "talkingAvatarStyle": "graceful-sitting",
    "videoFormat": "mp4",
    "videoCodec": "h264",
}


def ga_body(**changes: Any) -> dict[str, Any]:
    """A valid GA create body; ``changes`` maps dotted paths to values (None deletes)."""
    body: dict[str, Any] = {
        "inputKind": "PlainText",
        "synthesisConfig": {"voice": "en-US-AvaMultilingualNeural"},
        "inputs": [{"content": TEXT}],
        "avatarConfig": dict(AVATAR),
    }
    return apply_changes(body, changes)


def preview_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "displayName": "preview-job",
        "textType": "PlainText",
        "synthesisConfig": {"voice": "en-US-AvaMultilingualNeural"},
        "inputs": [{"text": TEXT}],
        "properties": dict(AVATAR),
    }
    return apply_changes(body, changes)


def apply_changes(body: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(body)
    for dotted, value in changes.items():
        keys = dotted.split("__")
        target = body
        for key in keys[:-1]:
            target = target.setdefault(key, {})
        if value is None:
            target.pop(keys[-1], None)
        else:
            target[keys[-1]] = value
    return body


class Api:
    """A thin httpx client for both surfaces of one emulator."""

    def __init__(self, emulator: Emulator, headers: dict[str, str] | None = None) -> None:
        self.emulator = emulator
        self.http = httpx.Client(
            base_url=emulator.url, headers=HEADERS if headers is None else headers, timeout=30
        )

    def close(self) -> None:
        self.http.close()

    # GA
    def put(self, job_id: str, body: Any, **kw: Any) -> httpx.Response:
        return self.http.put(
            f"/avatar/batchsyntheses/{job_id}", params={"api-version": GA_VERSION}, json=body, **kw
        )

    def get(self, job_id: str) -> httpx.Response:
        return self.http.get(f"/avatar/batchsyntheses/{job_id}", params={"api-version": GA_VERSION})

    def delete(self, job_id: str) -> httpx.Response:
        return self.http.delete(
            f"/avatar/batchsyntheses/{job_id}", params={"api-version": GA_VERSION}
        )

    # preview
    def post(self, body: Any) -> httpx.Response:
        return self.http.post(PREVIEW_ROOT, json=body)

    def pget(self, job_id: str) -> httpx.Response:
        return self.http.get(f"{PREVIEW_ROOT}/{job_id}")

    def wait(
        self,
        job_id: str,
        statuses: tuple[str, ...] = FINAL,
        *,
        preview: bool = False,
        timeout: float = 60.0,
    ) -> dict[str, Any]:
        """Poll until the job reaches one of ``statuses``; returns the job body."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.pget(job_id) if preview else self.get(job_id)
            assert response.status_code == 200, response.text
            job: dict[str, Any] = response.json()
            if job["status"] in statuses:
                return job
            assert time.monotonic() < deadline, f"{job_id} stuck in {job['status']}"
            time.sleep(0.05)

    def wait_gone(self, job_id: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.get(job_id).status_code != 404:
            assert time.monotonic() < deadline, f"{job_id} did not expire"
            time.sleep(0.05)


EmulatorFactory = Callable[..., Emulator]


@pytest.fixture
def make_emulator(tmp_path: Path) -> Iterator[EmulatorFactory]:
    """Start emulators on ``tmp_path/"emu"`` (or ``data_dir``); all are stopped at the end."""
    started: list[Emulator] = []

    def factory(
        config: EmulatorConfig | None = None, data_dir: Path | None = None, **fields: Any
    ) -> Emulator:
        emulator = Emulator(data_dir or tmp_path / "emu", config or EmulatorConfig(**fields))
        started.append(emulator.start())
        return emulator

    yield factory
    for emulator in started:
        emulator.stop()


@pytest.fixture
def emu(make_emulator: EmulatorFactory) -> Emulator:
    return make_emulator()


@pytest.fixture
def api(emu: Emulator) -> Iterator[Api]:
    client = Api(emu)
    yield client
    client.close()


@pytest.fixture
def queued_api(make_emulator: EmulatorFactory) -> Iterator[Api]:
    """An emulator whose jobs stay NotStarted (nothing is rendered): for API shape tests."""
    client = Api(make_emulator(queue_seconds=3600.0))
    yield client
    client.close()

"""Azurite, Microsoft's Azure Storage emulator, as a pytest fixture (real Blob API, no mock).

Test modules load it with ``pytest_plugins = ["tests.azurite"]``. The ``azurite`` fixture
yields an :class:`Azurite` for the whole session:

- when ``AVATARFLOW_AZURITE_BLOB_URL`` is set (``.ci/run`` starts Azurite and sets it),
  that server is used;
- otherwise the fixture starts ``azurite-blob`` itself (found on ``PATH``, in
  ``AVATARFLOW_AZURITE_BIN`` or in ``.ci/node/node_modules/.bin``) on a free loopback
  port with a temporary folder, and stops it at the end;
- without Node or Azurite the tests that need it are skipped with that reason, except
  under CI (``CI=true``), where a missing Azurite is a failure: CI must run them.

PYTEST_DONT_REWRITE
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from .helpers import PACK_EMULATOR

ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (published in Microsoft's docs; not a secret).
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Azurite:
    """A running Azurite blob service."""

    blob_url: str  # e.g. http://127.0.0.1:10000/devstoreaccount1

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.blob_url};"
        )

    def new_container(self, prefix: str = "test") -> str:
        """Create a container with a unique name; return its name."""
        from azure.storage.blob import BlobServiceClient

        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        BlobServiceClient.from_connection_string(self.connection_string).create_container(name)
        return name

    def container_sas_url(self, container: str, hours: float = 2.0) -> str:
        """A service SAS URL with read/write/list/delete rights on ``container``."""
        from datetime import UTC, datetime, timedelta

        from azure.storage.blob import ContainerSasPermissions, generate_container_sas

        sas = generate_container_sas(
            account_name=ACCOUNT,
            container_name=container,
            account_key=ACCOUNT_KEY,
            permission=ContainerSasPermissions(
                read=True, write=True, delete=True, list=True, add=True, create=True
            ),
            expiry=datetime.now(UTC) + timedelta(hours=hours),
        )
        return f"{self.blob_url}/{container}?{sas}"


def _find_binary() -> str | None:
    explicit = os.environ.get("AVATARFLOW_AZURITE_BIN")
    if explicit:
        return explicit
    found = shutil.which("azurite-blob")
    if found:
        return found
    local = ROOT / ".ci" / "node" / "node_modules" / ".bin" / "azurite-blob"
    return str(local) if local.exists() else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(url: str, process: subprocess.Popen[bytes] | None, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"azurite exited with code {process.returncode}")
        try:
            # Any HTTP answer (400 for a bare account URL) means the server is up.
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"azurite did not answer at {url} within {seconds:.0f} s")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"Azurite is required under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    try:
        import azure.storage.blob  # noqa: F401
    except ImportError:
        _unavailable("azure-storage-blob is not installed (pip install -e '.[azure]')")
    external = os.environ.get("AVATARFLOW_AZURITE_BLOB_URL")
    if external:
        _wait_until_up(external, None, 30)
        yield Azurite(external.rstrip("/"))
        return
    binary = _find_binary()
    if binary is None or shutil.which("node") is None:
        _unavailable("Node's azurite is not installed (npm install azurite)")
        return
    with running(binary) as server:
        yield server


@contextlib.contextmanager
def running(binary: str) -> Iterator[Azurite]:
    """Azurite started from ``binary`` on a free loopback port and a temporary folder."""
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="azurite-") as folder:
        process = subprocess.Popen(
            [
                str(binary),
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(port),
                "--location",
                folder,
                "--skipApiVersionCheck",
                "--loose",
                "--silent",
                "--disableTelemetry",  # no traffic beyond loopback
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}/{ACCOUNT}"
            _wait_until_up(url, process, 60)
            yield Azurite(url)
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def container(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """A fresh container: (plain URL for the manifest, SAS token for the environment)."""
    sas_url = azurite.container_sas_url(azurite.new_container("pack"))
    url, _, sas = sas_url.partition("?")
    monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", sas)
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    monkeypatch.setenv("AVATARFLOW_EMULATOR_CONFIG", json.dumps(PACK_EMULATOR))
    monkeypatch.delenv("AVATARFLOW_EMULATOR_FAULTS", raising=False)
    monkeypatch.delenv("AVATARFLOW_KILL_AT", raising=False)
    return url, sas

"""Remote state on Azure Blob Storage, against Azurite (the real Blob API, no mock).

The store is one blob written with ETag conditions and a lock blob whose lease names
its holder; ``state pull/push`` copy between it and the local files. Apply runs over
two checkouts and kill points live in ``test_concurrency.py``.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from avatarflow.backends.azureblob import AzureBlobStore
from avatarflow.errors import ConcurrentWriteError, LockError
from avatarflow.project import Project

from .azurite import ACCOUNT_KEY, Azurite
from .helpers import MANIFEST, course, record_all, run_cli

pytest_plugins = ["tests.azurite"]


def remote_manifest(container_url: str, name: str = "team.json") -> str:
    service = f"service:\n  state: {{backend: azureblob, container_url: '{container_url}', "
    return MANIFEST.replace("defaults:", f"{service}name: {name}}}\ndefaults:", 1)


@pytest.fixture
def container_url(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    monkeypatch.delenv("AZURE_STORAGE_SAS_TOKEN", raising=False)
    return f"{azurite.blob_url}/{azurite.new_container()}"


@pytest.fixture
def manifest(tmp_path: Path, container_url: str) -> Path:
    return course(tmp_path, remote_manifest(container_url))


def container_of(azurite: Azurite, container_url: str) -> Any:
    """The container seen directly through the SDK, bypassing avatarflow."""
    from azure.storage.blob import ContainerClient

    name = container_url.rsplit("/", 1)[1]
    return ContainerClient.from_connection_string(azurite.connection_string, name)


def blob_text(azurite: Azurite, container_url: str, name: str = "team.json") -> str:
    blob = container_of(azurite, container_url).get_blob_client(name)
    return str(blob.download_blob().readall().decode())


def test_records_go_to_the_blob_and_plan_reads_them_back(
    manifest: Path, azurite: Azurite, container_url: str
) -> None:
    record_all(manifest)

    document = json.loads(blob_text(azurite, container_url))
    assert sorted(document["videos"]) == ["a", "b", "c"]
    assert document["meta"]["name"] == "demo"
    assert not (manifest.parent / ".avatarflow").exists()  # nothing written locally
    result = run_cli("plan", str(manifest))
    assert result.code == 0, result.err
    assert "No changes." in result.out


def test_a_concurrent_write_is_an_error_not_a_lost_update(
    manifest: Path, azurite: Azurite, container_url: str
) -> None:
    record_all(manifest)
    project = Project.open(manifest)
    first, second = project.load_state(), project.load_state()
    first.put(first.records["a"].model_copy(update={"remote_status": "first"}))

    with pytest.raises(ConcurrentWriteError, match="ETag mismatch"):
        second.put(second.records["b"].model_copy(update={"remote_status": "second"}))

    stored = project.load_state()
    assert stored.records["a"].remote_status == "first"  # the first write survived
    assert stored.records["b"].remote_status is None  # the second was never written
    assert stored.records["a"].serial == 2


def test_two_first_writers_of_an_empty_state_cannot_both_create_it(manifest: Path) -> None:
    project = Project.open(manifest)
    first, second = project.load_state(), project.load_state()
    meta = first.ensure_meta("demo")
    with pytest.raises(ConcurrentWriteError):
        second.ensure_meta("demo")
    assert project.load_state().meta == meta


def test_a_held_lease_refuses_apply_with_its_holder_and_force_unlock_breaks_it(
    manifest: Path,
) -> None:
    store = Project.open(manifest).store()
    lease = store.lock("avatarflow apply (test)")
    info = lease.acquire()
    try:
        result = run_cli("apply", str(manifest), "--yes")
        assert result.code == 1
        assert f"lock {info.id} held by pid {os.getpid()} on {socket.gethostname()}" in result.err
        assert "avatarflow apply (test)" in result.err and info.created in result.err

        wrong = run_cli("force-unlock", "not-the-id", str(manifest))
        assert wrong.code == 1 and f"the lock id is {info.id}" in wrong.err
        done = run_cli("force-unlock", info.id, str(manifest))
        assert done.code == 0, done.err
    finally:
        lease.release()  # a broken lease is no longer ours: release is a no-op
    with store.lock("avatarflow apply (again)") as again:  # free at once after the break
        assert again.info is not None and again.info.id != info.id
    assert run_cli("force-unlock", info.id, str(manifest)).code == 1  # nothing left to break


def test_lock_timeout_waits_for_the_lease(manifest: Path) -> None:
    store = Project.open(manifest).store()
    waits: list[str] = []
    with store.lock("first") as first:
        assert first.info is not None
        second = store.lock("second", timeout=0.6, on_wait=waits.append)
        with pytest.raises(LockError, match="the state is locked"):
            second.acquire()
    assert waits and first.info.id in waits[0]


def test_pull_and_push_copy_the_state_and_refuse_another_lineage(
    manifest: Path, azurite: Azurite, container_url: str
) -> None:
    record_all(manifest)
    local_dir = manifest.parent / ".avatarflow" / "demo"
    pulled = run_cli("state", "pull", str(manifest))
    assert pulled.code == 0, pulled.err
    assert sorted(p.name for p in (local_dir / "videos").iterdir()) == [
        "a.json",
        "b.json",
        "c.json",
    ]
    remote = Project.open(manifest).load_state()
    local = Project.open(manifest).local_store().load()
    assert local.meta == remote.meta and local.records == remote.records

    # A state created separately (another lineage) is never mixed with this one.
    Project.open(manifest).local_store().replace(
        remote.meta.model_copy(update={"lineage": "other"}),  # type: ignore[union-attr]
        {},
    )
    for command in ("push", "pull"):
        refused = run_cli("state", command, str(manifest))
        assert refused.code == 1 and "lineage" in refused.err and "--force" in refused.err
    assert sorted(json.loads(blob_text(azurite, container_url))["videos"]) == ["a", "b", "c"]

    forced = run_cli("state", "push", "--force", str(manifest))
    assert forced.code == 0, forced.err
    document = json.loads(blob_text(azurite, container_url))
    assert document["meta"]["lineage"] == "other" and document["videos"] == {}


def test_state_commands_need_a_remote_backend(tmp_path: Path) -> None:
    result = run_cli("state", "pull", str(course(tmp_path)))
    assert result.code == 1 and "service.state.backend: azureblob" in result.err


def test_drafts_keep_their_local_state(
    manifest: Path, azurite: Azurite, container_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AVATARFLOW_EMULATOR_CONFIG", json.dumps({"width": 160, "height": 90}))
    result = run_cli("apply", str(manifest), "--emulator", "--yes")
    assert result.code == 0, result.err

    drafts = Project.open(manifest, "emulator").load_state()
    assert drafts.display == ".avatarflow/demo/emulator"
    assert sorted(drafts.records) == ["a", "b", "c"]
    container = container_of(azurite, container_url)
    assert list(container.list_blob_names()) == []  # the team's state never saw a draft


def test_a_sas_token_from_the_environment_works_and_never_shows(
    tmp_path: Path, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = azurite.new_container()
    url, _, sas = azurite.container_sas_url(container).partition("?")
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", sas)
    manifest = course(tmp_path, remote_manifest(url))
    record_all(manifest)
    assert sorted(Project.open(manifest).load_state().records) == ["a", "b", "c"]

    signature = dict(p.split("=", 1) for p in sas.split("&"))["sig"]
    monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", sas.replace(signature, "A" + signature[1:]))
    result = run_cli("plan", str(manifest))
    assert result.code == 1
    assert "access refused" in result.err and url in result.err
    assert signature[1:] not in result.err and len(result.err.strip().splitlines()) == 1


def test_storage_failures_are_one_clean_line_without_the_key(
    tmp_path: Path, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = course(tmp_path / "missing", remote_manifest(f"{azurite.blob_url}/no-such-box"))
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    result = run_cli("plan", str(missing))
    assert result.code == 1
    assert result.err.strip() == (
        f"Error: {azurite.blob_url}/no-such-box/team.json: the container does not exist"
    )

    elsewhere = course(tmp_path / "elsewhere", remote_manifest("https://other.example/box"))
    result = run_cli("plan", str(elsewhere))
    assert result.code == 1
    assert "AZURE_STORAGE_CONNECTION_STRING is for " in result.err
    assert "not for the manifest's container_url https://other.example/box" in result.err

    wrong_key = "A" * 20 + ACCOUNT_KEY[20:]
    monkeypatch.setenv(
        "AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string.replace(ACCOUNT_KEY, wrong_key)
    )
    refused = course(tmp_path / "refused", remote_manifest(f"{azurite.blob_url}/any"))
    result = run_cli("apply", str(refused), "--yes")
    assert result.code == 1
    assert "access refused" in result.err and len(result.err.strip().splitlines()) == 1
    assert ACCOUNT_KEY[20:] not in result.err and "Traceback" not in result.err


@pytest.mark.parametrize(
    ("state", "error"),
    [
        (
            "{backend: azureblob, container_url: 'https://a.blob.core.windows.net/c?sig=abc'}",
            "course.yaml:4: service.state.container_url: container_url must not carry a query",
        ),
        ("{backend: azureblob}", "course.yaml:4: service.state: backend azureblob needs"),
        ("{backend: s3}", "course.yaml:4: service.state.backend: Input should be 'local'"),
    ],
)
def test_bad_state_settings_are_located_manifest_errors(
    tmp_path: Path, state: str, error: str
) -> None:
    text = MANIFEST.replace("defaults:", f"service:\n  state: {state}\ndefaults:", 1)
    result = run_cli("validate", str(course(tmp_path, text)))
    assert result.code == 1
    assert result.err.startswith(f"Error: {error}"), result.err
    assert "sig=abc" not in result.err


def test_the_lease_is_renewed_while_its_holder_runs(container_url: str) -> None:
    # The shortest lease the service grants; the holder outlives it by renewing it.
    store = AzureBlobStore(container_url, "team.json", lease_seconds=15)
    with store.lock("long apply") as holder:
        assert holder.info is not None
        time.sleep(17)
        with pytest.raises(LockError, match=f"lock {holder.info.id} held by pid {os.getpid()}"):
            store.lock("second").acquire()
    with store.lock("after release"):  # released at once, without waiting for expiry
        pass

"""Remote state on Azure Blob Storage, against Azurite (the real Blob API, no mock).

The store is a snapshot blob written with ETag conditions, an append-blob journal
written with append-position conditions, and a lock blob whose lease names its holder;
``state pull/push`` copy between it and the local files. Apply runs over two checkouts
live in ``test_concurrency.py``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from avatarflow import planmemo
from avatarflow.backends.azureblob import AzureBlobStore
from avatarflow.backends.journal import SEAL_LINE, put_line
from avatarflow.errors import ConcurrentWriteError, LockError, StateError
from avatarflow.state import State, StateRecord, dump_json, parse_meta, stored_data
from avatarflow.stores import video_uses

from .azurite import ACCOUNT, ACCOUNT_KEY, Azurite
from .helpers import MANIFEST, course, open_course, record_all, remote_manifest, run_cli

pytest_plugins = ["tests.azurite"]


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

    # One snapshot (written once, with the meta) and one journal line per record write.
    document = json.loads(blob_text(azurite, container_url))
    assert document["videos"] == {} and document["meta"]["name"] == "demo"
    lines = blob_text(azurite, container_url, document["journal"]).splitlines()
    assert [json.loads(line)["put"]["video_id"] for line in lines] == ["a", "b", "c"]
    assert not (manifest.parent / ".avatarflow").exists()  # nothing written locally
    result = run_cli("plan", str(manifest))
    assert result.code == 0, result.err
    assert "No changes." in result.out


def test_a_remote_state_is_never_planned_from_a_memo(
    manifest: Path, azurite: Azurite, container_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A blob has no stat to compare: every plan reads it, and sees another writer's put."""
    monkeypatch.setattr(planmemo, "RACY_NS", 0)
    record_all(manifest)
    assert "No changes." in run_cli("plan", str(manifest)).out
    assert not planmemo.memo_path(manifest, "azure").exists()
    project = open_course(manifest)
    state = project.load_state()
    state.put(state.records["b"].model_copy(update={"status": "failed"}))
    assert "~ b" in run_cli("plan", str(manifest)).out


def test_a_concurrent_write_is_an_error_not_a_lost_update(
    manifest: Path, azurite: Azurite, container_url: str
) -> None:
    record_all(manifest)
    project = open_course(manifest)
    first, second = project.load_state(), project.load_state()
    first.put(first.records["a"].model_copy(update={"remote_status": "first"}))

    with pytest.raises(ConcurrentWriteError, match="another writer changed the remote state"):
        second.put(second.records["b"].model_copy(update={"remote_status": "second"}))

    stored = project.load_state()
    assert stored.records["a"].remote_status == "first"  # the first write survived
    assert stored.records["b"].remote_status is None  # the second was never written
    assert stored.records["a"].serial == 2


def test_two_first_writers_of_an_empty_state_cannot_both_create_it(manifest: Path) -> None:
    project = open_course(manifest)
    first, second = project.load_state(), project.load_state()
    meta = first.ensure_meta("demo")
    with pytest.raises(ConcurrentWriteError):
        second.ensure_meta("demo")
    assert project.load_state().meta == meta


def test_a_held_lease_refuses_apply_with_its_holder_and_force_unlock_breaks_it(
    manifest: Path,
) -> None:
    store = open_course(manifest).store()
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
    store = open_course(manifest).store()
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
    opened = open_course(manifest)
    assert sorted(p.stem for p in (local_dir / "renders").iterdir()) == sorted(
        r.content_hash for r in opened.requests
    )
    remote = opened.load_state()
    local = opened.local_store().load()
    local.bind(video_uses(opened.workspace, opened.built))
    assert local.meta is not None and remote.meta is not None
    assert local.meta.lineage == remote.meta.lineage

    def paid(state: State) -> dict[str, object]:
        return {v: (r.input_hash, r.remote_id, r.output) for v, r in state.records.items()}

    assert paid(local) == paid(remote)

    # A state created separately (another lineage) is never mixed with this one.
    open_course(manifest).local_store().replace(
        remote.meta.model_copy(update={"lineage": "other"}),  # type: ignore[union-attr]
        {},
    )
    for command in ("push", "pull"):
        refused = run_cli("state", command, str(manifest))
        assert refused.code == 1 and "lineage" in refused.err and "--force" in refused.err
    assert sorted(open_course(manifest).load_state().records) == ["a", "b", "c"]

    forced = run_cli("state", "push", "--force", str(manifest))
    assert forced.code == 0, forced.err
    document = json.loads(blob_text(azurite, container_url))
    assert document["meta"]["lineage"] == "other" and document["videos"] == {}
    assert open_course(manifest).load_state().records == {}  # the old journal went with it


def test_state_commands_need_a_remote_backend(tmp_path: Path) -> None:
    result = run_cli("state", "pull", str(course(tmp_path)))
    assert result.code == 1 and "service.state.backend: azureblob" in result.err


def test_drafts_keep_their_local_state(
    manifest: Path, azurite: Azurite, container_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AVATARFLOW_EMULATOR_CONFIG", json.dumps({"width": 160, "height": 90}))
    result = run_cli("apply", str(manifest), "--emulator", "--yes")
    assert result.code == 0, result.err

    drafts = open_course(manifest, "emulator").load_state()
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
    assert sorted(open_course(manifest).load_state().records) == ["a", "b", "c"]

    signature = dict(p.split("=", 1) for p in sas.split("&"))["sig"]
    forged = ("B" if signature.startswith("A") else "A") + signature[1:]  # never the same
    monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", sas.replace(signature, forged))
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


# -- the journal ---------------------------------------------------------------------
def make_record(video_id: str, serial: int = 1, status: str = "submitting") -> StateRecord:
    return StateRecord.model_validate(
        {
            "video_id": video_id,
            "serial": serial,
            "status": status,
            "input_hash": "0" * 64,
            "synthesis_id": f"demo-{video_id}-000000000000",
            "surface": "batchsyntheses",
            "request": {"inputKind": "SSML", "inputs": [{"content": f"<speak>{video_id}</speak>"}]},
            "updated_at": "2026-01-01T00:00:00.000000Z",
        }
    )


def new_state(container_url: str, **settings: int) -> tuple[AzureBlobStore, State]:
    store = AzureBlobStore(container_url, "team.json", **settings)
    state = store.load()
    state.ensure_meta("demo")
    return store, state


def journals(azurite: Azurite, container_url: str) -> list[str]:
    prefix = "team.json.journal."
    return list(container_of(azurite, container_url).list_blob_names(name_starts_with=prefix))


def snapshot(azurite: Azurite, container_url: str) -> Any:
    return json.loads(blob_text(azurite, container_url))


def test_a_write_appends_one_line_and_replay_equals_the_folded_snapshot(
    azurite: Azurite, container_url: str
) -> None:
    store, state = new_state(container_url)
    blob = container_of(azurite, container_url).get_blob_client("team.json")
    snapshot_etag = blob.get_blob_properties().etag
    for video_id in ("a", "b", "c", "a", "d"):
        state.put(make_record(video_id))
    state.forget("b")
    state.put(state.records["a"].model_copy(update={"status": "running"}))

    # Seven writes, seven journal lines, and the snapshot was never uploaded again.
    assert blob.get_blob_properties().etag == snapshot_etag
    assert len(blob_text(azurite, container_url, store._journal or "").splitlines()) == 7
    replayed = AzureBlobStore(container_url, "team.json").load()
    assert replayed.records == state.records and sorted(replayed.records) == ["a", "c", "d"]
    assert replayed.records["a"].serial == 3 and replayed.records["a"].status == "running"

    store.compact()
    document = snapshot(azurite, container_url)
    assert sorted(document["videos"]) == ["a", "c", "d"]
    assert blob_text(azurite, container_url, document["journal"]) == ""
    assert journals(azurite, container_url) == [document["journal"]]  # the old one is gone
    folded = AzureBlobStore(container_url, "team.json").load()
    assert folded.records == replayed.records and folded.meta == replayed.meta


def test_a_concurrent_append_or_compaction_is_an_error_and_loses_nothing(
    container_url: str,
) -> None:
    _, state = new_state(container_url)
    state.put(make_record("a"))
    first = AzureBlobStore(container_url, "team.json").load()
    second = AzureBlobStore(container_url, "team.json").load()
    first.put(make_record("b"))

    with pytest.raises(ConcurrentWriteError, match="the journal moved on"):
        second.put(make_record("c"))
    with pytest.raises(ConcurrentWriteError):
        second.forget("a")

    # A compaction by one writer (seal, switch, delete) stops the other's append too.
    third = AzureBlobStore(container_url, "team.json")
    stale = third.load()
    first.store.compact()  # type: ignore[attr-defined]
    with pytest.raises(ConcurrentWriteError, match="the journal moved on"):
        stale.put(make_record("c"))
    assert sorted(AzureBlobStore(container_url, "team.json").load().records) == ["a", "b"]


def test_compaction_at_a_tiny_threshold_keeps_every_record(
    azurite: Azurite, container_url: str
) -> None:
    store, state = new_state(container_url, compact_min_bytes=0, max_journal_lines=4)
    expected: dict[str, StateRecord] = {}
    switches = set()
    for step in range(30):
        video_id = f"v{step % 7}"
        expected[video_id] = state.put(make_record(video_id, status="submitted"))
        switches.add(store._journal)
    state.forget("v3")
    del expected["v3"]

    assert len(switches) > 5  # it compacted many times on the way
    assert AzureBlobStore(container_url, "team.json").load().records == expected
    assert journals(azurite, container_url) == [snapshot(azurite, container_url)["journal"]]


def compact_killed_at(kill_at: str, container_url: str) -> None:
    """A compaction in another process, killed at the kill point ``kill_at``."""
    script = (
        "import sys\nfrom avatarflow.backends.azureblob import AzureBlobStore\n"
        "store = AzureBlobStore(sys.argv[1], 'team.json')\nstore.load()\nstore.compact()\n"
    )
    env = dict(os.environ, AVATARFLOW_KILL_AT=kill_at)
    killed = subprocess.run(
        [sys.executable, "-c", script, container_url], env=env, capture_output=True, timeout=60
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr


def test_a_crash_between_seal_and_snapshot_loses_nothing_and_the_next_write_finishes(
    azurite: Azurite, container_url: str
) -> None:
    _, state = new_state(container_url)
    for video_id in ("a", "b", "c"):
        state.put(make_record(video_id))
    stale = AzureBlobStore(container_url, "team.json").load()
    before = snapshot(azurite, container_url)
    compact_killed_at("mid-compaction", container_url)

    # Sealed journal still named by the snapshot, next journal created but never named.
    assert snapshot(azurite, container_url) == before
    assert blob_text(azurite, container_url, before["journal"]).endswith('{"sealed":true}\n')
    assert len(journals(azurite, container_url)) == 2
    with pytest.raises(ConcurrentWriteError):  # a writer that read before the seal
        stale.put(make_record("d"))
    after = AzureBlobStore(container_url, "team.json").load()
    assert after.records == state.records

    after.put(make_record("d"))  # finishes the compaction, with "d" in the new snapshot
    document = snapshot(azurite, container_url)
    assert sorted(document["videos"]) == ["a", "b", "c", "d"]
    assert journals(azurite, container_url) == [document["journal"]]
    assert AzureBlobStore(container_url, "team.json").load().records == after.records


def test_a_crash_after_the_switch_leaves_a_journal_that_apply_deletes(
    azurite: Azurite, container_url: str
) -> None:
    store, state = new_state(container_url)
    state.put(make_record("a"))
    old = store._journal
    stale = AzureBlobStore(container_url, "team.json").load()
    compact_killed_at("after-compaction", container_url)

    # The old journal still exists, but its seal refuses a writer that read it before.
    with pytest.raises(ConcurrentWriteError):
        stale.put(make_record("b"))
    assert old in journals(azurite, container_url) and len(journals(azurite, container_url)) == 2
    fresh = AzureBlobStore(container_url, "team.json")
    assert fresh.load().records == state.records
    assert fresh.remove_stale_temp_files() == 1
    assert journals(azurite, container_url) == [snapshot(azurite, container_url)["journal"]]
    assert AzureBlobStore(container_url, "team.json").load().records == state.records


def test_cleaning_up_never_deletes_the_journal_of_a_compaction_in_flight(
    container_url: str,
) -> None:
    store, state = new_state(container_url)
    state.put(make_record("a"))
    cleaner = AzureBlobStore(container_url, "team.json")
    cleaner.load()
    store._append_block(SEAL_LINE)  # a compaction has sealed and created the next journal
    store._sealed = True
    upcoming = store._new_journal()

    assert cleaner.remove_stale_temp_files() == 0
    store._write_snapshot(store._meta, dict(store._records), upcoming)  # type: ignore[arg-type]
    assert AzureBlobStore(container_url, "team.json").load().records == state.records


def test_an_append_retried_after_a_lost_response_is_recognised_as_ours(
    azurite: Azurite, container_url: str
) -> None:
    store, _ = new_state(container_url)
    record = make_record("a")
    # The first attempt reached the journal; its response never came back.
    journal = container_of(azurite, container_url).get_blob_client(store._journal or "")
    journal.append_block(put_line(record), appendpos_condition=0)

    store.write_record(record)  # the retry meets 412, reads its own line back: done
    store.write_record(make_record("b"))
    assert sorted(AzureBlobStore(container_url, "team.json").load().records) == ["a", "b"]
    other = make_record("c")
    journal.append_block(put_line(other), appendpos_condition=store._journal_length)
    with pytest.raises(ConcurrentWriteError):  # a line that is not ours is a race
        store.write_record(make_record("d"))


def test_a_state_written_before_the_journal_is_read_then_upgraded_for_older_readers(
    azurite: Azurite, container_url: str
) -> None:
    meta = {"format": 1, "lineage": "l-1", "name": "demo", "created_at": "2026-01-01T00:00:00Z"}
    old = {"meta": meta, "videos": {"a": stored_data(make_record("a"))}}
    blob = container_of(azurite, container_url).get_blob_client("team.json")
    blob.upload_blob(dump_json(old))

    state = AzureBlobStore(container_url, "team.json").load()
    assert state.meta is not None and state.meta.format == 1 and list(state.records) == ["a"]
    state.put(make_record("b"))

    document = snapshot(azurite, container_url)
    assert sorted(document["videos"]) == ["a", "b"] and "journal" in document
    # An avatarflow that knows no journal refuses the state instead of missing writes.
    with pytest.raises(StateError, match="state format 2 is newer"):
        parse_meta(document["meta"], "team.json")
    assert AzureBlobStore(container_url, "team.json").load().meta == state.meta


def test_a_sas_without_list_or_delete_rights_still_writes_and_compacts(
    azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime, timedelta

    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    container = azurite.new_container()
    container_url = f"{azurite.blob_url}/{container}"
    sas = generate_container_sas(
        account_name=ACCOUNT,
        container_name=container,
        account_key=ACCOUNT_KEY,
        permission=ContainerSasPermissions(read=True, write=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", sas)
    store, state = new_state(container_url, compact_min_bytes=0)
    for video_id in ("a", "b", "c", "a"):
        state.put(make_record(video_id))

    assert store.remove_stale_temp_files() == 0  # refused quietly: housekeeping only
    assert AzureBlobStore(container_url, "team.json").load().records == state.records
    assert len(journals(azurite, container_url)) > 1  # left behind, never read again

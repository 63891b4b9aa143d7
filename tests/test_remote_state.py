"""Remote state on Azure Blob Storage, against Azurite (the real Blob API, no mock).

The store is a meta blob and one blob per render (the local store's records), written
with ETag conditions, and a lock blob whose lease names its holder; ``state pull/push``
copy between it and the local files. An older remote state (a snapshot, a journal) is
migrated by the first writing command. Applies on the emulator count the paid creates
in its request log and compare them with what ``plan --json`` promised. Apply runs over
two checkouts live in ``test_concurrency.py``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from avatarflow import planmemo
from avatarflow.backends.azureblob import AzureBlobStore
from avatarflow.backends.rendered import RENDERS_FORMAT
from avatarflow.emulator import Emulator, EmulatorConfig, read_request_log
from avatarflow.errors import ConcurrentWriteError, LockError, StateError
from avatarflow.renders import dump
from avatarflow.statcache import sha256_file
from avatarflow.state import JobError, State, StateRecord, dump_json, parse_meta
from avatarflow.stores import video_uses

from .azurite import ACCOUNT, ACCOUNT_KEY, Azurite
from .helpers import (
    MANIFEST,
    Result,
    course,
    open_course,
    plan_json_of,
    planned_of,
    record_all,
    remote_manifest,
    run_cli,
)

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


def committed_files(manifest: Path) -> list[str]:
    """Files under the state folder that ``git add -A`` would take (not ``.cache/``)."""
    root = manifest.parent / ".avatarflow"
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".cache" not in p.parts
    )


def render_blobs(azurite: Azurite, container_url: str) -> dict[str, str]:
    """Request hash -> the bytes of its render blob, read directly through the SDK."""
    prefix = "team.json.renders/"
    container = container_of(azurite, container_url)
    return {
        name.removeprefix(prefix).removesuffix(".json"): blob_text(azurite, container_url, name)
        for name in container.list_blob_names(name_starts_with=prefix)
    }


def test_records_go_to_the_blob_and_plan_reads_them_back(
    manifest: Path, azurite: Azurite, container_url: str
) -> None:
    record_all(manifest)

    # One meta blob and one blob per render, named by request hash: the local records.
    document = json.loads(blob_text(azurite, container_url))
    assert document["meta"]["name"] == "demo" and document["meta"]["format"] == RENDERS_FORMAT
    opened = open_course(manifest)
    blobs = render_blobs(azurite, container_url)
    assert sorted(blobs) == sorted(r.content_hash for r in opened.requests)
    store = opened.store()
    assert isinstance(store, AzureBlobStore)
    store.load()
    assert {h: dump(r).decode() for h, r in store.renders.items()} == blobs
    assert committed_files(manifest) == []  # only this machine's facts, in .cache/
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
    digest = project.request("b").content_hash
    container_of(azurite, container_url).delete_blob(f"team.json.renders/{digest}.json")
    assert "+ b" in run_cli("plan", str(manifest)).out


def in_flight(project: Any, video_id: str, job_id: str, attempt: int = 0) -> StateRecord:
    """A record of ``video_id``'s request submitted as ``job_id`` (not final yet)."""
    request = project.request(video_id)
    return StateRecord(
        video_id=video_id,
        status="submitted",
        input_hash=request.content_hash,
        synthesis_id=request.synthesis_id,
        surface=request.surface,
        attempt=attempt,
        remote_id=job_id,
        request=request.recorded_body(),
        submitted_at=f"2026-01-01T10:0{attempt}:00Z",
        updated_at="2026-01-01T10:00:00Z",
    )


def test_two_writers_of_one_render_never_clobber_each_other(
    manifest: Path, azurite: Azurite, container_url: str
) -> None:
    project = open_course(manifest)
    first, second = project.load_state(), project.load_state()
    first.ensure_meta("demo")
    second = project.load_state()  # both know the meta; neither has a render yet
    first.put(in_flight(project, "a", "job-1"))
    digest = project.request("a").content_hash
    before = render_blobs(azurite, container_url)[digest]

    # The same render recorded by the second writer too: the same bytes, kept as they are.
    second.put(in_flight(project, "a", "job-1"))
    assert render_blobs(azurite, container_url)[digest] == before

    # A second paid job of the same request: merged, both kept as paid history.
    third = project.load_state()
    first.put(in_flight(project, "a", "job-2", attempt=1))  # the first writer's etag: fresh
    third.put(in_flight(project, "a", "job-3", attempt=2))  # stale: conflict, then merge
    stored = json.loads(render_blobs(azurite, container_url)[digest])
    jobs = {stored["job_id"], *(p["job_id"] for p in stored["history"])}
    assert jobs == {"job-1", "job-2", "job-3"}

    # A final record of a job is never written again, by anyone: not by its writer, not
    # by a writer that read the record before it was final.
    stale = project.load_state()
    failed = third.records["a"].model_copy(update={"status": "failed"})
    third.put(failed.model_copy(update={"error": JobError(code="InvalidInput", message="x")}))
    final = render_blobs(azurite, container_url)[digest]
    assert json.loads(final)["status"] == "failed" and json.loads(final)["job_id"] == "job-3"
    third.put(failed.model_copy(update={"error": JobError(code="Other", message="y")}))
    stale.put(failed.model_copy(update={"error": JobError(code="Other", message="z")}))
    assert render_blobs(azurite, container_url)[digest] == final


def test_two_first_writers_of_an_empty_state_cannot_both_create_it(manifest: Path) -> None:
    project = open_course(manifest)
    first, second = project.load_state(), project.load_state()
    meta = first.ensure_meta("demo")
    with pytest.raises(ConcurrentWriteError):
        second.ensure_meta("demo")
    stored = project.load_state().meta
    assert stored is not None and stored.lineage == meta.lineage


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
    local_bytes = {p.stem: p.read_text() for p in (local_dir / "renders").iterdir()}
    assert local_bytes == render_blobs(azurite, container_url)  # the same records, byte for byte

    # A state created separately (another lineage) is never mixed with this one.
    open_course(manifest).local_store().replace(
        remote.meta.model_copy(update={"lineage": "other"}),
        {},
    )
    for command in ("push", "pull"):
        refused = run_cli("state", command, str(manifest))
        assert refused.code == 1 and "lineage" in refused.err and "--force" in refused.err
    assert sorted(open_course(manifest).load_state().records) == ["a", "b", "c"]

    forced = run_cli("state", "push", "--force", str(manifest))
    assert forced.code == 0, forced.err
    document = json.loads(blob_text(azurite, container_url))
    assert document["meta"]["lineage"] == "other"
    assert render_blobs(azurite, container_url) == {}  # the other state's renders went
    assert open_course(manifest).load_state().records == {}


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


# -- an older remote state is migrated ------------------------------------------------
V1_STATE = Path(__file__).resolve().parent / "data" / "v1-git-course"
REPO = Path(__file__).resolve().parent.parent


def example_course(root: Path, service: str) -> Path:
    """A copy of the example course with ``service`` settings; its manifest."""
    shutil.copytree(REPO / "manifests", root / "manifests", ignore=IGNORED)
    shutil.copytree(REPO / "templates", root / "templates", ignore=IGNORED)
    manifest = root / "manifests" / "git-course.yaml"
    text = manifest.read_text()
    manifest.write_text(text.replace("\ndefaults:", f"\nservice:\n{service}\ndefaults:", 1))
    return manifest


IGNORED = shutil.ignore_patterns(".avatarflow", "build")


def v1_records() -> dict[str, dict[str, Any]]:
    folder = V1_STATE / ".avatarflow" / "git-course" / "videos"
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def upload_old_state(azurite: Azurite, container_url: str, journaled: bool) -> None:
    """The example course's format-1 records as a remote state of the snapshot era
    (format 1), or of the journal era (format 2: half in the snapshot, half journaled)."""
    meta = json.loads((V1_STATE / ".avatarflow" / "git-course" / "state.json").read_text())
    records = v1_records()
    container = container_of(azurite, container_url)
    if not journaled:
        document = {"meta": meta, "videos": records}
    else:
        ids = sorted(records)
        journal = "team.json.journal.1-0a0b0c0d"
        document = {
            "meta": {**meta, "format": 2},
            "journal": journal,
            "videos": {v: records[v] for v in ids[:3]},
        }
        # One {"put": record} line per write, as the journal era appended them.
        lines = b"".join(json.dumps({"put": records[v]}).encode() + b"\n" for v in ids[3:])
        container.get_blob_client(journal).create_append_blob()
        container.get_blob_client(journal).append_block(lines)
    container.get_blob_client("team.json").upload_blob(dump_json(document))


@pytest.mark.parametrize("journaled", [False, True], ids=["snapshot", "journal"])
def test_an_older_remote_state_migrates_to_the_local_records_byte_for_byte(
    tmp_path: Path, azurite: Azurite, container_url: str, journaled: bool
) -> None:
    upload_old_state(azurite, container_url, journaled)
    state = f"  state: {{backend: azureblob, container_url: '{container_url}', name: team.json}}"
    manifest = example_course(tmp_path / "remote", state)
    shutil.copytree(V1_STATE / "build", manifest.parent / "build")  # the videos it recorded
    # The same course with its state in local files, migrated by the local store.
    local = example_course(tmp_path / "local", "  api_version: 2024-08-01")
    shutil.copytree(V1_STATE, local.parent, dirs_exist_ok=True)
    assert run_cli("apply", str(local), "--yes").code == 0
    local_renders = {
        p.stem: p.read_text() for p in (local.parent / ".avatarflow/git-course/renders").iterdir()
    }

    # A plan reads the old format and writes nothing anywhere.
    blobs_before = sorted(container_of(azurite, container_url).list_blob_names())
    plan = run_cli("plan", str(manifest), "--detailed-exitcode")
    assert (plan.code, plan.out) == (0, "No changes. Every video is up to date.\n"), plan
    assert sorted(container_of(azurite, container_url).list_blob_names()) == blobs_before

    # The first writing command migrates: the very records the local store writes.
    applied = run_cli("apply", str(manifest), "--yes")
    assert applied.code == 0, applied
    assert render_blobs(azurite, container_url) == local_renders
    assert len(local_renders) == 6
    document = json.loads(blob_text(azurite, container_url))
    assert set(document) == {"meta"} and document["meta"]["format"] == RENDERS_FORMAT
    assert document["meta"]["lineage"] == "822293c2-1ef2-4105-aacd-8eead6419605"
    assert journals(azurite, container_url) == []  # the old journal went
    with pytest.raises(StateError, match="state format 3 is newer"):  # an older reader
        parse_meta(document["meta"], "team.json")
    assert committed_files(manifest) == []
    plan = run_cli("plan", str(manifest), "--detailed-exitcode")
    assert (plan.code, plan.out) == (0, "No changes. Every video is up to date.\n"), plan


def journals(azurite: Azurite, container_url: str) -> list[str]:
    prefix = "team.json.journal."
    return list(container_of(azurite, container_url).list_blob_names(name_starts_with=prefix))


def test_a_migration_killed_halfway_migrates_again_and_loses_nothing(
    tmp_path: Path, azurite: Azurite, container_url: str
) -> None:
    upload_old_state(azurite, container_url, journaled=True)
    state = f"  state: {{backend: azureblob, container_url: '{container_url}', name: team.json}}"
    manifest = example_course(tmp_path, state)
    shutil.copytree(V1_STATE / "build", manifest.parent / "build")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVATARFLOW_")}
    env.update(AVATARFLOW_KILL_AT="mid-state-write:4", NO_COLOR="1")
    env["AZURE_STORAGE_CONNECTION_STRING"] = os.environ["AZURE_STORAGE_CONNECTION_STRING"]
    killed = subprocess.run(
        [sys.executable, "-m", "avatarflow", "apply", str(manifest), "--yes"],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert len(render_blobs(azurite, container_url)) == 3  # three renders, the old meta
    assert json.loads(blob_text(azurite, container_url))["meta"]["format"] == 2

    plan = run_cli("plan", str(manifest), "--detailed-exitcode")  # still the old format
    assert (plan.code, plan.out) == (0, "No changes. Every video is up to date.\n"), plan
    locked = run_cli("apply", str(manifest), "--yes")  # the killed apply's lease is held
    found = re.search(r"force-unlock (\S+) MANIFEST", locked.err)
    assert locked.code == 1 and found, locked
    assert run_cli("force-unlock", found.group(1), str(manifest)).code == 0
    assert run_cli("apply", str(manifest), "--yes").code == 0
    blobs = render_blobs(azurite, container_url)
    assert sorted(blobs) == sorted(str(r["input_hash"]) for r in v1_records().values())
    assert json.loads(blob_text(azurite, container_url))["meta"]["format"] == RENDERS_FORMAT


def test_a_sas_without_list_rights_is_one_clean_line(
    tmp_path: Path, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading lists the render blobs: a SAS without the list right is refused clearly."""
    from datetime import UTC, datetime, timedelta

    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    container = azurite.new_container()
    url = f"{azurite.blob_url}/{container}"
    sas = generate_container_sas(
        account_name=ACCOUNT,
        container_name=container,
        account_key=ACCOUNT_KEY,
        permission=ContainerSasPermissions(read=True, write=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", sas)
    manifest = course(tmp_path, remote_manifest(url))
    meta = {"format": 3, "lineage": "l", "name": "demo", "created_at": "2026-01-01T00:00:00Z"}
    container_of(azurite, url).upload_blob("team.json", dump_json({"meta": meta}))
    result = run_cli("plan", str(manifest))
    assert result.code == 1 and len(result.err.strip().splitlines()) == 1, result
    assert "access refused" in result.err and f"{url}/team.json.renders/" in result.err
    assert "sig=" not in result.err.replace("sig=***", "")


# -- the render-keyed features on a remote state, paid creates counted ----------------
@dataclass
class Checkout:
    """One checkout of a course whose state is the team's blob; a machine of its own."""

    manifest: Path
    cache: Path
    emulator: Emulator
    monkeypatch: pytest.MonkeyPatch

    def cli(self, *args: str) -> Result:
        self.monkeypatch.setenv("AVATARFLOW_CACHE_DIR", str(self.cache))
        self.monkeypatch.setenv("AZURE_SPEECH_ENDPOINT", self.emulator.url)
        self.monkeypatch.setenv("AZURE_SPEECH_KEY", "k")
        return run_cli(*args)

    def requests(self) -> int:
        return len(read_request_log(self.emulator.data_dir))

    def paid_creates(self) -> int:
        return sum(1 for r in read_request_log(self.emulator.data_dir) if r.created)

    def plan(self) -> dict[str, Any]:
        return plan_json_of(self.cli("plan", str(self.manifest), "--json"))

    def kinds(self) -> dict[str, tuple[str, bool]]:
        return planned_of(self.plan())

    def apply(self, *args: str) -> int:
        """apply, checking that it pays exactly what the plan made just before said;
        the number of paid creates."""
        promised = self.plan()["summary"]["paid"]
        before = self.paid_creates()
        result = self.cli("apply", str(self.manifest), "--yes", *args)
        assert result.code == 0, result
        paid = self.paid_creates() - before
        assert paid == promised, (paid, promised, result)
        return paid

    def edit(self, rel: str, old: str, new: str) -> None:
        path = self.manifest.parent / rel
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new, 1))

    def videos(self) -> dict[str, str]:
        folder = self.manifest.parent / "build" / "videos"
        return {p.name: sha256_file(p) for p in sorted(folder.glob("*.mp4"))}


@pytest.fixture
def speech(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """The Speech service the checkouts' Azure target talks to (an emulator of its own,
    not the fast drafts' settings)."""
    monkeypatch.delenv("AVATARFLOW_EMULATOR_CONFIG", raising=False)
    with Emulator(tmp_path / "service", EmulatorConfig(width=160, height=90)) as emulator:
        yield emulator


def test_rename_revert_and_a_second_clone_pay_what_plan_said_on_a_remote_state(
    tmp_path: Path,
    azurite: Azurite,
    container_url: str,
    speech: Emulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    videos = f"{azurite.blob_url}/{azurite.new_container('videos')}"
    service = (
        f"  state: {{backend: azureblob, container_url: '{container_url}', name: team.json}}\n"
        f"  store: {{container_url: '{videos}'}}"
    )
    alice = Checkout(
        example_course(tmp_path / "alice", service), tmp_path / "a", speech, monkeypatch
    )
    assert alice.apply() == 6  # the first apply: six paid creates, as planned
    assert committed_files(alice.manifest) == []  # the records are the blob's
    assert len(render_blobs(azurite, container_url)) == 6

    # Rename an id: the render is reused for free, the old output removed.
    alice.edit("git-course.yaml", "id: 05-recap", "id: 05-summary")
    kinds = alice.kinds()
    assert kinds["05-summary"] == ("reuse", False) and kinds["05-recap"] == ("forget", False)
    blobs = render_blobs(azurite, container_url)
    assert alice.apply() == 0
    assert render_blobs(azurite, container_url) == blobs  # nothing paid: no blob written
    build = alice.manifest.parent / "build" / "videos"
    assert not (build / "05-recap.mp4").exists() and (build / "05-summary.mp4").is_file()

    # Edit a slide (one paid render), then revert it: the earlier render, for free.
    original = (alice.manifest.parent / "scripts" / "02-commits.txt").read_text()
    alice.edit("scripts/02-commits.txt", ".", "!")
    assert alice.apply() == 1
    (alice.manifest.parent / "scripts" / "02-commits.txt").write_text(original)
    assert alice.kinds()["02-commits"] == ("reuse", False)
    assert alice.apply() == 0
    plan = alice.cli("plan", str(alice.manifest), "--detailed-exitcode")
    assert (plan.code, plan.out) == (0, "No changes. Every video is up to date.\n")

    # A second clone of the same remote state, on a machine of its own: every video
    # comes from the team store for free, then "No changes" with no request at all.
    bob = Checkout(example_course(tmp_path / "bob", service), tmp_path / "b", speech, monkeypatch)
    bob.edit("git-course.yaml", "id: 05-recap", "id: 05-summary")
    requests = bob.requests()
    planned = bob.plan()
    assert planned["summary"]["paid"] == 0
    assert {(a["action"], a["source"]) for a in planned["actions"]} == {("download", "team store")}
    assert bob.cli("pull", str(bob.manifest)).code == 0
    assert bob.videos() == alice.videos()
    plan = bob.cli("plan", str(bob.manifest), "--detailed-exitcode")
    assert (plan.code, plan.out) == (0, "No changes. Every video is up to date.\n")
    assert bob.apply() == 0
    assert bob.requests() == requests  # not one Speech request
    assert committed_files(bob.manifest) == []

    # A saved plan on the remote state: applied exactly, paying what it listed.
    bob.edit("scripts/03-branches.txt", ".", "; Bob says.")
    saved = tmp_path / "change.plan.json"
    assert bob.cli("plan", str(bob.manifest), "-o", str(saved)).code == 0
    listed = json.loads(saved.read_text())["plan"]["summary"]["paid"]
    before = bob.paid_creates()
    assert bob.cli("apply", str(saved)).code == 0
    assert bob.paid_creates() - before == listed == 1
    # Alice sees Bob's render in the team's state: her apply of his edit pays nothing.
    alice.edit("scripts/03-branches.txt", ".", "; Bob says.")
    assert alice.kinds()["03-branches"] == ("reuse", False)
    assert alice.apply() == 0


def test_a_checkout_reads_each_record_once_and_again_only_when_its_etag_changes(
    manifest: Path, azurite: Azurite, container_url: str
) -> None:
    from azure.storage.blob import ContainerClient

    record_all(manifest)
    state_dir = open_course(manifest).workspace.state_dir
    gets: list[str] = []

    def load() -> AzureBlobStore:
        store = AzureBlobStore(container_url, "team.json", state_dir=state_dir)
        name = container_url.rsplit("/", 1)[1]
        store._container = ContainerClient.from_connection_string(
            azurite.connection_string,
            name,
            raw_request_hook=lambda r: (
                gets.append(r.http_request.url.split("?")[0])
                if r.http_request.method == "GET"
                else None
            ),
        )
        store.load()
        return store

    (state_dir / ".cache" / "remote-renders.json").unlink(missing_ok=True)  # a new checkout
    first = load()
    record_gets = [u for u in gets if "/team.json.renders/" in u]
    assert len(record_gets) == 3 and len(first.renders) == 3
    gets.clear()
    second = load()  # the meta and one listing; every record from the cache
    assert [u for u in gets if "/team.json.renders/" in u] == []
    assert {h: dump(r) for h, r in second.renders.items()} == {
        h: dump(r) for h, r in first.renders.items()
    }

    # Another writer changes one record: its ETag changes, it alone is read again.
    digest = open_course(manifest).request("b").content_hash
    blob = container_of(azurite, container_url).get_blob_client(f"team.json.renders/{digest}.json")
    text = blob.download_blob().readall().decode()
    blob.upload_blob(text.replace('"job_id"', '"duration_ms": 7, "job_id"'), overwrite=True)
    gets.clear()
    third = load()
    assert [u.rsplit("/", 1)[1] for u in gets if "/team.json.renders/" in u] == [f"{digest}.json"]
    assert third.renders[digest].duration_ms == 7


def test_prune_removes_unused_render_blobs_beyond_the_keep_window(
    manifest: Path, azurite: Azurite, container_url: str
) -> None:
    record_all(manifest)
    old = open_course(manifest).request("b").content_hash
    manifest.write_text(manifest.read_text().replace("video b.", "video b, edited."))
    kept = run_cli("prune", str(manifest), "--yes")
    assert (kept.code, kept.out) == (0, "Nothing to prune.\n")
    assert old in render_blobs(azurite, container_url)  # a branch may still need it
    pruned = run_cli("prune", str(manifest), "--yes", "--keep-days", "0")
    assert pruned.code == 0 and "Pruned 1 unused render(s)." in pruned.out, pruned
    project = open_course(manifest)
    assert sorted(render_blobs(azurite, container_url)) == sorted(
        project.request(v).content_hash for v in ("a", "c")
    )
    assert committed_files(manifest) == []


def test_a_fresh_clone_loads_the_remote_state_from_the_index_an_apply_leaves(
    tmp_path: Path,
    container_url: str,
    azurite: Azurite,
    speech: Emulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A new checkout (every CI runner) reads the records from ``team.json.index.json``:
    one GET, not one per record; each entry is trusted only at its listed ETag."""
    from avatarflow.backends import azureblob

    count = azureblob.INDEX_AFTER + 1
    extra = "".join(f"  - id: v{i:02d}\n    text: Video {i}.\n" for i in range(count - 3))
    text = remote_manifest(container_url) + extra
    alice = Checkout(course(tmp_path / "alice", text), tmp_path / "a", speech, monkeypatch)
    assert alice.apply() == count
    blobs = render_blobs(azurite, container_url)
    index = json.loads(blob_text(azurite, container_url, "team.json.index.json"))
    assert sorted(index["records"]) == sorted(blobs)
    assert {h: text for h, (_, text) in index["records"].items()} == blobs

    reads: list[str] = []
    real_read = AzureBlobStore._read_render

    def counted(store: AzureBlobStore, blob_name: str) -> Any:
        reads.append(blob_name)
        return real_read(store, blob_name)

    monkeypatch.setattr(AzureBlobStore, "_read_render", counted)

    def fresh_clone_plan(name: str) -> dict[str, tuple[str, bool]]:
        reads.clear()
        bob = Checkout(course(tmp_path / name, text), tmp_path / name / "c", speech, monkeypatch)
        return bob.kinds()

    index_blob = container_of(azurite, container_url).get_blob_client("team.json.index.json")
    before = index_blob.get_blob_properties().etag
    kinds = fresh_clone_plan("bob")
    assert reads == []  # every record from the index
    assert not any(paid for _, paid in kinds.values()) and len(kinds) == count
    assert index_blob.get_blob_properties().etag == before  # a plan writes no blob

    # One more render: too few to rewrite the index; a new clone reads that record alone.
    alice.edit(alice.manifest.name, "Video 0.", "Video zero.")
    assert alice.apply() == 1
    assert index_blob.get_blob_properties().etag == before
    kinds = fresh_clone_plan("carol")
    changed = open_course(alice.manifest).request("v00").content_hash
    assert reads == [f"team.json.renders/{changed}.json"]
    assert not any(paid for _, paid in kinds.values())

    # An index that is junk, or whose entries name other ETags, costs GETs, never a record.
    stale = {h: ["0x8D0000000000000", t] for h, (_, t) in index["records"].items()}
    for junk in (b"{not json", json.dumps({"format": 1, "records": stale}).encode()):
        index_blob.upload_blob(junk, overwrite=True)
        kinds = fresh_clone_plan(f"dave{len(junk)}")
        assert len(reads) == count + 1  # the listing's records, the old render of v00 too
        assert not any(paid for _, paid in kinds.values())


def test_the_listing_read_from_the_xml_is_the_sdk_s_own_over_several_pages(
    azurite: Azurite, container_url: str
) -> None:
    from avatarflow.backends.azureblob import _etag
    from avatarflow.bloblisting import _raw_lister, listed, listed_by_sdk

    container = container_of(azurite, container_url)
    prefix = "team.json.renders/"
    names = [f"{prefix}{i:064x}.json" for i in range(7)] + [f"{prefix}a name & é <x>.json"]
    for name in [*names, "team.json", "team.json.rendersX.json"]:
        container.upload_blob(name, name.encode() * 3)
    _raw_lister(container)  # the fast road is open with this SDK: no fallback below
    fast = list(listed(container, prefix, page_size=3))
    assert fast == list(listed_by_sdk(container, prefix, page_size=3))
    assert sorted(name for name, _, _ in fast) == sorted(names)
    assert all(size == 3 * len(name.encode()) for name, size, _ in fast)
    read = container.get_blob_client(names[0]).download_blob().properties.etag
    assert _etag(fast[0][2]) == _etag(read)  # a listed ETag compares equal to a read one
    assert list(listed(container, "nothing/")) == []

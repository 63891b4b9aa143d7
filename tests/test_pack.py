"""Packing: many videos in one multi-input job, written by the service into our container.

Everything runs for real: the CLI and the runner against the embedded emulator, which
writes its outputs into an Azurite container with Blob API requests; the proof comes from
the emulator's request log, the blobs in Azurite and the files and records on disk.

The suite packs 120 videos rather than 1,000: each input is a real ffmpeg render (about
35 ms at the tiny draft size used here, more on a busy machine), so 1,000 would add half
a minute or more to the suite. ``benchmarks/pack.py`` renders the full 1,000, packed and
unpacked, and prints the creates and wall time of both.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from avatarflow.destination import Destination
from avatarflow.emulator import Emulator, EmulatorConfig
from avatarflow.emulator.requestlog import read_request_log
from avatarflow.packing import Member, Pack, group, pack_job_id
from avatarflow.payload import MAX_BODY_BYTES, canonical_json

from .azurite import Azurite
from .emulator_fixtures import Api, ga_body
from .helpers import (
    DEST_PATH,
    TEMPLATE,
    apply,
    assert_downloaded_and_intact,
    container_blobs,
    creates,
    data_dir,
    make_tree,
    open_course,
    packed_course,
    records,
    run_cli,
    run_killed,
    state_text,
)

pytest_plugins = ["tests.azurite"]


def test_120_changed_videos_take_one_create_and_3_edits_take_one_more(
    tmp_path: Path, container: tuple[str, str]
) -> None:
    url, sas = container
    manifest = packed_course(tmp_path, url, 120)

    code, _, err = apply(manifest)

    assert code == 0, err
    first = creates(manifest)
    assert len(first) == 1 and first[0].startswith("demo-pack-")
    assert_downloaded_and_intact(manifest)
    state = records(manifest)
    assert sorted(r.pack_index for r in state.values()) == list(range(1, 121))
    assert {r.remote_id for r in state.values()} == {first[0]}
    # The service wrote input N to {destinationPath}/{job id}/000N.mp4 in our container,
    # and each file on disk is the blob of its own video.
    blobs = container_blobs(url, sas)
    folder = f"{DEST_PATH}/drafts/{first[0]}"
    assert f"{folder}/summary.json" in blobs
    assert f"{folder}/0120.mp4" in blobs
    v7 = state["v0007"]
    assert blobs[f"{folder}/{v7.pack_index:04d}.mp4"] == v7.output.size
    # No SAS anywhere in the state or the output.
    text = state_text(manifest)
    assert sas not in text and "sig=" not in text
    assert "sig=" not in err and sas not in err
    before = {vid: r.serial for vid, r in state.items()}

    # Edit 3 narrations: only those 3 are rendered again, together, in one more create.
    text = manifest.read_text()
    for i in (5, 50, 99):
        text = text.replace(f"text: Hi {i}.\n", f"text: Hello again {i}.\n")
    manifest.write_text(text)
    plan = run_cli("plan", str(manifest), "--emulator")
    assert "Plan: 0 to create, 3 to re-render" in plan.out, plan.out
    assert "Estimated render: 3 video(s) in 1 packed job(s)" in plan.out

    code, _, err = apply(manifest)

    assert code == 0, err
    second = creates(manifest)[1:]
    assert len(second) == 1 and second[0] != first[0]
    assert_downloaded_and_intact(manifest)
    state = records(manifest)
    changed = {vid for vid, r in state.items() if r.serial != before[vid]}
    assert changed == {"v0005", "v0050", "v0099"}
    assert sorted(state[v].pack_index for v in changed) == [1, 2, 3]
    assert {state[v].remote_id for v in changed} == {second[0]}


def test_a_new_sas_renders_nothing_again(
    tmp_path: Path, container: tuple[str, str], azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = container
    manifest = packed_course(tmp_path, url, 2)
    assert apply(manifest)[0] == 0
    container_name = urlsplit(url).path.rsplit("/", 1)[-1]
    rotated = azurite.container_sas_url(container_name, hours=5).partition("?")[2]
    monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", rotated)

    code, out, err = apply(manifest)

    assert code == 0, err
    assert "No changes" in out
    assert len(creates(manifest)) == 1
    # The two videos share one job: status asks the service about it once.
    gets = len([r for r in read_request_log(data_dir(manifest)) if r.kind == "get"])
    result = run_cli("status", str(manifest), "--emulator", "--refresh", "--json")
    assert [row["remote"] for row in json.loads(result.out)] == ["Succeeded", "Succeeded"]
    assert len([r for r in read_request_log(data_dir(manifest)) if r.kind == "get"]) == gets + 1


def test_a_sas_is_signed_from_a_connection_string_when_no_token_is_set(
    tmp_path: Path, container: tuple[str, str], azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = container
    monkeypatch.delenv("AZURE_STORAGE_SAS_TOKEN")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    manifest = packed_course(tmp_path, url, 2)

    code, _, err = apply(manifest)

    assert code == 0, err
    assert len(creates(manifest)) == 1
    assert_downloaded_and_intact(manifest)
    assert "AccountKey" not in err and "sig=" not in state_text(manifest)


def test_packs_are_split_by_settings_and_by_the_input_limit(
    tmp_path: Path, container: tuple[str, str]
) -> None:
    url, _ = container
    manifest = packed_course(tmp_path, url, 7, service="  pack_max_inputs: 3\n")
    text = manifest.read_text().replace(
        "  - id: v0007\n", "  - id: v0007\n    avatar: {style: casual-sitting}\n"
    )
    manifest.write_text(text)

    code, _, err = apply(manifest)

    assert code == 0, err
    # Six videos with the same settings in packs of at most 3, and one on its own.
    assert len(creates(manifest)) == 3
    sizes = sorted(
        [r.remote_id for r in records(manifest).values()].count(job) for job in creates(manifest)
    )
    assert sizes == [1, 3, 3]
    assert_downloaded_and_intact(manifest)


def test_the_pack_id_follows_its_members_and_their_attempts() -> None:
    one = pack_job_id("demo", [("b" * 64, 0), ("a" * 64, 0)])
    assert one == pack_job_id("demo", [("a" * 64, 0), ("b" * 64, 0)])
    assert one != pack_job_id("demo", [("a" * 64, 0), ("b" * 64, 1)])
    assert one.startswith("demo-pack-") and len(one) == len("demo-pack-") + 12


def test_a_pack_stays_under_the_500_kb_body_limit(tmp_path: Path) -> None:
    words = " ".join(["narration"] * 4000)  # about 40 KB of text per video
    manifest = make_tree(
        tmp_path,
        {
            "course.yaml": "version: 1\nname: demo\ndefaults:\n  template: narration.ssml.j2\n"
            "  voice: en-US-AvaMultilingualNeural\n"
            "  avatar: {character: lisa, style: graceful-sitting}\n"
            "  vars: {title: Hi}\nvideos:\n"
            + "".join(f"  - id: v{i}\n    text: {words} {i}\n" for i in range(30)),
            "templates/narration.ssml.j2": TEMPLATE,
        },
    )
    requests = open_course(manifest / "course.yaml").requests
    packs = group(requests)
    assert [len(p) for p in packs] == [12, 12, 6]
    destination = Destination(
        "https://acct.blob.core.windows.net/videos", "a/b", "sig=" + "s" * 300
    )
    for chunk in packs:
        pack = Pack("demo-pack-0", tuple(Member(r, 0, i) for i, r in enumerate(chunk, 1)))
        assert len(canonical_json(pack.body(destination)).encode()) <= MAX_BODY_BYTES
    one_more = Pack("x", tuple(Member(r, 0, i) for i, r in enumerate(requests[:13], 1)))
    assert len(canonical_json(one_more.body(destination)).encode()) > MAX_BODY_BYTES


def test_prune_remote_keeps_a_packed_job_that_other_videos_still_use(
    tmp_path: Path, container: tuple[str, str]
) -> None:
    url, _ = container
    manifest = packed_course(tmp_path, url, 3)
    assert apply(manifest)[0] == 0
    manifest.write_text(manifest.read_text().replace("  - id: v0003\n    text: Hi 3.\n", ""))

    result = run_cli("prune", str(manifest), "--emulator", "--remote", "--yes")

    assert result.code == 0, result.err
    assert sorted(records(manifest)) == ["v0001", "v0002"]
    assert not [r for r in read_request_log(data_dir(manifest)) if r.kind == "delete"]


# -- crash safety ---------------------------------------------------------------------------


@pytest.mark.parametrize("kill_at", ["before-create", "after-create", "mid-download:2"])
def test_kill_during_a_packed_apply_then_apply_pays_nothing_twice(
    tmp_path: Path, container: tuple[str, str], kill_at: str
) -> None:
    url, _ = container
    manifest = packed_course(tmp_path, url, 4)
    run_killed(manifest, kill_at)
    # Every member was recorded in its pack before the create left.
    killed = records(manifest)
    assert len(killed) == 4 and all(r.pack_index for r in killed.values())
    assert len({r.remote_id for r in killed.values()}) == 1

    code, _, err = apply(manifest)

    assert code == 0, err
    made = creates(manifest)
    assert made == [next(iter(killed.values())).remote_id]  # one create, under the same id
    if kill_at == "after-create":
        assert "adopted existing job" in err
    assert_downloaded_and_intact(manifest)


# -- bad input ---------------------------------------------------------------------------


def test_a_sas_in_the_manifest_is_refused_without_being_shown(tmp_path: Path) -> None:
    manifest = packed_course(
        tmp_path, "https://acct.blob.core.windows.net/videos?sv=2022&sig=SECRETSIG", 1
    )
    result = run_cli("validate", str(manifest))
    assert result.code == 1
    assert "course.yaml:11: service.destination_container_url" in result.err
    assert "without a query string" in result.err
    assert "SECRETSIG" not in result.err + result.out
    assert "Traceback" not in result.err


def test_pack_without_a_sas_in_the_environment_stops_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AZURE_STORAGE_SAS_TOKEN", raising=False)
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    manifest = packed_course(tmp_path, "https://acct.blob.core.windows.net/videos", 2)
    code, _, err = apply(manifest)
    assert code == 1
    assert "AZURE_STORAGE_SAS_TOKEN" in err
    assert not (tmp_path / ".avatarflow" / "demo" / "emulator" / "videos").exists()


# -- the emulator side -----------------------------------------------------------------------


def test_emulator_writes_a_multi_input_job_into_the_destination_container(
    tmp_path: Path, azurite: Azurite
) -> None:
    container = azurite.new_container("emu")
    sas_url = azurite.container_sas_url(container)
    body = ga_body(
        inputs=[{"content": "First video."}, {"content": "Second video, longer."}],
        properties={"destinationContainerUrl": sas_url, "destinationPath": "runs/7"},
    )
    with Emulator(tmp_path / "emu", EmulatorConfig(width=32, height=18, speech=False)) as emu:
        api = Api(emu)
        assert api.put("multi-01", body).status_code == 201
        job = api.wait("multi-01")
        api.close()
    assert job["status"] == "Succeeded", job
    assert job["outputs"] == {
        "result": "runs/7/multi-01/0001.mp4",
        "summary": "runs/7/multi-01/summary.json",
    }
    assert job["properties"]["succeededCount"] == 2
    assert "destinationContainerUrl" not in json.dumps(job)
    url, _, sas = sas_url.partition("?")
    blobs = container_blobs(url, sas)
    assert sorted(blobs) == [
        "runs/7/multi-01/0001.mp4",
        "runs/7/multi-01/0002.mp4",
        "runs/7/multi-01/summary.json",
    ]
    summary = httpx.get(f"{url}/runs/7/multi-01/summary.json?{sas}").json()
    assert [r["videoFileName"] for r in summary["results"]] == [
        "runs/7/multi-01/0001.mp4",
        "runs/7/multi-01/0002.mp4",
    ]
    # The SAS was only needed until delivery; the emulator's files keep no trace of it.
    leftovers = [p for p in (tmp_path / "emu").rglob("*") if p.is_file()]
    assert not any(sas in p.read_text(errors="ignore") for p in leftovers)


def test_emulator_fails_a_job_whose_container_refuses_the_upload(
    tmp_path: Path, azurite: Azurite
) -> None:
    # A container that does not exist: the Blob API answers 404 ContainerNotFound.
    sas_url = azurite.container_sas_url("missing-container")
    body = ga_body(properties={"destinationContainerUrl": sas_url})
    with Emulator(tmp_path / "emu", EmulatorConfig(width=32, height=18, speech=False)) as emu:
        api = Api(emu)
        api.put("lost-01", body)
        job = api.wait("lost-01")
        api.close()
    assert job["status"] == "Failed"
    assert job["properties"]["error"]["code"] == "InvalidDestination"
    assert "sig=" not in json.dumps(job)

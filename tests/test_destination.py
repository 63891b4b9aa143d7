"""A destination container outside packing: ``service.destination_container_url`` alone.

Each video is its own job, written by the service into the customer's container under
``{destination_path}/{job id}/0001.mp4`` and downloaded from there, as packed videos are.
The container is named once in the service section; its SAS comes from the environment
and is no part of any video's identity. Runs for real against the emulator and Azurite.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .azurite import Azurite
from .helpers import (
    DEST_PATH,
    apply,
    assert_downloaded_and_intact,
    container_blobs,
    creates,
    open_course,
    packed_course,
    records,
    run_cli,
    run_killed,
    state_text,
)

pytest_plugins = ["tests.azurite"]


def unpacked_course(
    root: Path, container_url: str, count: int, *, service: str = "", text: str = "Hi {i}."
) -> Path:
    manifest = packed_course(root, container_url, count, service=service, text=text)
    manifest.write_text(manifest.read_text().replace("  pack: true\n", ""))
    return manifest


def test_every_video_is_written_to_the_container_and_downloaded_from_it(
    tmp_path: Path, container: tuple[str, str]
) -> None:
    url, sas = container
    manifest = unpacked_course(tmp_path, url, 3)

    code, out, err = apply(manifest)

    assert code == 0, err
    made = creates(manifest)
    assert len(made) == 3 and not any("-pack-" in job for job in made)
    assert_downloaded_and_intact(manifest, packed=False)
    blobs = container_blobs(url, sas)
    state = records(manifest)
    for record in state.values():
        # The emulator target writes drafts under {destination_path}/drafts/.
        blob = f"{DEST_PATH}/drafts/{record.remote_id}/0001.mp4"
        assert record.output is not None and blobs[blob] == record.output.size
    assert sorted(made) == sorted(r.remote_id for r in state.values())
    text = state_text(manifest) + out + err
    assert sas not in text and "sig=" not in text


def test_rotating_the_sas_plans_nothing(
    tmp_path: Path,
    container: tuple[str, str],
    azurite: Azurite,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, sas = container
    manifest = unpacked_course(tmp_path, url, 1)
    code, _, err = apply(manifest)
    assert code == 0, err

    container_name = url.rstrip("/").rsplit("/", 1)[-1]
    rotated = azurite.container_sas_url(container_name, hours=5).partition("?")[2]
    assert rotated != sas
    monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", rotated)
    plan = run_cli("plan", str(manifest), "--emulator")

    assert plan.code == 0, plan.err
    assert "No changes" in plan.out, plan.out
    code, _, err = apply(manifest)
    assert code == 0, err
    assert len(creates(manifest)) == 1


def test_without_a_sas_nothing_is_sent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_STORAGE_SAS_TOKEN", raising=False)
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    manifest = unpacked_course(tmp_path, "https://acct.blob.core.windows.net/videos", 1)
    code, _, err = apply(manifest)
    assert code == 1
    assert "service.destination_container_url needs a SAS" in err
    assert "Traceback" not in err
    assert creates(manifest) == []
    assert not open_course(manifest, "emulator").load_state().records


@pytest.mark.parametrize("key", ["destination_container_url", "destination_path"])
def test_a_destination_of_its_own_video_is_a_located_error(tmp_path: Path, key: str) -> None:
    manifest = unpacked_course(tmp_path, "https://acct.blob.core.windows.net/videos", 2)
    manifest.write_text(
        manifest.read_text().replace(
            "  - id: v0002\n", f"  - id: v0002\n    {key}: https://x.example/c?sig=SECRETSIG\n"
        )
    )
    result = run_cli("validate", str(manifest))
    assert result.code == 1
    assert f"course.yaml:16: videos[1].{key}: unknown key" in result.err
    assert f"set service.{key} instead" in result.err
    assert "SECRETSIG" not in result.err + result.out
    assert "Traceback" not in result.err


@pytest.mark.parametrize(
    ("pack", "refusal"),
    [(True, "pack: true needs the GA API"), (False, "destination_container_url needs the GA API")],
)
def test_a_destination_on_the_preview_api_is_refused(
    tmp_path: Path, pack: bool, refusal: str
) -> None:
    write = packed_course if pack else unpacked_course
    service = "  api_version: 3.1-preview1\n"
    manifest = write(tmp_path, "https://acct.blob.core.windows.net/videos", 1, service=service)
    result = run_cli("validate", str(manifest))
    assert result.code == 1
    assert f"course.yaml:9: service: {refusal}" in result.err


@pytest.mark.parametrize("kill_at", ["after-create", "mid-download:1"])
def test_kill_during_an_apply_with_a_destination_then_apply_pays_nothing_twice(
    tmp_path: Path, container: tuple[str, str], kill_at: str
) -> None:
    url, sas = container
    manifest = unpacked_course(tmp_path, url, 2)
    run_killed(manifest, kill_at)
    paid = creates(manifest)
    assert paid

    code, _, err = apply(manifest)

    assert code == 0, err
    made = creates(manifest)
    assert len(made) == 2 and made[: len(paid)] == paid  # nothing paid for twice
    if kill_at == "after-create":
        assert "adopted existing job" in err
    assert_downloaded_and_intact(manifest, packed=False)
    assert sas not in state_text(manifest) + err


def test_a_body_keeps_room_for_the_destination_it_is_sent_with(tmp_path: Path) -> None:
    # ~496 KB of narration: under 500 KB alone, over once 8 KB are kept for the
    # container URL and SAS that are added when the job is sent.
    words = "word " * (496 * 1024 // 5)
    alone = unpacked_course(tmp_path / "alone", "http://127.0.0.1:1/box", 1, text=words)
    service = "service:\n  destination_container_url: http://127.0.0.1:1/box\n"
    service += f"  destination_path: {DEST_PATH}\n"
    assert service in alone.read_text()
    alone.write_text(alone.read_text().replace(service, ""))
    assert run_cli("validate", str(alone)).code == 0

    sent = unpacked_course(tmp_path / "sent", "http://127.0.0.1:1/box", 1, text=words)
    result = run_cli("validate", str(sent))
    assert result.code == 1
    assert "the service accepts at most 500 KB" in result.err
    assert "8 KB are kept for the destination container" in result.err

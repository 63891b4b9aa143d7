"""Secrets: a full run, failing requests included, leaves no key and no SAS signature.

The service is a separately started emulator that requires one distinctive key, reached
through ``AZURE_SPEECH_ENDPOINT``/``AZURE_SPEECH_KEY`` like Azure itself. Faults make
requests fail (429, 5xx, drops, lost creates, truncated downloads), one job fails with a
service message that quotes a signed URL and the key, a later run meets only expired
result URLs (403) and a last one uses a wrong key (401). Then stdout (``--json``),
stderr, every log record and every file under the course folder (state, outputs) are
searched for the keys and for any signature value.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from avatarflow import planmemo
from avatarflow.emulator import Emulator, EmulatorConfig, Faults

from .helpers import MANIFEST, course, record_all, render_file, run_cli

KEY = "AFKEY-7d1e0c5b9a3f4e2d8c6b0a1f2e3d4c5b"
WRONG_KEY = "AFWRONG-0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d"
LEAKED_SIG = "LEAKEDsig0123456789abcdefXYZ"
# Any signature value that is not the redaction mark.
SIGNATURE = re.compile(r"(?i)\bsig(?:nature)?=(?!\*\*\*)[^&\s\"'<>\\]+")
FAULTS = (
    "throttle=2,retry_after=0,error=2,drop=1@create/get/list/download,lose_create=1,"
    "truncate=1,"
    f"fail=*-c-*:InvalidSsml:see https://acct.blob.core.windows.net/c/x.mp4?sv=2024&"
    f"se=2030&sig={LEAKED_SIG} (key {KEY})"
)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Emulator]:
    config = EmulatorConfig(width=16, height=16, key=KEY, faults=Faults.parse(FAULTS))
    with Emulator(tmp_path / "service", config) as emulator:
        yield emulator


def use_service(monkeypatch: pytest.MonkeyPatch, emulator: Emulator, key: str) -> None:
    monkeypatch.setenv("AZURE_SPEECH_ENDPOINT", emulator.url)
    monkeypatch.setenv("AZURE_SPEECH_KEY", key)
    monkeypatch.delenv("AZURE_SPEECH_REGION", raising=False)


def leaks(text: str) -> list[str]:
    found = [secret for secret in (KEY, WRONG_KEY, LEAKED_SIG) if secret in text]
    return found + SIGNATURE.findall(text)


def test_no_key_or_signature_in_output_logs_state_or_files(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    service: Emulator,
) -> None:
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.DEBUG)
    manifest = course(tmp_path / "course")
    use_service(monkeypatch, service, KEY)

    runs = [run_cli("apply", str(manifest), "--yes", "--json")]
    assert runs[0].code == 3, runs[0].err  # video c failed, a and b were delivered
    failed = render_file(manifest, "c").read_text()
    assert "InvalidSsml" in failed and "blob.core.windows.net" in failed
    runs.append(run_cli("status", str(manifest), "--refresh", "--json"))
    # Every result URL now comes stale: b's download and c's re-render end in 403s.
    service.faults = Faults.parse("expire_urls=1000")
    (tmp_path / "course/build/videos/b.mp4").unlink()
    runs.append(run_cli("apply", str(manifest), "--yes"))  # human output this time
    assert runs[-1].code == 3 and "result URL has expired" in runs[-1].err, runs[-1].err
    use_service(monkeypatch, service, WRONG_KEY)
    runs.append(run_cli("apply", str(manifest), "--yes", "--replace", "a"))
    assert runs[-1].code == 1 and "AZURE_SPEECH_KEY" in runs[-1].err, runs[-1].err

    # The run really met the secrets it must hide.
    log = service.request_log()
    assert any(r.status == 401 for r in log)
    assert any(r.kind == "download" and r.status == 403 for r in log)
    assert any(r.fault == "truncate" for r in log) and any(r.fault == "error" for r in log)

    assert leaks(failed) == []
    for number, run in enumerate(runs):
        assert leaks(run.out) == [], f"run {number} stdout"
        assert leaks(run.err) == [], f"run {number} stderr"
    assert leaks(caplog.text) == []
    assert [r for r in caplog.records if leaks(r.getMessage())] == []
    files = [p for p in tmp_path.rglob("*") if p.is_file() and "service" not in p.parts]
    assert any(p.suffix == ".mp4" for p in files)
    for path in files:
        data = path.read_bytes()
        assert KEY.encode() not in data and WRONG_KEY.encode() not in data, path
        assert leaks(data.decode("utf-8", "replace")) == [], path


def test_a_destination_container_sas_stays_out_of_state_and_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", f"sv=2024-05-04&sp=rw&sig={LEAKED_SIG}")
    container = "https://acct.blob.core.windows.net/videos"
    manifest = course(
        tmp_path / "course",
        MANIFEST.replace(
            "videos:\n", f"service:\n  destination_container_url: {container}\nvideos:\n"
        ),
    )
    record_all(manifest)  # state written as apply writes it
    monkeypatch.setattr(planmemo, "RACY_NS", 0)  # the state just written is trusted at once
    runs = [run_cli("plan", str(manifest), "--json"), run_cli("status", str(manifest), "--json")]
    assert all(run.code == 0 for run in runs), runs

    state = "".join(p.read_text() for p in (tmp_path / "course/.avatarflow").rglob("*.json"))
    assert state and "destinationContainerUrl" not in state  # added on create only
    assert leaks(state) == [] and "sv=2024" not in state
    assert [leaks(run.out + run.err) for run in runs] == [[], []]
    # Every file of the user's cache: the plan memo, the request cache and its journal
    # (marshal: read as bytes), whatever their format.
    cached = {
        p.suffix: p.read_bytes().decode("latin-1")
        for p in Path(os.environ["AVATARFLOW_CACHE_DIR"]).rglob("*")
        if p.is_file()
    }
    assert ".memo" in cached, "the plan found no changes: it leaves a memo"
    assert ".rows" in cached  # and the request cache
    assert [s for s, text in cached.items() if leaks(text) or "sv=2024" in text] == []

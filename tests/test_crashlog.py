"""A crash (a bug, not a failed video) exits 4 and leaves a redacted log with versions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from avatarflow import __version__, crashlog, scaffold
from avatarflow.secrets import register_secret

from .helpers import run_cli

SECRET = "s3cr3t-speech-key-for-the-crash-test"


def test_a_crash_exits_4_with_a_redacted_log_in_the_user_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_secret(SECRET)

    def broken(directory: Path, name: str) -> list[Path]:
        raise RuntimeError(f"a bug that quotes the key {SECRET}")

    monkeypatch.setattr(scaffold, "scaffold", broken)
    result = run_cli("init", str(tmp_path / "course"))

    log = Path(os.environ["AVATARFLOW_CACHE_DIR"]) / "crash.log"
    assert result.code == 4
    assert result.out == ""
    assert result.err.splitlines() == [
        "Internal error: RuntimeError: a bug that quotes the key ***",
        f"Check the log at {log}",
    ]
    text = log.read_text("utf-8")
    assert SECRET not in text and "a bug that quotes the key ***" in text
    assert f"avatarflow: {__version__}" in text and "pydantic: " in text
    assert "Traceback (most recent call last)" in text and "in broken" in text
    assert f"command: avatarflow --color never init {tmp_path / 'course'}" in text
    assert crashlog.log_path() == log


def test_a_crash_log_that_cannot_be_written_is_said_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("AVATARFLOW_CACHE_DIR", str(blocker))

    def broken(directory: Path, name: str) -> list[Path]:
        raise RuntimeError("a bug")

    monkeypatch.setattr(scaffold, "scaffold", broken)
    result = run_cli("init", str(tmp_path / "course"))
    assert result.code == 4
    assert result.err.splitlines() == [
        "Internal error: RuntimeError: a bug",
        "(the crash log could not be written)",
    ]

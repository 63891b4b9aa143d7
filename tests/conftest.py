"""Every test gets its own plan-memo folder: no test sees another's memo, none writes to
the user's cache folder. ``fast_emulator``: draft-sized renders and no faults for the
embedded emulator of the applies a test runs."""

from __future__ import annotations

import pytest

from .helpers import emulate


@pytest.fixture(autouse=True)
def _private_memo_folder(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AVATARFLOW_CACHE_DIR", str(tmp_path_factory.mktemp("memo")))


@pytest.fixture
def fast_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    emulate(monkeypatch)

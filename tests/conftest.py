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


# The modules whose tests run longest (tens of seconds each: soaks, team and remote-state
# scenarios) go first, so that the workers of ``pytest -n 2`` finish together instead of
# one running a long test alone at the end. The order of the others is kept.
LONG_FIRST = (
    "test_soak.py",
    "test_pack.py",
    "test_team.py",
    "test_remote_state.py",
    "test_concurrency.py",
    "test_plan_markdown.py",
    "test_incremental.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONG_FIRST.index(name) if name in LONG_FIRST else len(LONG_FIRST)

    items.sort(key=rank)  # stable: within a module, and among the rest, as collected

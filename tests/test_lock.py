"""The state lock on platforms without ``fcntl`` (Windows): the package still imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from avatarflow.errors import LockError
from avatarflow.lock import StateLock

# Run first in a fresh interpreter: ``None`` in sys.modules makes ``import fcntl`` fail
# as it does on Windows (and ``msvcrt`` is absent here, as it is on macOS and Linux).
WITHOUT_FCNTL = "import sys; sys.modules['fcntl'] = None; sys.modules['msvcrt'] = None\n"


def run_without_fcntl(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_FCNTL + code],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )


def test_the_package_imports_without_fcntl(tmp_path: Path) -> None:
    done = run_without_fcntl(
        "import avatarflow.lock, avatarflow.cli, avatarflow.emulator.runtime\n"
        "from avatarflow import oslock\n"
        "assert oslock.fcntl is None and oslock.msvcrt is None\n"
        "print('imported')\n",
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "imported"


def test_locking_without_any_os_lock_is_a_clear_error(tmp_path: Path) -> None:
    done = run_without_fcntl(
        "from pathlib import Path\n"
        "from avatarflow.errors import LockError\n"
        "from avatarflow.lock import StateLock\n"
        "try:\n"
        "    StateLock(Path('state'), 'test').acquire()\n"
        "except LockError as exc:\n"
        "    print(exc)\n",
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "cannot lock the state: file locking is not available on this platform"
    )


def test_a_second_lock_is_refused_while_the_first_is_held(tmp_path: Path) -> None:
    with StateLock(tmp_path, "first") as first:
        assert first.info is not None
        with pytest.raises(LockError, match=f"lock {first.info.id} held by pid"):
            StateLock(tmp_path, "second").acquire()
    with StateLock(tmp_path, "third") as third:  # released: free again
        assert third.info is not None

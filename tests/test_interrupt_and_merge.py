"""Ctrl-C in the middle of an apply, and state that merges cleanly in git."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from avatarflow.emulator.requestlog import create_counts

from .helpers import (
    VIDEOS,
    apply,
    assert_all_rendered,
    data_dir,
    example,
    git,
    open_course,
    render_file,
)

pytestmark = pytest.mark.usefixtures("fast_emulator")


# ``python -m avatarflow`` with Ctrl-C as a terminal delivers it: a shell that starts the
# suite in the background (``cmd &``) leaves SIGINT ignored, and Python then keeps it so.
CTRL_C_AS_AT_A_TERMINAL = (
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('avatarflow', run_name='__main__', alter_sys=True)"
)


def start_apply(
    manifest: Path, config: dict[str, object]
) -> tuple[subprocess.Popen[str], list[str]]:
    env = dict(os.environ, AVATARFLOW_EMULATOR_CONFIG=json.dumps(config), NO_COLOR="1")
    env.pop("AVATARFLOW_EMULATOR_FAULTS", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CTRL_C_AS_AT_A_TERMINAL,
            "apply",
            str(manifest),
            "--emulator",
            "--yes",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: list[str] = []
    assert proc.stderr is not None
    stream = proc.stderr
    threading.Thread(target=lambda: lines.extend(stream), daemon=True).start()
    return proc, lines


def wait_for(lines: list[str], needle: str, count: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while sum(needle in line for line in lines) < count:
        assert proc.poll() is None, "".join(lines)
        assert time.monotonic() < deadline, "".join(lines)
        time.sleep(0.05)


def test_ctrl_c_leaves_valid_state_and_the_next_apply_pays_nothing_twice(tmp_path: Path) -> None:
    manifest = example(tmp_path)
    proc, lines = start_apply(manifest, {"width": 160, "height": 90, "queue_seconds": 30})
    wait_for(lines, "submitted as", 3, proc)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130, "".join(lines)

    state = open_course(manifest, "emulator").load_state()
    assert state.records, "the submitted jobs must be recorded"
    assert {r.status for r in state.records.values()} <= {"submitting", "submitted", "running"}

    code, _, err = apply(manifest)  # a new emulator on the same folder continues the jobs
    assert code == 0, err
    assert_all_rendered(manifest)
    assert sorted(create_counts(data_dir(manifest)).values()) == [1] * len(VIDEOS)


@pytest.mark.parametrize("pair", [("01-welcome", "05-recap"), ("02-commits", "03-branches")])
def test_two_branches_rendering_different_videos_merge_cleanly(
    tmp_path: Path, pair: tuple[str, str]
) -> None:
    manifest = example(tmp_path)
    root = tmp_path
    (root / ".gitignore").write_text(
        "build/\n**/.avatarflow/**/state.lock\n**/.avatarflow/**/cache/\n"
        "**/.avatarflow/*/emulator/service/\n"
    )
    assert apply(manifest)[0] == 0
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-qm", "base")

    for branch, video in zip(("one", "two"), pair, strict=True):
        git(root, "checkout", "-q", "-b", branch, "main")
        assert apply(manifest, "--replace", video, "--only", video)[0] == 0
        git(root, "add", ".")
        git(root, "commit", "-qm", f"re-render {video}")
        changed = git(root, "diff", "--name-only", "main", branch).split()
        record = render_file(manifest, video, "emulator").relative_to(root)
        assert changed == [str(record)]

    git(root, "checkout", "-q", "one")
    git(root, "merge", "-q", "--no-edit", "two")  # fails the test on any conflict
    result = apply(manifest)
    assert result[0] == 0 and "No changes" in result[1]

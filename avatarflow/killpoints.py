"""Named points where a test can have the process killed, to prove crash safety.

``AVATARFLOW_KILL_AT=NAME[:N]`` sends SIGKILL to this process the N-th time (default
first) it passes ``checkpoint(NAME)``. Unset, a checkpoint is one dictionary lookup and
changes nothing. Points: ``before-create``, ``after-create``, ``polling``,
``mid-download``, ``after-download``, ``mid-state-write`` (also before each blob write of
a remote state). ``AVATARFLOW_KILL_SIGNAL=TERM``
sends SIGTERM instead, as a cancelled CI job does.
"""

from __future__ import annotations

import os
import signal

ENV = "AVATARFLOW_KILL_AT"
SIGNAL_ENV = "AVATARFLOW_KILL_SIGNAL"


def _parse(spec: str) -> tuple[str, int]:
    name, _, count = spec.partition(":")
    return name.strip(), int(count) if count.strip() else 1


_target = _parse(os.environ[ENV]) if os.environ.get(ENV) else None
_signal = signal.SIGTERM if os.environ.get(SIGNAL_ENV, "").upper() == "TERM" else signal.SIGKILL
_seen: dict[str, int] = {}


def checkpoint(name: str) -> None:
    if _target is None or _target[0] != name:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] >= _target[1]:
        os.kill(os.getpid(), _signal)

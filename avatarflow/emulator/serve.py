"""``avatarflow emulator``: serve the emulator in the foreground until Ctrl-C."""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType

from avatarflow.emulator.config import EmulatorConfig
from avatarflow.emulator.runtime import Emulator


def serve(
    data_dir: str | os.PathLike[str],
    config: EmulatorConfig,
    host: str = "127.0.0.1",
    port: int = 0,
) -> None:
    """Run an emulator on ``host:port`` (0: any free port), print its URL, block until
    Ctrl-C or SIGTERM, then stop cleanly. The key is never printed."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, on_signal)
    emulator = Emulator(data_dir, config, host=host, port=port).start()
    try:
        auth = "the configured key" if config.key else "any non-empty key or bearer token"
        print(f"avatarflow emulator listening on {emulator.url}", flush=True)
        print(
            f"data: {emulator.data_dir}  auth: {auth}  press Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)

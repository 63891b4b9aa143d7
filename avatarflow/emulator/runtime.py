"""The :class:`Emulator`: one HTTP server, one job store and one render pool on a folder.

``data_dir`` layout::

    emulator.lock        held (flock) while an emulator serves this folder
    signing.key          key of the result URL signatures (0600)
    requests.jsonl       the request log
    jobs/{surface}/{id}.json
    destinations/{surface}/{id}  SAS URL of a job's destination container (0600), until delivered
    blobs/{container}/{folder}/0001.mp4, summary.json, 0001.vtt
    work/                scratch space of running renders
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from typing import IO

from avatarflow import oslock
from avatarflow.emulator.config import EmulatorConfig
from avatarflow.emulator.destinations import DestinationSecrets
from avatarflow.emulator.faults import FaultInjector, Faults
from avatarflow.emulator.jobs import JobStore
from avatarflow.emulator.requestlog import (
    RequestLog,
    RequestRecord,
    create_counts,
    read_request_log,
)
from avatarflow.emulator.server import EmulatorHTTPServer, Services
from avatarflow.emulator.signing import UrlSigner
from avatarflow.emulator.throttle import CreateThrottle
from avatarflow.emulator.worker import Worker
from avatarflow.errors import DataDirBusyError, LockUnsupported


class Emulator:
    """A local Azure-compatible batch avatar service; use as a context manager.

    >>> with Emulator(tmp_path) as emu:        # doctest: +SKIP
    ...     httpx.get(f"{emu.url}/avatar/batchsyntheses?api-version=2024-08-01", ...)
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        config: EmulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.config = config or EmulatorConfig()
        self._address = (host, port)
        self._injector = FaultInjector(self.config.faults)
        self._lock_file: IO[bytes] | None = None
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._worker: Worker | None = None

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> Emulator:
        if self._server is not None:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._acquire_folder()
        try:
            self._start_services()
        except BaseException:
            self._release_folder()
            raise
        return self

    def _start_services(self) -> None:
        shutil.rmtree(self.data_dir / "work", ignore_errors=True)  # scratch of a dead run
        signer = UrlSigner(self.data_dir / "signing.key")
        store = JobStore(self.data_dir / "jobs")
        store.load()
        worker = Worker(
            store,
            self.data_dir / "blobs",
            self.data_dir / "work",
            signer.account_hash,
            lambda: self.config,
            lambda: self._injector.faults,
            DestinationSecrets(self.data_dir / "destinations"),
        )
        services = Services(
            config=self.config,
            store=store,
            worker=worker,
            signer=signer,
            requests=RequestLog(self.data_dir),
            blobs=self.data_dir / "blobs",
            injector=self._injector,
            throttle=CreateThrottle(self.config.creates_per_minute, self.config.time_scale),
        )
        server = EmulatorHTTPServer(self._address, services)
        worker.start()
        self._services, self._server, self._worker = services, server, worker
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="emulator-http",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, cut open connections, kill renders and release the folder.

        Renders cut short leave their jobs ``Running`` without outputs; the next emulator
        on this folder renders them again.
        """
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()  # joins the handler threads
        if self._thread is not None:
            self._thread.join()
        if self._worker is not None:
            self._worker.stop()
        self._release_folder()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _acquire_folder(self) -> None:
        handle = open(self.data_dir / "emulator.lock", "ab")  # noqa: SIM115 - held until stop
        try:
            locked = oslock.try_lock(handle.fileno())
        except LockUnsupported:
            locked = True  # an advisory guard only: without one the emulator still serves
        if not locked:
            handle.close()
            raise DataDirBusyError(
                f"another emulator is serving {self.data_dir}; stop it or use another data folder"
            )
        self._lock_file = handle

    def _release_folder(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()  # closing releases the lock
            self._lock_file = None

    # -- inspection ------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        return self._address[0]

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: use it as the service endpoint."""
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.port}"

    @property
    def faults(self) -> Faults:
        return self._injector.faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        """Replace the fault plan at runtime; counts start again."""
        self._injector = FaultInjector(faults)
        self.config.faults = faults
        if self._server is not None:
            self._services.injector = self._injector
            if self._worker is not None:
                self._worker.wake()

    def request_log(self) -> list[RequestRecord]:
        """Every request logged in this ``data_dir`` (by any process), oldest first."""
        return read_request_log(self.data_dir)

    def create_counts(self) -> dict[str, int]:
        """Creates that made a job, per GA id or preview ``displayName`` (from disk)."""
        return create_counts(self.data_dir)

    def idle(self) -> bool:
        """No render is running or queued."""
        return self._worker is None or not self._worker.busy()

"""The connection to the service: the client factory, the embedded emulator, the destination."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .errors import ConfigError

if TYPE_CHECKING:
    from .client import SpeechClient
    from .destination import Destination
    from .manifest import ServiceSettings
    from .runner import RunOptions
    from .workspace import Workspace

EMULATOR_KEY = "emulator-local-key"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class Service:
    """Opens the client lazily, so a run with nothing to do makes no request at all; the
    draft target starts its embedded emulator on first use and stops it on ``close``."""

    def __init__(self, settings: ServiceSettings, workspace: Workspace) -> None:
        self.settings = settings
        self.workspace = workspace
        self._stack = ExitStack()
        self._endpoint: tuple[str, str | None] | None = None

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def endpoint(self) -> tuple[str, str | None]:
        """(base URL, key) — starting the embedded emulator for the draft target."""
        if self._endpoint is None:
            if self.workspace.is_emulator:
                from .emulator import Emulator, EmulatorConfig

                emulator = Emulator(self.workspace.emulator_data_dir, EmulatorConfig.from_env())
                self._stack.enter_context(emulator)
                self._endpoint = (emulator.url, EMULATOR_KEY)
            else:
                self._endpoint = ("", None)
        return self._endpoint

    @asynccontextmanager
    async def client(self) -> AsyncIterator[SpeechClient]:
        from .client import ServiceConfig, SpeechClient
        from .credentials import KeyCredential

        service = self.settings
        url, key = self.endpoint()
        if url:
            config = ServiceConfig(
                endpoint=url,
                api_version=service.api_version,
                credential=KeyCredential(key or EMULATOR_KEY),
            )
        else:
            config = ServiceConfig.from_env(
                service.api_version, region=service.region, endpoint=service.endpoint
            )
        async with SpeechClient(config) as client:
            yield client

    def options(self, **kw: Any) -> RunOptions:
        """The runner's options, polling briskly when the service is on this machine."""
        from .runner import RunOptions

        if self._is_local():
            return RunOptions(poll_interval=0.2, poll_max_interval=1.0, **kw)
        return RunOptions(**kw)

    def _is_local(self) -> bool:
        """The draft target, or an endpoint on loopback (``avatarflow emulator``)."""
        if self.workspace.is_emulator:
            return True
        from .client import ENV_ENDPOINT

        service = self.settings
        url = service.endpoint or ("" if service.region else os.environ.get(ENV_ENDPOINT, ""))
        return urlsplit(url.strip()).hostname in LOOPBACK_HOSTS

    def destination(self) -> Destination:
        """The container jobs write to, with its SAS from the environment."""
        from .destination import resolve

        service = self.settings
        if not service.destination_container_url:
            raise ConfigError(
                "this state holds videos written to a destination container but the manifest "
                "names no service.destination_container_url to read them from"
            )
        return resolve(
            service.destination_container_url,
            service.destination_path,
            drafts=self.workspace.is_emulator,
        )

    def close(self) -> None:
        self._stack.close()

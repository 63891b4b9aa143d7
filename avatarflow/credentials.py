"""How requests prove who sends them: a resource key, or a Microsoft Entra bearer token.

Every secret is registered with :func:`avatarflow.secrets.register_secret` the moment it
is known, so that :func:`avatarflow.secrets.redact` can keep it out of any message.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from .errors import ConfigError
from .secrets import redact, register_secret

__all__ = [
    "COGNITIVE_SERVICES_SCOPE",
    "BearerTokenCredential",
    "Credential",
    "KeyCredential",
    "entra_credential",
]

COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"

TokenFetch = Callable[[], tuple[str, float]]
"""Returns a token and its expiry as a Unix timestamp; may block (it runs in a thread)."""


class Credential(Protocol):
    """Anything that can produce the authentication headers of one request."""

    async def auth_headers(self) -> Mapping[str, str]: ...


@dataclass(frozen=True)
class KeyCredential:
    """A Speech resource key, sent as ``Ocp-Apim-Subscription-Key``."""

    key: str = field(repr=False)

    def __post_init__(self) -> None:
        if not self.key.strip():
            raise ConfigError("the speech resource key is empty")
        register_secret(self.key)

    async def auth_headers(self) -> Mapping[str, str]:
        return {"Ocp-Apim-Subscription-Key": self.key}


class BearerTokenCredential:
    """Bearer tokens from ``fetch``, fetched again shortly before they expire.

    One token serves every request until ``refresh_margin`` seconds before its expiry,
    so a long apply never sends a token that expires in flight.
    """

    def __init__(
        self,
        fetch: TokenFetch,
        *,
        refresh_margin: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._fetch = fetch
        self._margin = refresh_margin
        self._clock = clock
        self._token: str | None = None
        self._expires_on = 0.0
        self._lock: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(expires_on={self._expires_on})"

    async def auth_headers(self) -> Mapping[str, str]:
        return {"Authorization": f"Bearer {await self.token()}"}

    async def token(self) -> str:
        """A token valid for at least ``refresh_margin`` more seconds."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        # One refresh at a time: parallel requests wait for it instead of each fetching.
        async with self._lock:
            if self._token is None or self._expires_on - self._clock() < self._margin:
                self._token, self._expires_on = await self._refresh()
            return self._token

    async def _refresh(self) -> tuple[str, float]:
        try:
            token, expires_on = await asyncio.to_thread(self._fetch)
        except ConfigError:
            raise
        except Exception as exc:
            # Identity libraries raise many types; all mean "no usable token".
            raise ConfigError(f"could not get a Microsoft Entra token: {redact(str(exc))}") from exc
        register_secret(token)
        return token, float(expires_on)


def entra_credential(scope: str = COGNITIVE_SERVICES_SCOPE) -> BearerTokenCredential:
    """Tokens from azure-identity's ``DefaultAzureCredential`` (installed on demand)."""
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError as exc:
        raise ConfigError(
            "AZURE_SPEECH_KEY is not set and Microsoft Entra sign-in needs azure-identity: "
            "pip install 'avatarflow[entra]' (or set AZURE_SPEECH_KEY)"
        ) from exc
    identity = DefaultAzureCredential()

    def fetch() -> tuple[str, float]:
        access = identity.get_token(scope)
        return str(access.token), float(access.expires_on)

    return BearerTokenCredential(fetch)

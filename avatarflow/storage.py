"""Access to one Azure Blob Storage container, with credentials from the environment only.

The manifest names the container (``container_url``); who may use it comes from the
environment, in this order:

1. ``AZURE_STORAGE_CONNECTION_STRING`` (account key or SAS inside);
2. ``AZURE_STORAGE_SAS_TOKEN``, a SAS for the container URL;
3. Microsoft Entra ID through azure-identity's ``DefaultAzureCredential``.

Every credential is registered with :func:`avatarflow.secrets.register_secret` before
the first request, and :func:`storage_errors` turns the SDK's exceptions into one-line
:class:`StorageError` messages, so keys and signatures never reach a message or a log.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError, StorageError
from .secrets import redact, register_secret

ENV_CONNECTION_STRING = "AZURE_STORAGE_CONNECTION_STRING"
ENV_SAS_TOKEN = "AZURE_STORAGE_SAS_TOKEN"
_SECRET_PARTS = ("accountkey", "sharedaccesssignature")


def container_name(container_url: str) -> str:
    """The last path segment of ``container_url`` (path-style emulator URLs included)."""
    name = urlsplit(container_url).path.rstrip("/").rsplit("/", 1)[-1]
    if not name:
        raise ConfigError(f"{container_url} names no container")
    return name


def _same_place(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


def _register_connection_string(connection_string: str) -> None:
    for part in connection_string.split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() in _SECRET_PARTS:
            register_secret(value.strip())


def open_container(container_url: str, environ: dict[str, str]) -> Any:
    """A ``ContainerClient`` for ``container_url`` with the environment's credential."""
    try:
        from azure.storage.blob import ContainerClient, ExponentialRetry
    except ImportError as exc:
        raise ConfigError(
            "the azureblob state backend needs azure-storage-blob: pip install 'avatarflow[azure]'"
        ) from exc
    # The SDK's default waits 15 s before its first retry; a command should fail sooner.
    options: dict[str, Any] = {
        "retry_policy": ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=3),
        "connection_timeout": 10,
    }
    connection_string = environ.get(ENV_CONNECTION_STRING, "").strip()
    if connection_string:
        _register_connection_string(connection_string)
        client = ContainerClient.from_connection_string(
            connection_string, container_name(container_url), **options
        )
        # The string names its own account: never let it send the state somewhere else.
        if _same_place(client.url) != _same_place(container_url):
            raise ConfigError(
                f"{ENV_CONNECTION_STRING} is for {client.url}, not for the manifest's "
                f"container_url {container_url}"
            )
        return client
    sas = environ.get(ENV_SAS_TOKEN, "").strip().lstrip("?")
    if sas:
        register_secret(sas)
        return ContainerClient.from_container_url(f"{container_url}?{sas}", **options)
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError as exc:
        raise ConfigError(
            f"no storage credential: set {ENV_CONNECTION_STRING} or {ENV_SAS_TOKEN}, "
            "or pip install 'avatarflow[entra]' to sign in with Microsoft Entra ID"
        ) from exc
    return ContainerClient.from_container_url(
        container_url, credential=DefaultAzureCredential(), **options
    )


@contextmanager
def storage_errors(where: str) -> Iterator[None]:
    """Turn any storage failure inside the block into one clean line naming ``where``."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceResponseError,
    )

    try:
        yield
    except ResourceNotFoundError as exc:
        if error_code(exc) == "ContainerNotFound":
            raise StorageError(f"{where}: the container does not exist") from None
        raise StorageError(f"{where}: not found ({error_code(exc) or 'HTTP 404'})") from None
    except ClientAuthenticationError as exc:
        reason = error_code(exc) or "auth"
        raise StorageError(f"{where}: access refused ({reason}); {_hint()}") from None
    except HttpResponseError as exc:
        if exc.status_code in (401, 403):
            raise StorageError(
                f"{where}: access refused ({error_code(exc) or exc.status_code}); {_hint()}"
            ) from None
        reason = error_code(exc) or f"HTTP {exc.status_code}"
        raise StorageError(f"{where}: storage error {reason}: {_first_line(exc)}") from None
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise StorageError(f"{where}: storage unreachable: {_first_line(exc)}") from None


def error_code(exc: Any) -> str:
    """The storage error code of an SDK exception (``BlobNotFound``…), or ``""``."""
    code = getattr(exc, "error_code", None)
    return str(getattr(code, "value", code) or "")


def _first_line(exc: BaseException) -> str:
    return redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)


def _hint() -> str:
    return f"check {ENV_CONNECTION_STRING} / {ENV_SAS_TOKEN} or the signed-in identity's role"

"""Azure Storage credentials, read from the environment here and nowhere else, and
the SDK's errors turned into one-line messages.

The manifest names containers (a remote state's ``container_url``, a job destination's
``destination_container_url``); who may use them comes from the environment:

- ``AZURE_STORAGE_CONNECTION_STRING`` (account key or SAS inside), parsed by the Azure
  SDK, never by hand;
- ``AZURE_STORAGE_SAS_TOKEN``, a SAS for the container URL;
- for a remote state, Microsoft Entra ID through azure-identity's
  ``DefaultAzureCredential`` when neither is set.

A remote state prefers the connection string (:func:`open_container`); a destination
prefers the SAS and signs one from the connection string's account key otherwise
(:mod:`avatarflow.destination`). Every secret is registered with
:func:`avatarflow.secrets.register_secret` the moment it is read, and
:func:`storage_errors` turns the SDK's exceptions into :class:`StorageError` lines, so
keys and signatures never reach a message or a log.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .errors import ConfigError, StorageError
from .secrets import redact, register_secret

ENV_CONNECTION_STRING = "AZURE_STORAGE_CONNECTION_STRING"
ENV_SAS_TOKEN = "AZURE_STORAGE_SAS_TOKEN"


@dataclass(frozen=True)
class StorageEnvironment:
    """The storage credentials the environment holds (each registered as a secret)."""

    connection_string: str | None = field(default=None, repr=False)
    sas: str | None = field(default=None, repr=False)  # without its leading ``?``


def from_environment(environ: Mapping[str, str] | None = None) -> StorageEnvironment:
    env = os.environ if environ is None else environ
    connection_string = env.get(ENV_CONNECTION_STRING, "").strip() or None
    sas = env.get(ENV_SAS_TOKEN, "").strip().lstrip("?") or None
    if connection_string:
        register_secret(connection_string)
    if sas:
        register_sas(sas)
    return StorageEnvironment(connection_string, sas)


def register_sas(sas: str) -> None:
    """A SAS and its bare signature (``redact`` masks ``sig=…``; the value may show up
    decoded elsewhere)."""
    register_secret(sas)
    for name, value in parse_qsl(sas, keep_blank_values=True):
        if name == "sig":
            register_secret(value)


def blob_sdk(purpose: str) -> ModuleType:
    """``azure.storage.blob``, or a :class:`ConfigError` saying how to install it."""
    try:
        import azure.storage.blob as sdk
    except ImportError:
        raise ConfigError(
            f"{purpose} needs azure-storage-blob: pip install 'avatarflow[azure]'"
        ) from None
    return sdk


def client_from_connection_string(
    connection_string: str, container_url: str, purpose: str, **options: Any
) -> Any:
    """A ``ContainerClient`` for the container of ``container_url`` on the account the
    connection string names (the SDK parses it; its key or SAS is registered)."""
    sdk = blob_sdk(purpose)
    try:
        client = sdk.ContainerClient.from_connection_string(
            connection_string, container_name(container_url), **options
        )
    except ValueError:
        raise ConfigError(f"{ENV_CONNECTION_STRING} is not a valid connection string") from None
    key = getattr(client.credential, "account_key", None)
    if key:
        register_secret(key)
    query = urlsplit(client.url).query
    if query:
        register_sas(query)
    return client


def account_key(connection_string: str, container_url: str) -> tuple[str, str] | None:
    """The account name and key of a connection string; None when it holds a SAS."""
    purpose = f"signing a SAS from {ENV_CONNECTION_STRING}"
    client = client_from_connection_string(connection_string, container_url, purpose)
    credential = client.credential
    name, key = getattr(credential, "account_name", None), getattr(credential, "account_key", None)
    return (str(name), str(key)) if name and key else None


def container_name(container_url: str) -> str:
    """The last path segment of ``container_url`` (path-style emulator URLs included)."""
    name = urlsplit(container_url).path.rstrip("/").rsplit("/", 1)[-1]
    if not name:
        raise ConfigError(f"{container_url} names no container")
    return name


def _same_place(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


def open_container(container_url: str, environ: Mapping[str, str] | None = None) -> Any:
    """A ``ContainerClient`` for ``container_url`` with the environment's credential."""
    sdk = blob_sdk("the azureblob state backend")
    # The SDK's default waits 15 s before its first retry; a command should fail sooner.
    options: dict[str, Any] = {
        "retry_policy": sdk.ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=3),
        "connection_timeout": 10,
    }
    found = from_environment(environ)
    if found.connection_string:
        client = client_from_connection_string(
            found.connection_string, container_url, "the azureblob state backend", **options
        )
        # The string names its own account: never let it send the state somewhere else.
        if _same_place(client.url) != _same_place(container_url):
            raise ConfigError(
                f"{ENV_CONNECTION_STRING} is for {client.url}, not for the manifest's "
                f"container_url {container_url}"
            )
        return client
    if found.sas:
        return sdk.ContainerClient.from_container_url(f"{container_url}?{found.sas}", **options)
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError as exc:
        raise ConfigError(
            f"no storage credential: set {ENV_CONNECTION_STRING} or {ENV_SAS_TOKEN}, "
            "or pip install 'avatarflow[entra]' to sign in with Microsoft Entra ID"
        ) from exc
    return sdk.ContainerClient.from_container_url(
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

"""The customer blob container jobs write their videos to (``service.destination_container_url``).

Packed (multi-input) jobs need one; single-video jobs use it when it is set.

The manifest names the container without a query string; the SAS that lets the service
write there (and avatarflow read back) comes from the environment at run time:

1. ``AZURE_STORAGE_SAS_TOKEN`` — a container SAS (with or without its leading ``?``);
2. else ``AZURE_STORAGE_CONNECTION_STRING`` — a container SAS is signed with its account
   key (needs ``pip install 'avatarflow[azure]'``).

The SAS is registered with :mod:`avatarflow.secrets` as soon as it is known, and it is no
part of any video's identity: rotating it re-renders nothing. Only
:meth:`Destination.container_sas_url` and :meth:`Destination.blob_url` ever put it into a
URL, and those URLs are used for requests only, never stored or shown.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from .errors import ConfigError
from .secrets import register_secret

ENV_SAS = "AZURE_STORAGE_SAS_TOKEN"
ENV_CONNECTION_STRING = "AZURE_STORAGE_CONNECTION_STRING"
# A job may queue for a long time before the service writes its outputs (pain point 9.1),
# and the outputs are read back after that: a generated SAS is valid for a week.
GENERATED_SAS_LIFETIME = timedelta(days=7)
# Draft renders of the emulator target never land where final renders do.
DRAFTS_FOLDER = "drafts"


@dataclass(frozen=True)
class Destination:
    """A container (plain URL), a folder inside it, and the SAS to reach it."""

    container_url: str
    path: str | None
    sas: str = field(repr=False)

    def folder(self, job_id: str) -> str:
        """Where the service writes a job's outputs: ``{path}/{job id}``."""
        return f"{self.path}/{job_id}" if self.path else job_id

    def container_sas_url(self) -> str:
        """``destinationContainerUrl`` of a create request (holds the SAS)."""
        return f"{self.container_url}?{self.sas}"

    def blob_url(self, relative: str) -> str:
        """The signed URL of a blob named relative to the container."""
        return f"{self.container_url}/{quote(relative.lstrip('/'))}?{self.sas}"

    def output_url(self, job_id: str, index: int, extension: str) -> str:
        """The ``index``-th (1-based) video of a job: ``{path}/{job id}/000N.mp4``."""
        return self.blob_url(f"{self.folder(job_id)}/{index:04d}.{extension}")

    def into(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of a GA create body that writes to this container (the copy holds the
        SAS: send it, never store it)."""
        properties = dict(body.get("properties") or {})
        properties["destinationContainerUrl"] = self.container_sas_url()
        if self.path:
            properties["destinationPath"] = self.path
        return {**body, "properties": properties}


def resolve(
    container_url: str,
    path: str | None,
    *,
    drafts: bool = False,
    environ: Mapping[str, str] | None = None,
) -> Destination:
    """The destination with its SAS from the environment; :class:`ConfigError` without one."""
    env = os.environ if environ is None else environ
    if drafts:
        path = f"{path}/{DRAFTS_FOLDER}" if path else DRAFTS_FOLDER
    token = env.get(ENV_SAS, "").strip().lstrip("?")
    if token:
        _check_sas(token)
        register_secret(token)
        _register_signature(token)
        return Destination(container_url, path, token)
    connection = env.get(ENV_CONNECTION_STRING, "").strip()
    if connection:
        sas = _sign_with_account_key(container_url, connection)
        return Destination(container_url, path, sas)
    raise ConfigError(
        f"service.destination_container_url needs a SAS for the container: set {ENV_SAS} "
        f"(a container SAS with read, write and create rights) or {ENV_CONNECTION_STRING}"
    )


def _check_sas(token: str) -> None:
    fields = dict(parse_qsl(token, keep_blank_values=True))
    if not fields.get("sig"):
        raise ConfigError(f"{ENV_SAS} is not a SAS token (it has no 'sig' field)")


def _register_signature(token: str) -> None:
    # redact() already masks ``sig=…``; the bare value may still show up decoded.
    for name, value in parse_qsl(token, keep_blank_values=True):
        if name == "sig":
            register_secret(value)


def _connection_fields(connection: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in connection.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            fields[name.strip()] = value.strip()
    return fields


def _sign_with_account_key(container_url: str, connection: str) -> str:
    fields = _connection_fields(connection)
    key, account = fields.get("AccountKey"), fields.get("AccountName")
    if not key or not account:
        raise ConfigError(
            f"{ENV_CONNECTION_STRING} has no AccountName/AccountKey to sign a SAS with; "
            f"set {ENV_SAS} instead"
        )
    register_secret(key)
    try:
        from azure.storage.blob import ContainerSasPermissions, generate_container_sas
    except ImportError:
        raise ConfigError(
            f"signing a SAS from {ENV_CONNECTION_STRING} needs azure-storage-blob: "
            "pip install 'avatarflow[azure]'"
        ) from None
    container = urlsplit(container_url).path.rstrip("/").rsplit("/", 1)[-1]
    sas: str = generate_container_sas(
        account_name=account,
        container_name=container,
        account_key=key,
        permission=ContainerSasPermissions(read=True, write=True, create=True, add=True),
        expiry=datetime.now(UTC) + GENERATED_SAS_LIFETIME,
    )
    register_secret(sas)
    _register_signature(sas)
    return sas

"""The customer blob container jobs write their videos to (``service.destination_container_url``).

Packed (multi-input) jobs need one; single-video jobs use it when it is set.

The manifest names the container without a query string; the SAS that lets the service
write there (and avatarflow read back) comes from the environment at run time:

1. ``AZURE_STORAGE_SAS_TOKEN`` — a container SAS (with or without its leading ``?``);
2. else ``AZURE_STORAGE_CONNECTION_STRING`` — a container SAS is signed with its account
   key (needs ``pip install 'avatarflow[azure]'``).

The environment is read, and the connection string parsed, by :mod:`avatarflow.storage`.
The SAS is registered with :mod:`avatarflow.secrets` as soon as it is known, and it is no
part of any video's identity: rotating it re-renders nothing. Only
:meth:`Destination.container_sas_url` and :meth:`Destination.blob_url` ever put it into a
URL, and those URLs are used for requests only, never stored or shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote

from . import storage
from .errors import ConfigError

ENV_SAS = storage.ENV_SAS_TOKEN
ENV_CONNECTION_STRING = storage.ENV_CONNECTION_STRING
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
    if drafts:
        path = f"{path}/{DRAFTS_FOLDER}" if path else DRAFTS_FOLDER
    found = storage.from_environment(environ)
    if found.sas:
        _check_sas(found.sas)
        return Destination(container_url, path, found.sas)
    if found.connection_string:
        sas = _sign_with_account_key(container_url, found.connection_string)
        return Destination(container_url, path, sas)
    raise ConfigError(
        f"service.destination_container_url needs a SAS for the container: set {ENV_SAS} "
        f"(a container SAS with read, write and create rights) or {ENV_CONNECTION_STRING}"
    )


def _check_sas(token: str) -> None:
    fields = dict(parse_qsl(token, keep_blank_values=True))
    if not fields.get("sig"):
        raise ConfigError(f"{ENV_SAS} is not a SAS token (it has no 'sig' field)")


def _sign_with_account_key(container_url: str, connection: str) -> str:
    named = storage.account_key(connection, container_url)
    if named is None:
        raise ConfigError(
            f"{ENV_CONNECTION_STRING} has no AccountName/AccountKey to sign a SAS with; "
            f"set {ENV_SAS} instead"
        )
    account, key = named
    sdk = storage.blob_sdk(f"signing a SAS from {ENV_CONNECTION_STRING}")
    sas: str = sdk.generate_container_sas(
        account_name=account,
        container_name=storage.container_name(container_url),
        account_key=key,
        permission=sdk.ContainerSasPermissions(read=True, write=True, create=True, add=True),
        expiry=datetime.now(UTC) + GENERATED_SAS_LIFETIME,
    )
    storage.register_sas(sas)
    return sas

"""Customer containers (``destinationContainerUrl``): their SAS and the Blob API uploads.

Like the service, the emulator writes the outputs of a job with a destination into that
container with plain ``PUT`` Blob requests (``x-ms-blob-type: BlockBlob``) signed by the
SAS of the request. The SAS URL is a secret: it is kept out of the job files and of the
request log, in a file of its own (mode 0600, ``data_dir/destinations/``) that lives only
until the job's outputs are uploaded, so that a restarted emulator can still deliver a
job whose render was interrupted.
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from avatarflow import atomicfile

BLOB_API_VERSION = "2021-08-06"
UPLOAD_ATTEMPTS = 3
_CONTENT_TYPES = {
    ".json": "application/json",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".vtt": "text/vtt",
}


class UploadError(Exception):
    """The destination container did not take a blob."""


class DestinationSecrets:
    """The SAS URL of each job with a destination, one 0600 file per job."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: tuple[str, str]) -> Path:
        surface, job_id = key
        return self.root / surface / job_id

    def put(self, key: tuple[str, str], url: str) -> None:
        path = self._path(key)
        atomicfile.write_bytes(path, url.encode(), durable=False, private=True)

    def get(self, key: tuple[str, str]) -> str | None:
        try:
            return self._path(key).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def remove(self, key: tuple[str, str]) -> None:
        self._path(key).unlink(missing_ok=True)


def blob_url(container_sas_url: str, name: str) -> str:
    """``{container}/{name}?{sas}`` from a container SAS URL."""
    parts = urlsplit(container_sas_url)
    path = f"{parts.path.rstrip('/')}/{quote(name)}"
    return urlunsplit(parts._replace(path=path))


def upload(container_sas_url: str, folder: str, files: list[Path]) -> None:
    """PUT each file as ``{folder}/{file name}`` into the container; raise on failure.

    Messages name the blob, never the SAS.
    """
    with httpx.Client(timeout=30.0) as client:
        for path in files:
            name = f"{folder}/{path.name}"
            _put(client, blob_url(container_sas_url, name), path, name)


def _put(client: httpx.Client, url: str, path: Path, name: str) -> None:
    headers = {
        "x-ms-blob-type": "BlockBlob",
        "x-ms-version": BLOB_API_VERSION,
        "Content-Type": _CONTENT_TYPES.get(path.suffix, "application/octet-stream"),
    }
    data = path.read_bytes()
    for attempt in range(1, UPLOAD_ATTEMPTS + 1):
        try:
            response = client.put(url, content=data, headers=headers)
        except httpx.TransportError as exc:
            problem = type(exc).__name__
        else:
            if response.status_code == 201:
                return
            code = response.headers.get("x-ms-error-code") or ""
            problem = f"HTTP {response.status_code} {code}".strip()
            if response.status_code < 500:
                break  # a refused SAS or a missing container does not heal by retrying
        if attempt < UPLOAD_ATTEMPTS:
            time.sleep(0.2 * attempt)
    raise UploadError(f"could not write {name} to the destination container: {problem}")

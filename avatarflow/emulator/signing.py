"""SAS-like signatures of result URLs, so downloads behave like Azure blob storage.

A URL carries ``se`` (expiry, ISO-8601 UTC) and ``sig`` (HMAC-SHA256 over the container,
the job folder and the expiry). One signature covers a whole job folder, like a
directory SAS: the video, ``summary.json`` and an external ``.vtt`` share it. The key is
kept in ``data_dir`` so URLs stay valid across emulator restarts until they expire.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

from avatarflow import atomicfile

SAS_VERSION = "2021-08-06"


class UrlSigner:
    def __init__(self, key_path: Path) -> None:
        self._key = self._load_or_create(key_path)

    @staticmethod
    def _load_or_create(path: Path) -> bytes:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            pass
        key = secrets.token_bytes(32)
        atomicfile.write_bytes(path, key, private=True)
        return key

    @property
    def account_hash(self) -> str:
        """A stable 32-hex folder name, like the hash in the service's blob paths."""
        return hashlib.sha256(b"account" + self._key).hexdigest()[:32]

    def _signature(self, container: str, folder: str, expiry: str) -> str:
        message = f"{container}\n{folder}\n{expiry}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.b64encode(digest).decode()

    def query(self, container: str, folder: str, expires_at: float) -> str:
        """The query string (``sv``, ``se``, ``sr``, ``sp``, ``sig``) of a signed URL."""
        expiry = datetime.fromtimestamp(int(expires_at), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return urlencode(
            {
                "sv": SAS_VERSION,
                "se": expiry,
                "sr": "d",
                "sp": "r",
                "sig": self._signature(container, folder, expiry),
            }
        )

    def check(self, container: str, folder: str, expiry: str, sig: str, now: float) -> str | None:
        """``None`` if valid, else the reason (for an ``AuthenticationFailed`` answer)."""
        if not expiry or not sig:
            return "Signature fields not well formed."
        expected = self._signature(container, folder, expiry)
        if not hmac.compare_digest(expected, sig):
            return "Signature did not match."
        try:
            expires = datetime.strptime(expiry, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            return "Signature fields not well formed."
        if expires.timestamp() <= now:
            return f"Signed expiry time [{expiry}] must be after the current time."
        return None

"""Keep keys, tokens and SAS signatures out of every message, log line and file.

Secrets are registered when they are read (the key from the environment, a token when
it is fetched); :func:`redact` removes registered values and anything shaped like a SAS
query string or a bearer token from text before it is shown or stored.
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_lock = threading.Lock()
_known: set[str] = set()

REDACTED = "***"

# Parameters whose values are credentials: redacted wherever they appear in a text.
_CREDENTIAL_PARAMS = ("sig", "signature", "code", "token")
# With the SAS fields that say what a signature grants, dropped from a URL that is kept.
_SECRET_PARAMS = {*_CREDENTIAL_PARAMS, "se", "st", "sp", "sv", "sr", "skoid", "sktid"}
_SIG_RE = re.compile(rf"(?i)\b({'|'.join(_CREDENTIAL_PARAMS)})=([^&\s\"'<>]+)")
_BEARER_RE = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+")
_KEY_HEADER_RE = re.compile(r"(?i)(ocp-apim-subscription-key['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+")


def register_secret(value: str | None) -> None:
    """Remember ``value`` so that :func:`redact` hides it wherever it appears."""
    if value and len(value) >= 4:
        with _lock:
            _known.add(value)


def redact(text: str) -> str:
    """Return ``text`` with every known secret and signature replaced by ``***``."""
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for secret in known:
        text = text.replace(secret, REDACTED)
    text = _SIG_RE.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    text = _BEARER_RE.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return _KEY_HEADER_RE.sub(lambda m: f"{m.group(1)}{REDACTED}", text)


def strip_query_secrets(url: str) -> str:
    """A URL without the signature parameters of its query (for state and logs)."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    kept = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k.lower() not in _SECRET_PARAMS
    ]
    return urlunsplit(parts._replace(query=urlencode(kept)))


class RedactingFilter(logging.Filter):
    """Redacts each record of a logger in place: for libraries that log whole URLs
    (httpx logs every request, a result URL's SAS signature included, at INFO)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def redact_logger(name: str) -> None:
    """Make sure every record of logger ``name`` passes through :func:`redact`."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())

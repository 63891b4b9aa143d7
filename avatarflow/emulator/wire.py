"""Wire details shared by both API surfaces: error answers, timestamps, ISO durations.

The service's fidelity quirks live here: GA timestamps carry 7 fractional digits (.NET
ticks); ``lastActionDateTime`` loses its ``Z`` (and trailing zeros) once a job moves on;
the preview surface uses milliseconds with ``Z``; GA errors are nested
``{"error": {...}}`` while preview errors are flat ``{"code", "message", "innerError"}``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

# Preview error codes differ from the GA enum (sibling TTS preview doc).
_PREVIEW_CODES = {"BadRequest": "InvalidRequest", "BadArgument": "InvalidRequest"}
_PREVIEW_INNER = {"BadRequest": "InvalidParameter", "BadArgument": "InvalidParameter"}


class ApiError(Exception):
    """An error answer of the speech API (status, code from the GA enum, message)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self, surface: str) -> dict[str, Any]:
        """The JSON body in the shape of ``surface`` (``"ga"`` or ``"preview"``)."""
        if surface == "preview":
            return {
                "code": self.wire_code(surface),
                "message": self.message,
                "innerError": {
                    "code": _PREVIEW_INNER.get(self.code, self.code),
                    "message": self.message,
                },
            }
        return {"error": {"code": self.code, "message": self.message}}

    def wire_code(self, surface: str) -> str:
        """The code sent in the body and the ``x-ms-error-code`` header."""
        return _PREVIEW_CODES.get(self.code, self.code) if surface == "preview" else self.code


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def not_found(message: str = "The specified entity cannot be found.") -> ApiError:
    return ApiError(404, "NotFound", message)


def _ticks(moment: float) -> tuple[datetime, int]:
    """The whole second and the 100-ns ticks within it (the .NET resolution)."""
    total = round(moment * 10_000_000)
    seconds, ticks = divmod(total, 10_000_000)
    return datetime.fromtimestamp(seconds, UTC), ticks


def ga_created_time(moment: float) -> str:
    """``2024-03-06T07:34:08.9487009Z``: always 7 digits and a ``Z``."""
    whole, ticks = _ticks(moment)
    return f"{whole:%Y-%m-%dT%H:%M:%S}.{ticks:07d}Z"


def ga_last_action_time(moment: float, *, moved_on: bool) -> str:
    """With ``Z`` while the job is new; afterwards no ``Z`` and no trailing zeros."""
    if not moved_on:
        return ga_created_time(moment)
    whole, ticks = _ticks(moment)
    fraction = f"{ticks:07d}".rstrip("0")
    return f"{whole:%Y-%m-%dT%H:%M:%S}" + (f".{fraction}" if fraction else "")


def preview_time(moment: float) -> str:
    """``2023-10-19T12:23:06.320Z``: milliseconds and a ``Z``."""
    total_ms = round(moment * 1000)
    seconds, millis = divmod(total_ms, 1000)
    return f"{datetime.fromtimestamp(seconds, UTC):%Y-%m-%dT%H:%M:%S}.{millis:03d}Z"


_DURATION_RE = re.compile(
    r"^P(?:(?P<weeks>\d+(?:\.\d+)?)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
_UNIT_SECONDS = {"weeks": 604800, "days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}


def parse_iso_duration(text: str) -> float:
    """Seconds of an ISO-8601 duration such as ``P31D`` or ``PT12H`` (no years/months)."""
    match = _DURATION_RE.match(text.strip().upper())
    if not match or text.strip().upper() in ("P", "PT") or text.strip().endswith("T"):
        raise ValueError(f"{text!r} is not an ISO-8601 duration like 'P31D' or 'PT12H'")
    return sum(float(v) * _UNIT_SECONDS[k] for k, v in match.groupdict().items() if v)


def iso_duration(seconds: float) -> str:
    """``PT2.52S`` style duration of a video (minutes and hours folded in)."""
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    text = "PT"
    if hours:
        text += f"{hours}H"
    if minutes:
        text += f"{minutes}M"
    if rest or text == "PT":
        secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
        text += f"{secs}S"
    return text

"""What the service says, checked against what was asked (SPEC §8: every answer is input).

The client calls these on every answer it acts on. A mismatch raises
:class:`~avatarflow.errors.UntrustedAnswerError` with the service's own words kept; the
runner makes it an error for that video whose record keeps the state from which the next
apply adopts the job by its id (GA) or content hash (preview), never a success and never
a reason to pay again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import httpx

from .errors import UntrustedAnswerError
from .secrets import redact

__all__ = [
    "DOCUMENTED_STATUSES",
    "MAX_ANSWER_BYTES",
    "MAX_LIST_PAGES",
    "canonical_status",
    "check_created",
    "check_got",
    "read_capped",
    "readable_id",
    "shown",
]

# Both surfaces document these four; the service's casing is not promised.
DOCUMENTED_STATUSES = ("NotStarted", "Running", "Succeeded", "Failed")
_BY_FOLDED = {status.casefold(): status for status in DOCUMENTED_STATUSES}

# A job is a few KiB and a page holds at most 100: 8 MiB is far above any honest answer.
MAX_ANSWER_BYTES = 8 * 1024 * 1024
# 1,000 pages of 100 jobs: more jobs than a resource keeps within their time to live.
MAX_LIST_PAGES = 1_000

# Ids both surfaces hand out or accept: GA's documented pattern, the preview's GUIDs.
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,127}$")
_SHOWN = 80


def canonical_status(value: object) -> str | None:
    """The documented spelling of ``value`` compared case-insensitively, or None."""
    if not isinstance(value, str):
        return None
    return _BY_FOLDED.get(value.strip().casefold())


def readable_id(value: object) -> str | None:
    """``value`` when it can name a job in a URL and in state, else None."""
    return value if isinstance(value, str) and _ID.match(value) else None


def _same_id(answered: object, job_id: str) -> bool:
    # Compared without case: a service that changes an id's case still names our job,
    # and the manifest refuses ids that differ only by case.
    return isinstance(answered, str) and answered.casefold() == job_id.casefold()


def shown(value: object) -> str:
    """A service value fit for one line of a message: redacted and clipped."""
    text = redact(repr(value))
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def check_created(
    what: str,
    sent: Mapping[str, Any],
    answer: Mapping[str, Any],
    job_id: str | None,
    status_code: int | None = None,
) -> None:
    """Refuse a create answer that describes another job than the one sent.

    ``job_id`` is the id the client chose (GA) or None (preview). The preview's server
    picks the id, so there the answer's name and custom properties must echo the sent ones.
    """
    answered = answer.get("id")
    if job_id is not None and answered is not None and not _same_id(answered, job_id):
        raise UntrustedAnswerError(
            f"{what}: the service answered for job id {shown(answered)}, not {job_id!r}; "
            "nothing was recorded as created",
            status_code=status_code,
        )
    for key in ("displayName", "customProperties"):
        if key in sent and key in answer and answer[key] != sent[key]:
            raise UntrustedAnswerError(
                f"{what}: the answer's {key} {shown(answer[key])} is not the one sent; "
                "it describes another job",
                status_code=status_code,
            )


def check_got(
    what: str, job_id: str, answer: Mapping[str, Any], status_code: int | None = None
) -> None:
    """Refuse a job GET answered with another job (or none)."""
    answered = answer.get("id")
    if not _same_id(answered, job_id):
        raise UntrustedAnswerError(
            f"{what}: the service answered with job id {shown(answered)}; "
            "the answer is not about this job",
            status_code=status_code,
        )


async def read_capped(response: httpx.Response, limit: int, what: str) -> bytes:
    """The (decoded) body of a streamed response, refused past ``limit`` bytes unread."""
    declared = response.headers.get("content-length", "")
    if (
        declared.isdigit()
        and int(declared) > limit
        and not response.headers.get("content-encoding")
    ):
        raise UntrustedAnswerError(
            f"{what}: the answer declares {int(declared):,} bytes, more than the "
            f"{limit:,} any answer of the service needs",
            status_code=response.status_code,
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise UntrustedAnswerError(
                f"{what}: the answer is larger than the {limit:,} bytes any answer of "
                "the service needs",
                status_code=response.status_code,
            )
        chunks.append(chunk)
    return b"".join(chunks)

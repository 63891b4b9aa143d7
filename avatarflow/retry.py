"""When a failed request is tried again, and how long to wait first.

Two rules, because creating a job costs money and reading one does not:

* reads (get, list, delete, download) are retried after 429, 5xx and network errors;
* a create is retried only when the service certainly did not act on it: a 429, or a
  connection that was never established. Everything else leaves the outcome unknown
  and is left to the caller, who can look the job up instead of paying twice.

Every request gets at most ``max_attempts`` attempts, or ``max_throttled_attempts`` while
the service answers 429 (pacing, not failing). A ``Retry-After`` header (seconds or an
HTTP date, or Azure's ``retry-after-ms``) sets the wait exactly; otherwise the wait grows
exponentially with jitter up to a cap. The sleep function is part of the policy so that
tests can record waits instead of waiting.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from .errors import ServerError, ThrottledError

__all__ = [
    "RetryPolicy",
    "is_retryable_create",
    "is_retryable_read",
    "never_sent",
    "parse_retry_after",
    "retry_after_from_headers",
    "retrying",
]

log = logging.getLogger("avatarflow.client")

Sleep = Callable[[float], Awaitable[None]]

# 501 and 505 say the server will never do this; retrying cannot help.
_PERMANENT_5XX = {501, 505}


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a request is retried."""

    max_attempts: int = 6
    """Attempts in total, the first one included."""
    max_throttled_attempts: int = 20
    """The bound when the last answer was a 429: that is the service pacing its callers
    (2 creates a minute on S0), not a failure, so a burst of them is waited out."""
    initial_wait: float = 0.5
    """Backoff before the second attempt (before jitter); doubles with each attempt."""
    max_wait: float = 30.0
    """Cap of the exponential backoff."""
    max_retry_after: float = 120.0
    """A ``Retry-After`` longer than this is not waited out: the error is raised so the
    caller can reschedule the work instead of blocking a worker for minutes."""
    sleep: Sleep = field(default=asyncio.sleep, repr=False, compare=False)
    jitter: Callable[[float, float], float] = field(
        default=random.uniform, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.max_throttled_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_wait < 0 or self.max_wait < 0 or self.max_retry_after < 0:
            raise ValueError("waits must not be negative")

    def backoff(self, attempt: int) -> float:
        """The wait after failed attempt number ``attempt`` (1-based), with equal jitter.

        Half the window is fixed so that retries never bunch up at zero; the other half
        is random so that parallel workers hitting the same 5xx spread out.
        """
        window = min(self.max_wait, self.initial_wait * 2.0 ** (attempt - 1))
        return window / 2 + self.jitter(0.0, window / 2)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP date."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def retry_after_from_headers(
    headers: Mapping[str, str], *, now: datetime | None = None
) -> float | None:
    """The server's requested wait; Azure's millisecond headers are more precise, so first."""
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        millis = parse_retry_after(headers.get(name))
        if millis is not None:
            return millis / 1000.0
    return parse_retry_after(headers.get("retry-after"), now=now)


def never_sent(exc: BaseException) -> bool:
    """True when the request certainly never reached the server.

    A connection that was never established (or never taken from the pool) carried
    no bytes. Read errors, timeouts while waiting for the answer and dropped
    connections all happen after the request may have been processed.
    """
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def is_retryable_read(exc: BaseException) -> bool:
    """Retry rule for requests that are safe to repeat."""
    if isinstance(exc, ThrottledError):
        return True
    if isinstance(exc, ServerError):
        return exc.status_code not in _PERMANENT_5XX
    return isinstance(exc, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError)


def is_retryable_create(exc: BaseException) -> bool:
    """Retry rule for a create: only when nothing can have been created."""
    return isinstance(exc, ThrottledError) or never_sent(exc)


def _retry_after_of(exc: BaseException | None) -> float | None:
    return exc.retry_after if isinstance(exc, ThrottledError) else None


def _failure(state: RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome is not None else None


def retrying(
    policy: RetryPolicy,
    should_retry: Callable[[BaseException], bool],
    what: str,
    at_once: Callable[[BaseException], bool] | None = None,
) -> AsyncRetrying:
    """A tenacity controller that applies ``policy`` to exceptions ``should_retry`` accepts.

    ``what`` names the operation in log lines; after an exception ``at_once`` accepts (the
    next attempt goes elsewhere, e.g. to a fresh URL) there is no wait. The last exception
    is re-raised as is.
    """

    def stop(state: RetryCallState) -> bool:
        failure = _failure(state)
        throttled = isinstance(failure, ThrottledError)
        limit = policy.max_throttled_attempts if throttled else policy.max_attempts
        if state.attempt_number >= limit:
            return True
        retry_after = _retry_after_of(failure)
        return retry_after is not None and retry_after > policy.max_retry_after

    def wait(state: RetryCallState) -> float:
        failure = _failure(state)
        if at_once is not None and failure is not None and at_once(failure):
            return 0.0
        retry_after = _retry_after_of(failure)
        if retry_after is not None:
            return retry_after
        return policy.backoff(state.attempt_number)

    def before_sleep(state: RetryCallState) -> None:
        exc = _failure(state)
        throttled = isinstance(exc, ThrottledError)
        limit = policy.max_throttled_attempts if throttled else policy.max_attempts
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        log.info(
            "%s failed (%s); attempt %d of %d in %.1fs",
            what,
            _describe(exc),
            state.attempt_number + 1,
            limit,
            delay,
        )

    return AsyncRetrying(
        stop=stop,
        wait=wait,
        retry=retry_if_exception(should_retry),
        sleep=policy.sleep,
        before_sleep=before_sleep,
        reraise=True,
    )


def _describe(exc: BaseException | None) -> str:
    # Only the class name and status: exception texts may quote URLs with signatures.
    status = getattr(exc, "status_code", None)
    name = type(exc).__name__
    return f"{name} HTTP {status}" if status else name

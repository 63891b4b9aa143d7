"""Fault injection: what the emulator does wrong on purpose, so clients can be tested.

A fault spec is a compact string, used by ``avatarflow emulator --faults SPEC`` and by the
``AVATARFLOW_EMULATOR_FAULTS`` environment variable::

    spec     := item ("," item)*
    item     := KEY "=" VALUE
    rate     := COUNT | FRACTION ["@" kinds]     COUNT: the first N matching requests
                                                 FRACTION: "0.25" or "25%", each matching
                                                 request with that probability (seeded)
    kinds    := KIND ("/" KIND)*                 create get list delete operation
                                                 download summary (default: the five API
                                                 kinds, not the blob downloads)

    throttle=RATE          429 TooManyRequests with a Retry-After header
    retry_after=SECONDS    Retry-After of those 429s (default 1)
    error=RATE             a 5xx error answer
    error_status=CODE      its status: 500 (default), 502, 503 or 504
    drop=RATE              close the connection without sending any response
    lose_create=N|GLOB     the job IS created, then the connection is dropped; a bare
                           integer is a count of creates, anything else a job glob
    stuck=GLOB             matching jobs never leave NotStarted
    fail=GLOB:CODE[:MSG]   matching jobs end Failed with that error code and message
    truncate=N             the next N downloads send fewer bytes than Content-Length
    expire_urls=N          the next N result URL sets (one per job shown by a get or a
                           list) are issued already expired
    seed=INT               seed of the fractions (default 0)

``stuck``, ``fail`` and a glob ``lose_create`` may be repeated. Globs use ``fnmatch``
and match the job id on the GA surface and the ``displayName`` on the preview surface
(where the service picks the id). Example::

    throttle=2@create,retry_after=1,drop=10%@get,fail=*03-*:InvalidSsml:Bad SSML,seed=7

Counts are consumed per emulator process and start again when faults are replaced.
"""

from __future__ import annotations

import fnmatch
import random
import threading
from dataclasses import dataclass, field

API_KINDS = frozenset({"create", "get", "list", "delete", "operation"})
BLOB_KINDS = frozenset({"download", "summary"})
ALL_KINDS = API_KINDS | BLOB_KINDS
ERROR_STATUSES = (500, 502, 503, 504)


@dataclass(frozen=True)
class Rate:
    """How often a request fault fires: the first ``count`` matches, or a ``fraction``."""

    count: int = 0
    fraction: float = 0.0
    kinds: frozenset[str] = API_KINDS

    def __post_init__(self) -> None:
        if self.count < 0 or not 0.0 <= self.fraction <= 1.0:
            raise ValueError("a fault rate needs a count >= 0 or a fraction in [0, 1]")
        unknown = self.kinds - ALL_KINDS
        if unknown:
            raise ValueError(f"unknown request kind(s): {', '.join(sorted(unknown))}")

    @classmethod
    def parse(cls, text: str) -> Rate:
        amount, _, kinds_text = text.partition("@")
        kinds = frozenset(k.strip() for k in kinds_text.split("/") if k.strip())
        amount = amount.strip()
        if amount.endswith("%"):
            return cls(fraction=float(amount[:-1]) / 100.0, kinds=kinds or API_KINDS)
        if "." in amount:
            return cls(fraction=float(amount), kinds=kinds or API_KINDS)
        return cls(count=int(amount), kinds=kinds or API_KINDS)


@dataclass(frozen=True)
class FailRule:
    """Jobs matching ``pattern`` end ``Failed`` with this error."""

    pattern: str
    code: str = "InternalServerError"
    message: str = "The synthesis failed (injected fault)."

    @classmethod
    def parse(cls, text: str) -> FailRule:
        pattern, _, rest = text.partition(":")
        code, _, message = rest.partition(":")
        if not pattern:
            raise ValueError("fail= needs a job glob, e.g. fail=*03-*:InvalidSsml")
        return cls(
            pattern=pattern,
            code=code or cls.code,
            message=message or f"The synthesis failed with {code or cls.code} (injected fault).",
        )


@dataclass(frozen=True)
class Faults:
    """The fault plan of an emulator; the empty default injects nothing."""

    throttle: Rate | None = None
    retry_after: float = 1.0
    error: Rate | None = None
    error_status: int = 500
    drop: Rate | None = None
    lose_create: int = 0
    lose_create_ids: tuple[str, ...] = ()
    stuck: tuple[str, ...] = ()
    fail: tuple[FailRule, ...] = ()
    truncate: int = 0
    expire_urls: int = 0
    seed: int = 0
    spec: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.error_status not in ERROR_STATUSES:
            raise ValueError(f"error_status must be one of {ERROR_STATUSES}")
        if self.retry_after < 0:
            raise ValueError("retry_after must not be negative")

    @classmethod
    def parse(cls, spec: str) -> Faults:
        """Parse a spec string (grammar in the module docstring); ``""`` means no faults."""
        values: dict[str, object] = {}
        stuck: list[str] = []
        fail: list[FailRule] = []
        lose_ids: list[str] = []
        for raw in spec.split(","):
            item = raw.strip()
            if not item:
                continue
            key, sep, value = item.partition("=")
            key, value = key.strip().lower(), value.strip()
            if not sep or not value:
                raise ValueError(f"fault item {item!r} is not KEY=VALUE")
            try:
                if key in ("throttle", "error", "drop"):
                    values[key] = Rate.parse(value)
                elif key in ("truncate", "expire_urls", "error_status", "seed"):
                    values[key] = int(value)
                elif key == "retry_after":
                    values[key] = float(value)
                elif key == "lose_create":
                    if value.isdigit():
                        values[key] = int(value)
                    else:
                        lose_ids.append(value)
                elif key == "stuck":
                    stuck.append(value)
                elif key == "fail":
                    fail.append(FailRule.parse(value))
                else:
                    raise ValueError(f"unknown fault {key!r}")
            except ValueError as exc:
                raise ValueError(f"bad fault item {item!r}: {exc}") from None
        return cls(
            stuck=tuple(stuck),
            fail=tuple(fail),
            lose_create_ids=tuple(lose_ids),
            spec=spec,
            **values,  # type: ignore[arg-type]
        )

    def is_stuck(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.stuck)

    def failure_for(self, name: str) -> FailRule | None:
        for rule in self.fail:
            if fnmatch.fnmatchcase(name, rule.pattern):
                return rule
        return None


class FaultInjector:
    """Decides, request by request, which fault of a :class:`Faults` plan fires.

    Thread-safe: handler threads share one injector; counts are consumed under a lock and
    fractions draw from one seeded generator so that a run is reproducible.
    """

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._lock = threading.Lock()
        self._random = random.Random(faults.seed)
        self._fired: dict[str, int] = {}
        self._lost: set[str] = set()

    def _fires(self, name: str, rate: Rate | None, kind: str) -> bool:
        if rate is None or kind not in rate.kinds:
            return False
        if rate.count:
            return self._take(name, rate.count)
        return rate.fraction > 0 and self._random.random() < rate.fraction

    def _take(self, name: str, limit: int) -> bool:
        used = self._fired.get(name, 0)
        if used >= limit:
            return False
        self._fired[name] = used + 1
        return True

    def request_fault(self, kind: str) -> str | None:
        """``"drop"``, ``"throttle"``, ``"error"`` or ``None`` for this request."""
        with self._lock:
            for name, rate in (
                ("drop", self.faults.drop),
                ("throttle", self.faults.throttle),
                ("error", self.faults.error),
            ):
                if self._fires(name, rate, kind):
                    return name
        return None

    def lose_create(self, name: str) -> bool:
        """Whether the response of this (successful) create is to be lost.

        A glob loses the first create of each matching name only, so that a client that
        re-submits (a preview client has no id to adopt) eventually gets its answer.
        """
        with self._lock:
            if name not in self._lost and any(
                fnmatch.fnmatchcase(name, p) for p in self.faults.lose_create_ids
            ):
                self._lost.add(name)
                return True
            return self._take("lose_create", self.faults.lose_create)

    def truncate_download(self) -> bool:
        with self._lock:
            return self._take("truncate", self.faults.truncate)

    def expire_urls(self) -> bool:
        with self._lock:
            return self._take("expire_urls", self.faults.expire_urls)

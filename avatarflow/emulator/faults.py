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

Hostile answers (a proxy's, or a bug's on the service side; the job itself is fine)::

    wrong_id=N             the next N creates are answered with another job's id
    bad_id=N               the next N creates are answered with an unreadable id
    endless_list=N         the next N list pages are empty, each with a fresh next link
    huge_body=RATE         answers (default @get) of huge_body_bytes with no length
    huge_body_bytes=N      their size (default 1 GiB), streamed, never built whole
    not_json=RATE          200 answers (default @get) that are an HTML page
    status_as=GLOB:VALUE   matching jobs report VALUE as their status ("lower": their
                           own status in lower case; anything else literally)
    no_size=1              job views leave out sizeInBytes/audioSize (as the service
                           does for jobs with a destination container)
    html_download=N        the next N downloads are a 200 text/html "502" page
    short_body=N           the next N downloads send half the file with a
                           Content-Length that says so

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


# A flat field list, alike in shape to config.EmulatorConfig: intended.
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
    wrong_id: int = 0
    bad_id: int = 0
    endless_list: int = 0
    huge_body: Rate | None = None
    huge_body_bytes: int = 1024**3
    not_json: Rate | None = None
    status_as: tuple[tuple[str, str], ...] = ()
    no_size: int = 0
    html_download: int = 0
    short_body: int = 0
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
        status_as: list[tuple[str, str]] = []
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
                elif key in ("huge_body", "not_json"):
                    rate = Rate.parse(value)
                    if "@" not in value:  # these answer reads: GETs unless told
                        rate = Rate(rate.count, rate.fraction, frozenset({"get"}))
                    values[key] = rate
                elif key in _COUNTS:
                    values[key] = int(value)
                elif key == "status_as":
                    pattern, sep, status = value.partition(":")
                    if not sep or not pattern or not status:
                        raise ValueError("status_as= needs GLOB:VALUE, e.g. status_as=*:Canceled")
                    status_as.append((pattern, status))
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
            status_as=tuple(status_as),
            spec=spec,
            **values,  # type: ignore[arg-type]
        )

    def is_stuck(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.stuck)

    def status_for(self, name: str, status: str) -> str:
        """The status a job named ``name`` is shown with (``status_as``)."""
        for pattern, shown in self.status_as:
            if fnmatch.fnmatchcase(name, pattern):
                return status.lower() if shown == "lower" else shown
        return status

    def failure_for(self, name: str) -> FailRule | None:
        for rule in self.fail:
            if fnmatch.fnmatchcase(name, rule.pattern):
                return rule
        return None


_COUNTS = frozenset(
    {
        "truncate",
        "expire_urls",
        "error_status",
        "seed",
        "wrong_id",
        "bad_id",
        "endless_list",
        "huge_body_bytes",
        "no_size",
        "html_download",
        "short_body",
    }
)


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

    def take(self, name: str) -> bool:
        """Whether the counted fault ``name`` (``wrong_id``, ``short_body``, …) fires now."""
        with self._lock:
            return self._take(name, getattr(self.faults, name))

    def answer_fault(self, kind: str) -> str | None:
        """``"huge_body"``, ``"not_json"`` or ``None`` for the answer of this request."""
        with self._lock:
            for name, rate in (
                ("huge_body", self.faults.huge_body),
                ("not_json", self.faults.not_json),
            ):
                if self._fires(name, rate, kind):
                    return name
        return None

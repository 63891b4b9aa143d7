"""Spacing creates so that a throttled service answers 429 rarely.

The service documents a create limit (2 per minute on S0) but neither how it counts nor
whether it holds for every resource, so the pace is learned from the throttle itself:
when a create is refused with "retry after W", the ``n`` creates admitted since the
previous refusal, the first at ``t0``, tell that the service admits about ``n`` creates
per ``now + W - t0`` seconds. Later creates are spaced by that interval (plus a margin
for the jitter between our clock and the service's), so a long run meets one 429 at the
start instead of one after every burst. The interval only grows within a run.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

_MARGIN = 0.15  # 15% slower than the learned limit: jitter must not cost a 429 each time


class CreatePacer:
    """Learns the create pace of one service from its 429s; creates ask it when to go."""

    def __init__(self, clock: Clock = time.monotonic, margin: float = _MARGIN) -> None:
        self.clock = clock
        self.margin = margin
        self.interval = 0.0
        """Seconds between two creates; 0 until the service has throttled once."""
        self.throttled_count = 0
        self._last: float | None = None  # when the last create was admitted
        self._first: float | None = None  # first admission since the last 429
        self._admitted = 0  # admissions since the last 429

    def delay(self) -> float:
        """Seconds to wait before the next create may leave."""
        if self._last is None or self.interval <= 0:
            return 0.0
        return max(0.0, self._last + self.interval - self.clock())

    async def wait(self, sleep: Sleep) -> None:
        delay = self.delay()
        if delay > 0:
            await sleep(delay)

    def admitted(self) -> None:
        now = self.clock()
        if self._first is None:
            self._first = now
        self._admitted += 1
        self._last = now

    def throttled(self, retry_after: float | None) -> None:
        now = self.clock()
        self.throttled_count += 1
        if self._first is not None and self._admitted:
            span = now + (retry_after or 0.0) - self._first
            learned = span / self._admitted * (1 + self.margin)
            self.interval = max(self.interval, learned)
        self._first = None
        self._admitted = 0

    def observe(self, status: int, retry_after: float | None) -> None:
        """Record the answer to a create: admitted (2xx), refused (429), or neither."""
        if status == 429:
            self.throttled(retry_after)
        elif 200 <= status < 300:
            self.admitted()

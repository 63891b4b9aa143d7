"""Spacing creates so that a throttled service answers 429 rarely.

The service documents a create limit (2 per minute on S0) but neither how it counts nor
whether it holds for every resource, so the limit is learned from the throttle itself:
when a create is refused with "retry after W", the ``n`` creates admitted before it, the
first at ``t0``, tell that the service admits ``n`` creates per ``now + W - t0`` seconds.
From then on a create leaves only when fewer than ``n`` were admitted within that window,
which is what a sliding-window throttle enforces: a long run meets one 429 at the start
and then goes as fast as the limit allows, instead of a 429 after every burst.

Admissions are timed when their answer arrives, after the service counted them, so our
window always starts a little later than the service's; a small margin covers a clock
that runs at another rate. A later 429 means the window was still too short by W: it
grows by that much. The learned limit holds for the client's lifetime (one run).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

_MARGIN = 0.02


class CreatePacer:
    """Learns the create limit of one service from its 429s; creates ask it when to go."""

    def __init__(self, clock: Clock = time.monotonic, margin: float = _MARGIN) -> None:
        self.clock = clock
        self.margin = margin
        self.limit: int | None = None
        """Creates admitted per ``window``; ``None`` until the service throttled once."""
        self.window = 0.0
        self.throttled_count = 0
        self._admitted: deque[float] = deque()  # answer times of the latest admissions

    def delay(self) -> float:
        """Seconds to wait before the next create may leave."""
        if self.limit is None or len(self._admitted) < self.limit:
            return 0.0
        return max(0.0, self._admitted[-self.limit] + self.window - self.clock())

    async def wait(self, sleep: Sleep) -> None:
        delay = self.delay()
        if delay > 0:
            await sleep(delay)

    def admitted(self) -> None:
        self._admitted.append(self.clock())
        if self.limit is not None:
            while len(self._admitted) > self.limit:
                self._admitted.popleft()

    def throttled(self, retry_after: float | None) -> None:
        now = self.clock()
        wait = retry_after or 0.0
        self.throttled_count += 1
        if self.limit is not None:
            self.window += wait * (1 + self.margin)
        elif self._admitted:
            self.limit = len(self._admitted)
            self.window = (now + wait - self._admitted[0]) * (1 + self.margin)

    def observe(self, status: int, retry_after: float | None) -> None:
        """Record the answer to a create: admitted (2xx), refused (429), or neither."""
        if status == 429:
            self.throttled(retry_after)
        elif 200 <= status < 300:
            self.admitted()

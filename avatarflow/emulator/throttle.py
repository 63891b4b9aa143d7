"""The documented create limit (2 requests per minute on S0) as a sliding window."""

from __future__ import annotations

import math
import threading
import time
from collections import deque


class CreateThrottle:
    """Admits ``limit`` creates per ``60 / time_scale`` seconds; ``limit=None`` admits all."""

    def __init__(self, limit: int | None, time_scale: float = 1.0) -> None:
        self.limit = limit
        self.period = 60.0 / time_scale
        self._lock = threading.Lock()
        self._admitted: deque[float] = deque()

    def admit(self, now: float | None = None) -> float | None:
        """``None`` if this create may go on, else the seconds until one will be admitted."""
        if self.limit is None:
            return None
        now = time.monotonic() if now is None else now
        with self._lock:
            while self._admitted and self._admitted[0] <= now - self.period:
                self._admitted.popleft()
            if len(self._admitted) < self.limit:
                self._admitted.append(now)
                return None
            return self._admitted[0] + self.period - now


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` is whole seconds (RFC 9110): round up, never below one."""
    return str(max(1, math.ceil(seconds)))

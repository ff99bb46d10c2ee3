"""The emulator's rate limit: a token bucket that says how long to wait once it is empty."""

from __future__ import annotations

import math
import threading

from .clock import Clock


class RateLimit:
    """``rate`` requests per second with bursts of ``burst`` (by default a tenth of a second's worth,
    at least one); no ``rate``: no limit."""

    def __init__(self, rate: float | None, burst: float | None, clock: Clock) -> None:
        self._clock = clock
        self._rate = rate
        self._burst = burst if burst is not None else (max(1.0, rate / 10) if rate else 0.0)
        self._tokens = self._burst
        self._refilled = clock.monotonic()
        self._lock = threading.Lock()

    def retry_after(self) -> int | None:
        """None when a request may go ahead now (and takes its token); else whole seconds to wait."""
        if not self._rate:
            return None
        with self._lock:
            now = self._clock.monotonic()
            self._tokens = min(self._burst, self._tokens + (now - self._refilled) * self._rate)
            self._refilled = now
            if self._tokens >= 1:
                self._tokens -= 1
                return None
            return max(1, math.ceil((1 - self._tokens) / self._rate))

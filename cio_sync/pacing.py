"""One pace for all workers: a shared pause after 429, and an optional cap on the request rate."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Cancelled(Exception):
    """Raised in a worker waiting for its turn when the run is being stopped."""


class Gate:
    """Where every request attempt waits for its turn.

    A workspace's rate limit applies to the workspace as a whole, so when one request is told to
    back off, every worker holds back until the pause is over instead of each discovering the
    limit on its own. With ``rate`` set, attempts are also spaced so that all workers together send
    at most ``rate`` per second. Waiting ends early when ``stop`` is set.
    """

    def __init__(
        self,
        rate: float | None = None,
        stop: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval = 1.0 / rate if rate else 0.0
        self._stop = stop if stop is not None else threading.Event()
        self._clock = clock
        self._lock = threading.Lock()
        self._resume_at = 0.0
        self._next_slot = 0.0

    @property
    def stopping(self) -> bool:
        """True once the run is being stopped."""
        return self._stop.is_set()

    def pause(self, seconds: float) -> None:
        """Hold every worker back for ``seconds`` from now (a longer pause already set stays)."""
        with self._lock:
            self._resume_at = max(self._resume_at, self._clock() + seconds)

    def wait_turn(self) -> None:
        """Block until this attempt may start; raise :class:`Cancelled` if the run stops first."""
        while True:
            with self._lock:
                now = self._clock()
                start = max(self._resume_at, self._next_slot if self._interval else now)
                if start <= now:
                    if self._interval:
                        self._next_slot = max(self._next_slot, now) + self._interval
                    break
            if self._stop.wait(start - now):
                raise Cancelled
        if self._stop.is_set():
            raise Cancelled

    def sleep(self, seconds: float) -> None:
        """Sleep for ``seconds`` unless the run stops first (then raise :class:`Cancelled`)."""
        if seconds > 0 and self._stop.wait(seconds):
            raise Cancelled

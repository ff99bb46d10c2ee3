"""The emulator's time: real by default. A test may give the emulator the client's own clock, so
that its rate limits, the times it records and its ``Retry-After`` dates agree with the client's."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """What the emulator asks of time (any clock of cio-sync's will do)."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary start; never goes backwards."""

    def wall(self) -> float:
        """Seconds since the epoch."""


class RealTime:
    """:func:`time.monotonic` and :func:`time.time`."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary start; never goes backwards."""
        return time.monotonic()

    def wall(self) -> float:
        """Seconds since the epoch."""
        return time.time()


REAL_TIME: Clock = RealTime()

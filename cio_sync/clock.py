"""The one source of time for a run: stamps, pacing and deadlines all ask it, so tests can drive it.

A run needs two kinds of time: *monotonic* seconds to measure waits and deadlines (never steps,
whatever the system clock does) and *wall-clock* seconds for the ``_timestamp`` each write
carries. Waiting goes through the clock too: :meth:`Clock.wait` returns early when an event is
set (a stop), so no wait is deaf to a signal. Imports nothing of cio-sync.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """What the engine, pacing and deadlines ask of time."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary start; never goes backwards."""

    def wall(self) -> float:
        """Seconds since the epoch, as the system clock says (it may step either way)."""

    def wait(self, event: threading.Event, seconds: float | None) -> bool:
        """Wait up to ``seconds`` (monotonic; None: no limit) or until ``event`` is set; True when
        it is set."""

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``, whatever happens meanwhile."""


class SystemClock:
    """The real clock: :func:`time.monotonic`, :func:`time.time`, :meth:`threading.Event.wait`."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary start; never goes backwards."""
        return time.monotonic()

    def wall(self) -> float:
        """Seconds since the epoch."""
        return time.time()

    def wait(self, event: threading.Event, seconds: float | None) -> bool:
        """Wait up to ``seconds`` (None: no limit) or until ``event`` is set; True when it is set."""
        return event.wait(None if seconds is None else max(0.0, seconds))

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``, whatever happens meanwhile."""
        time.sleep(max(0.0, seconds))


SYSTEM_CLOCK: Clock = SystemClock()

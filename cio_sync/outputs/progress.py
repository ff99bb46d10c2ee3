"""Where a run is, said on a timer: for a log that no progress bar reaches (cron, CI, ``docker logs``).

The engine hands each outcome over from the thread that runs the sync; a run whose requests are
all slow hands over none for a while, and must still be heard of. So a small daemon thread wakes
every interval and, under a lock, formats the counters the outcomes left: it never waits on the
run, so it cannot hold it up, and, being a daemon, it cannot keep the process alive.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from ..clock import SYSTEM_CLOCK, Clock
from ..outcome import RecordOutcome, Status

# How often a progress line is written where there is no progress bar (at least).
PROGRESS_INTERVAL = 10.0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A run's counts at one moment, for a progress line."""

    done: int
    total: int
    failed: int
    invalid: int
    # Records per second since the run started.
    rate: float


class Ticker:
    """Counts outcomes, and hands a :class:`Snapshot` to ``say`` every ``interval`` seconds of
    ``clock`` once started, whether outcomes come or not, until stopped.

    ``say`` is called with the lock held, from the timer's thread or from the one adding an
    outcome, so two lines never cross. Tests drive :meth:`tick` on a fake clock instead of
    starting the thread.
    """

    def __init__(self, say: Callable[[Snapshot], None], interval: float, clock: Clock = SYSTEM_CLOCK) -> None:
        self._say = say
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._counts = [0, 0, 0]  # done, failed, invalid
        self._total = 0
        self._started = 0.0
        self._next = 0.0
        self._running = False

    def start(self, total: int, thread: bool = True) -> None:
        """Count from now a run of ``total`` records; with ``thread``, say where it is on a timer."""
        with self._lock:
            self._total = total
            self._counts = [0, 0, 0]
            self._started = self._clock.monotonic()
            self._next = self._started + self._interval
            self._running = True
        # An interval of 0 (a line per outcome, as tests ask) needs no timer: a timer would spin.
        if thread and self._interval > 0:
            threading.Thread(target=self._wake, name="cio-sync-progress", daemon=True).start()

    def add(self, outcome: RecordOutcome) -> None:
        """Count one record's outcome; say where the run is if a line is due."""
        with self._lock:
            counts = self._counts
            counts[0] += outcome.span
            if outcome.status is Status.FAILED:
                counts[1] += 1
            elif outcome.status is Status.INVALID:
                counts[2] += 1
            self._say_if_due()

    def tick(self) -> None:
        """Say where the run is, if a line is due."""
        with self._lock:
            self._say_if_due()

    def _say_if_due(self) -> None:
        # Called with the lock held: one acquisition per outcome, on the run's own thread.
        now = self._clock.monotonic()
        if not self._running or now < self._next:
            return
        self._next = now + self._interval
        elapsed = now - self._started
        done, failed, invalid = self._counts
        self._say(Snapshot(done, self._total, failed, invalid, done / elapsed if elapsed > 0 else 0.0))

    def stop(self) -> None:
        """No more lines: the run is over or stopping. Safe in a signal handler (it takes no lock)."""
        self._running = False
        self._done.set()

    def _wake(self) -> None:
        while not self._done.is_set():
            with self._lock:
                due = self._next
            self._clock.wait(self._done, due - self._clock.monotonic())
            self.tick()


def progress_line(snapshot: Snapshot) -> str:
    """``progress: 12,000 of 50,000 records (24%) at 1,234 records/s; 3 failed, 5 invalid so far``."""
    share = f" ({100 * snapshot.done // snapshot.total}%)" if snapshot.total else ""
    return (
        f"progress: {snapshot.done:,} of {snapshot.total:,} records{share} at {snapshot.rate:,.0f} records/s; "
        f"{snapshot.failed:,} failed, {snapshot.invalid:,} invalid so far"
    )

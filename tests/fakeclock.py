"""A clock that moves only when told to, or when something waits on it: waits cost no real time.

Pass it wherever cio-sync takes a :class:`~cio_sync.clock.Clock`. A wait with a limit returns at
once: True if its event is set, else after moving time on by the limit. Every such wait is
recorded, so a test can check what was waited for without waiting for it.
"""

from __future__ import annotations

import os
import struct
import threading
import time
from pathlib import Path


class FakeClock:
    """Monotonic and wall-clock time that advance together, by :meth:`advance` or a wait; the wall
    clock alone may also be set, as a system clock is, by :meth:`step_wall`.

    Thread-safe: workers may wait on it side by side, but each wait moves the one shared time on,
    so with several waiting at once time runs faster than it would for real. Tests that count
    seconds have one waiter.

    With ``only_on``, only a wait on that event passes time (a run's stop event: the engine waits
    on it when nothing is in flight); any other wait blocks until its event is set, as if every
    answer came back in no time at all. A wait without a limit always blocks for its event.
    """

    def __init__(
        self, monotonic: float = 1000.0, wall: float = 1_700_000_000.0, only_on: threading.Event | None = None
    ) -> None:
        # A condition, though a lock would do here: SteppedClock wakes its waits through it.
        self._lock = threading.Condition()
        self._only_on = only_on
        self._monotonic = monotonic
        self._wall = wall
        # Every limited wait and sleep that ran its course: the seconds it asked for.
        self.waits: list[float] = []

    def monotonic(self) -> float:
        """The fake monotonic time."""
        with self._lock:
            return self._monotonic

    def wall(self) -> float:
        """The fake wall-clock time."""
        with self._lock:
            return self._wall

    def advance(self, seconds: float) -> None:
        """Move both times on by ``seconds``."""
        with self._lock:
            self._monotonic += max(0.0, seconds)
            self._wall += max(0.0, seconds)

    def advance_to(self, when: float) -> None:
        """Move monotonic time on to ``when`` (never back), and the wall clock with it."""
        with self._lock:
            step = max(0.0, when - self._monotonic)
            self._monotonic += step
            self._wall += step

    def step_wall(self, seconds: float) -> None:
        """Set the wall clock ``seconds`` on (or back, when negative), as an administrator or NTP
        would; monotonic time does not move."""
        with self._lock:
            self._wall += seconds

    def sleep(self, seconds: float) -> None:
        """Move time on by ``seconds``, recorded as a wait."""
        with self._lock:
            self.waits.append(seconds)
        self.advance(seconds)

    def wait(self, event: threading.Event, seconds: float | None) -> bool:
        """True at once if ``event`` is set; else time moves on by ``seconds`` (then the event is
        looked at again, as a real wait would on waking)."""
        if event.is_set():
            return True
        if seconds is None or (self._only_on is not None and event is not self._only_on):
            return event.wait()
        with self._lock:
            self.waits.append(seconds)
        self.advance(seconds)
        return event.is_set()

    @property
    def waited(self) -> float:
        """The seconds all waits so far have moved time on by."""
        with self._lock:
            return sum(max(0.0, s) for s in self.waits)


class SteppedClock(FakeClock):
    """A clock that moves only when a test steps it: a wait with a limit blocks, as a real one
    would, until the test has moved time past its end (or its event is set).

    Where :class:`FakeClock` lets every wait pass time at once (so that waits of several threads
    side by side add up), this one keeps them side by side, as real time does: stepping by one
    rate-cap turn lets through exactly the requests that turn allows, whichever worker asks. A
    test drives it from its own thread, one step at a time, checking what each step let happen.
    """

    # How often a blocked wait looks at its event (an event cannot wake a wait on another).
    _POLL = 0.02

    def __init__(self, monotonic: float = 0.0, wall: float = 1_700_000_000.0) -> None:
        super().__init__(monotonic, wall)

    def advance(self, seconds: float) -> None:
        """Move both times on by ``seconds``, waking every wait that has run its course."""
        super().advance(seconds)
        with self._lock:
            self._lock.notify_all()

    def wait(self, event: threading.Event, seconds: float | None) -> bool:
        """True once ``event`` is set; False once the test has stepped time ``seconds`` on."""
        if seconds is None:
            return event.wait()
        with self._lock:
            until = self._monotonic + seconds
            while not event.is_set() and self._monotonic < until:
                self._lock.wait(self._POLL)
        return event.is_set()

    def sleep(self, seconds: float) -> None:
        """Block until the test has stepped time ``seconds`` on."""
        self.wait(threading.Event(), seconds)


class Skipped:
    """The seconds of waiting the quick clocks of one test have skipped, shared by all of them: a
    run's stamps are never older than those of a quick run before it in the same test.

    With ``path``, every skip is also written there (8 bytes, one write), so that the runs of a
    process started meanwhile share it too (see ``tests/quick.py``): a process killed mid-run has
    left what it skipped up to its last wait. The processes sharing it take turns: each writes its
    own total, so two skipping at once would lose one's seconds.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.lock = threading.Lock()
        self.path = path
        self.seconds = _written(path)

    def add(self, seconds: float) -> None:
        """Skip ``seconds`` more."""
        with self.lock:
            self.seconds += max(0.0, seconds)
            if self.path is not None:
                # Written over in place, never truncated first: a kill between the two would
                # leave nothing to read.
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
                try:
                    os.pwrite(fd, struct.pack("d", self.seconds), 0)
                finally:
                    os.close(fd)

    def catch_up(self) -> None:
        """Take on what the runs of another process skipped, once it has ended (``path``)."""
        with self.lock:
            self.seconds = max(self.seconds, _written(self.path))


def _written(path: Path | None) -> float:
    """The seconds written at ``path`` (0 when nothing whole is written there yet)."""
    data = path.read_bytes() if path is not None and path.exists() else b""
    return float(struct.unpack("d", data)[0]) if len(data) == 8 else 0.0


class QuickClock:
    """Real time, except that what a run only waits out costs none: a sleep, and a wait on the
    run's stop event (made when nothing else can end it: a person's next second, a Retry-After, a
    backoff, a rate-limit turn), move this clock on at once by what they asked for.

    Every other wait is real (a worker's answer), so servers, sockets and threads run as they do
    for a user; only the time the run would have spent idle is skipped. Both its times move on
    together, so a stamp waited for is a stamp the clock has passed. Request deadlines are not
    timed by it (see ``_quick_time`` in ``tests/conftest.py``): skipped time is idle time, which a
    request in flight on another thread did not spend.

    Quick clocks sharing ``skipped`` (those of one test) never go back from one run to the next.
    A run in a process of its own stamps by real time, behind them, unless it was started quick
    too (``tests/quick.py``, as the model test starts its processes).

    The wall clock alone may be set back (or on), as a system clock is, by :meth:`step_wall`.
    """

    def __init__(self, stop: threading.Event, skipped: Skipped | None = None) -> None:
        self._stop = stop
        self._skipped = skipped if skipped is not None else Skipped()
        self._stepped = 0.0

    def monotonic(self) -> float:
        """Real monotonic time, plus every wait skipped so far."""
        return time.monotonic() + self._skipped.seconds

    def wall(self) -> float:
        """Real wall-clock time, plus every wait skipped so far and every step."""
        return time.time() + self._skipped.seconds + self._stepped

    def step_wall(self, seconds: float) -> None:
        """Set this clock's wall time ``seconds`` on (or back, when negative); monotonic time and
        the other quick clocks do not move."""
        self._stepped += seconds

    def sleep(self, seconds: float) -> None:
        """Move time on by ``seconds`` at once."""
        self._skipped.add(seconds)

    def wait(self, event: threading.Event, seconds: float | None) -> bool:
        """A wait on the stop event moves time on at once; any other wait waits for real."""
        if event.is_set():
            return True
        if seconds is None or event is not self._stop:
            return event.wait(None if seconds is None else max(0.0, seconds))
        self.sleep(seconds)
        return event.is_set()

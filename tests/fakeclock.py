"""A clock that moves only when told to, or when something waits on it: waits cost no real time.

Pass it wherever cio-sync takes a :class:`~cio_sync.clock.Clock`. ``wait(event, seconds)`` returns
at once: True if ``event`` is set, else after moving time on by ``seconds``. Every wait is
recorded, so a test can check what was waited for without waiting for it.
"""

from __future__ import annotations

import threading


class FakeClock:
    """Monotonic and wall-clock time that advance together, by :meth:`advance` or :meth:`wait`.

    Thread-safe: workers may wait on it side by side, but each wait moves the one shared time
    on, so with several waiting at once time runs faster than it would for real. Tests that
    count seconds have one waiter.
    """

    def __init__(self, monotonic: float = 1000.0, wall: float = 1_700_000_000.0) -> None:
        self._lock = threading.Lock()
        self._monotonic = monotonic
        self._offset = wall - monotonic
        # Every wait that ran its course: the seconds it asked for.
        self.waits: list[float] = []

    def monotonic(self) -> float:
        """The fake monotonic time."""
        with self._lock:
            return self._monotonic

    def wall(self) -> float:
        """The fake wall-clock time: it moves with the monotonic time."""
        with self._lock:
            return self._monotonic + self._offset

    def advance(self, seconds: float) -> None:
        """Move time on by ``seconds``."""
        with self._lock:
            self._monotonic += max(0.0, seconds)

    def advance_to(self, when: float) -> None:
        """Move monotonic time on to ``when`` (never back)."""
        with self._lock:
            self._monotonic = max(self._monotonic, when)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """True at once if ``event`` is set; else time moves on by ``seconds`` (then the event is
        looked at again, as a real wait would on waking)."""
        if event.is_set():
            return True
        with self._lock:
            self._monotonic += max(0.0, seconds)
            self.waits.append(seconds)
        return event.is_set()

    @property
    def waited(self) -> float:
        """The seconds all waits so far have moved time on by."""
        with self._lock:
            return sum(max(0.0, s) for s in self.waits)

"""A clock the test drives: time passes only when the test (or a wait) says so."""

from __future__ import annotations

import threading


class FakeClock:
    """Monotonic and wall time that move only on :meth:`advance` (both) and :meth:`step_wall`
    (the wall clock alone, as when the system clock is set). A wait with a limit passes that much
    time at once unless its event is already set; a wait without one blocks for the event.

    With ``only_on``, only a wait on that event passes time (a run's stop event: the engine waits
    on it when nothing is in flight); any other wait blocks until its event is set, as if every
    answer came back in no time at all."""

    def __init__(
        self, wall: float = 1_000_000.2, monotonic: float = 100.0, only_on: threading.Event | None = None
    ) -> None:
        self._only_on = only_on
        self._lock = threading.Lock()
        self._wall = wall
        self._monotonic = monotonic
        # Every limited wait's length, in order: what a real clock would have spent.
        self.waited: list[float] = []

    def monotonic(self) -> float:
        with self._lock:
            return self._monotonic

    def wall(self) -> float:
        with self._lock:
            return self._wall

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._monotonic += seconds
            self._wall += seconds

    def step_wall(self, seconds: float) -> None:
        with self._lock:
            self._wall += seconds

    def sleep(self, seconds: float) -> None:
        self.waited.append(seconds)
        self.advance(max(0.0, seconds))

    def wait(self, event: threading.Event, seconds: float | None) -> bool:
        if event.is_set():
            return True
        if seconds is None or (self._only_on is not None and event is not self._only_on):
            return event.wait()
        self.waited.append(seconds)
        self.advance(max(0.0, seconds))
        return event.is_set()

"""The ``_timestamp`` each request carries, and the updates waiting for the second theirs needs."""

from __future__ import annotations

import heapq
import time

from .mapping import PersonUpdate


class Clock:
    """Stamps requests so that a write that lands late cannot undo a later one.

    The API ignores an update stamped older than one it already applied to the person. A request
    whose attempt got no clear answer (a timeout, a dropped connection, a resend) may still be
    applied after its person's next update was sent; the next update is therefore stamped in a
    later second than any such attempt. Until that second begins it waits here (:meth:`hold`),
    and the run sends other people's updates meanwhile. A run that ends within the second of
    such an attempt waits it out (:meth:`finish`), so that the next run's stamps are later. Off
    when a mapping sets ``_timestamp`` itself.
    """

    def __init__(self, *, enabled: bool) -> None:
        self._enabled = enabled
        # Person key -> the second in which an attempt for them last went without a clear answer.
        self._unclear: dict[str, int] = {}
        # The latest second in ``_unclear``: once the clock is past it, every entry is past too.
        self._newest = 0
        # Updates held for a later second: (when it begins, file index, update), soonest first.
        self._held: list[tuple[float, int, PersonUpdate]] = []

    def unclear(self, key: str) -> None:
        """An attempt for ``key`` got no clear answer: it may land at any time from now."""
        if self._enabled:
            now = int(time.time())
            if now > self._newest:
                # Every attempt remembered is of an earlier second, one no update waits for any
                # more: forgotten, so that memory holds one second's attempts, not the run's.
                self._unclear.clear()
                self._newest = now
            self._unclear[key] = now

    def hold(self, update: PersonUpdate) -> bool:
        """True when ``update`` must wait for a later second: it is then kept until :meth:`due`."""
        after = self._unclear.get(update.key)
        if after is None or time.time() >= after + 1:
            return False
        heapq.heappush(self._held, (after + 1.0, update.index, update))
        return True

    def due(self) -> PersonUpdate | None:
        """A held update whose second has begun (taken out), or None."""
        if self._held and self._held[0][0] <= time.time():
            return heapq.heappop(self._held)[2]
        return None

    def next_due(self) -> float | None:
        """Seconds until the soonest held update is due (0 when it is); None when none is held."""
        return max(0.0, self._held[0][0] - time.time()) if self._held else None

    def drain(self) -> list[PersonUpdate]:
        """Every held update, in file order, for a run that stops; none is held after."""
        held = [update for _, _, update in sorted(self._held)]
        self._held.clear()
        return held

    def stamp(self, key: str) -> int | None:
        """The stamp for ``key``'s next request: now, and later than any unclear attempt of theirs
        (waiting for the clock if it is asked before the update would be due)."""
        if not self._enabled:
            return None
        after = self._unclear.pop(key, None)
        if after is not None:
            self._wait_past(after)
        return int(time.time())

    def finish(self) -> None:
        """At the end of a run: let the second of the last unclear attempt pass."""
        if self._unclear:
            self._wait_past(self._newest)

    @staticmethod
    def _wait_past(second: int) -> None:
        # Not cut short by a stop: a stamp in the same second as the late write would lose to it.
        while (now := time.time()) < second + 1:
            time.sleep(second + 1 - now)

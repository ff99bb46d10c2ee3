"""The ``_timestamp`` each write carries: later for a person than any write of theirs that may land late.

The API ignores an update stamped older than one it already applied to the person. So a write
whose attempt went without a clear answer (a timeout, a dropped connection, a resend, a 5xx:
any of them may still be applied, late) must be followed by the person's next write in a
*later* second, or the late write can undo it.

Stamps are seconds of the wall clock, but never go backwards: each is at least the highest stamp
issued so far (and, with ``--state``, at least one more than the highest any earlier run may have
issued, which the ledger keeps). A wall clock stepped back therefore neither stamps a write older
than the one before it nor makes the run wait for the lost seconds to come round again.

A person whose write went unclear waits here, in monotonic time, until the second after that
write's has begun (at most one second); meanwhile the run sends other people's writes.
"""

from __future__ import annotations

from collections.abc import Callable

from ..clock import Clock

# The longest a person waits for the second after an unclear write: one second of monotonic
# time, whatever the wall clock does meanwhile.
_SECOND = 1.0


class Stamps:
    """Issues the stamps of one run, on ``clock``; ``floor`` is the lowest stamp it may issue.

    ``persist`` (with a ledger) is told each new highest stamp before it is used, so that a run
    killed at any instant leaves the next run a floor above every stamp it sent. Disabled (every
    stamp None) when a mapping sets ``_timestamp`` itself.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        enabled: bool,
        floor: int = 0,
        persist: Callable[[int], None] | None = None,
    ) -> None:
        self._clock = clock
        self.enabled = enabled
        # The lowest stamp the next write may carry: the highest issued so far, or the floor.
        self._high = floor
        self._persisted = floor - 1
        self._persist = persist
        # Monotonic time at which the latest unclear write's second is surely over.
        self._settled_at = 0.0

    def issue(self, after: int | None = None) -> int | None:
        """The stamp for a write now: the wall clock's second, but never below an earlier stamp,
        and above ``after`` (the stamp of the person's unclear write, if any)."""
        if not self.enabled:
            return None
        stamp = max(int(self._clock.wall()), self._high, -1 if after is None else after + 1)
        if stamp > self._persisted and self._persist is not None:
            # Written ahead of use, so that the next run's floor covers this stamp.
            self._persist(stamp)
            self._persisted = stamp
        self._high = stamp
        return stamp

    def floor(self) -> int | None:
        """The lowest stamp a write made now would carry (None when stamps are off): a person whose
        unclear write was stamped below it needs nothing more to be stamped later."""
        if not self.enabled:
            return None
        return max(int(self._clock.wall()), self._high)

    @property
    def high(self) -> int | None:
        """The highest stamp issued so far (None while disabled)."""
        return self._high if self.enabled else None

    def unclear(self) -> tuple[int, float] | None:
        """A write went unclear: the stamp the person's next write must exceed, and the monotonic
        time until which it waits (when the wall clock will have passed that stamp, one second at
        the most). None when stamps are off."""
        if not self.enabled:
            return None
        now = self._clock.monotonic()
        wait = min(_SECOND, max(0.0, self._high + 1 - self._clock.wall()))
        self._settled_at = max(self._settled_at, now + wait)
        return self._high, now + wait

    def finish(self) -> None:
        """At the end of a run: let the second of the last unclear write pass, so that a next run
        without a ledger (which keeps the floor) stamps later. At most a second; not cut short by
        a stop, since a stamp in the same second as the late write would lose to it."""
        left = self._settled_at - self._clock.monotonic()
        if left > 0:
            self._clock.sleep(left)

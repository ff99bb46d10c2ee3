"""One pace for all workers: a shared pause after 429, an optional rate cap, and a learned rate.

The workspace's rate limit applies to the workspace as a whole, so the workers share one gate.
When the workspace answers 429 every worker holds back until the pause is over, and from then on
the gate paces all workers together at a rate it learns from the workspace's answers, the way TCP
finds the capacity of a link: it starts from what the workspace accepted so far, doubles while
nothing is refused ("slow start"), then creeps upwards and backs off slightly at each refusal.
Each 429 costs every worker a whole ``Retry-After`` pause, so after a refusal the gate holds its
rate for a while before probing again.

Only a refusal that follows accepted requests says anything about the rate. When the workspace
refuses everything (a burst of 429s at the start of a run, or an outage answered with 429) the
gate pauses everyone but learns nothing: a rate measured from nothing accepted would start at the
floor, and every further refusal would push it down again, long after the burst is over.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..clock import SYSTEM_CLOCK, Clock

# The learned rate never falls below this many requests per second.
MIN_RATE = 1.0
# Slow start: the rate doubles every SLOW_START_PERIOD seconds without a refusal. Later growth
# steps come every GROWTH_PERIOD.
SLOW_START_FACTOR = 2.0
SLOW_START_PERIOD = 0.5
GROWTH_PERIOD = 1.0
# After slow start: +5% a period, or after a refusal first a hold, then +0.5% a period.
CREEP_FACTOR = 1.05
CAREFUL_FACTOR = 1.005
HOLD_AFTER_REFUSAL = 30.0
# A refusal while creeping takes the rate down by this factor. While refusals are rare (under
# RARE_REFUSALS of the requests answered since the last cut), not below FLOOR_SHARE of the best
# rate the workspace accepted over a whole window of BEST_WINDOW seconds: refusals that come
# whatever the pace (a gateway shedding a share of the requests it gets) keep coming as the rate
# falls, and each holds the growth back; without the floor, 2% of requests refused at random took
# a run from 150 requests a second to 9 in five minutes, on its way to MIN_RATE. A rate above the
# workspace's limit (a burst allowance spent, or a limit lowered mid-run) is refused far more
# often than that, and is cut without a floor.
BACK_OFF_FACTOR = 0.97
FLOOR_SHARE = 0.5
BEST_WINDOW = 5.0
RARE_REFUSALS = 0.1
# Requests are scarce once the gate let this share of its rate's worth through within a window of
# SCARCE_WINDOW seconds, or the workspace refused one for its rate. Half, not all: requests do not
# come evenly (a batch transport sends one each time an answer frees room), so at half the rate
# some already wait for their slot, and a faster machine or a burst would find the rate binding.
# A short window, so that the sign comes after a handful of requests rather than a second's worth
# (a hundred small batches at 100 a second). A batch transport then fills its batches rather than
# spend requests on small ones (see :mod:`cio_sync.engine.packer`). Full batches need fewer
# requests, so the rate stops binding because of them: the sign holds SCARCE_HOLD seconds after
# it was last seen, before small batches are tried again.
SCARCE_SHARE = 0.5
SCARCE_WINDOW = 0.25
SCARCE_HOLD = 30.0


# The longest a wait goes without looking at the clock for a stall.
_SLICE = 1.0


class Cancelled(Exception):
    """Raised in a worker waiting for its turn when the run is being stopped."""


class LearnedRate:
    """The rate the workspace allows, learned from its refusals: none until the first refusal that
    follows accepted requests, then slow start, creeping upwards, and backing off at refusals.

    Not locked: the :class:`Gate` that holds it calls it under its own lock.
    """

    def __init__(self, now: float) -> None:
        # None until the first refusal, when there is nothing to learn from.
        self.value: float | None = None
        # Whether pacing made anyone wait since the rate last grew: an idle limit is not raised.
        self.constrained = False
        self._started_at = now
        self._successes = 0
        # Requests accepted when the rate was last set (or when the first rate began to be
        # measured): a refusal with none accepted since then carries no news about the rate.
        self._successes_at_cut = 0
        self._last_good: float | None = None
        self._slow_start = True
        self._grow_at = 0.0
        self._growth = SLOW_START_FACTOR
        self._period = SLOW_START_PERIOD
        self._last_cut = float("-inf")
        # Refusals counted, and their count when the rate was last set.
        self._refusals = 0
        self._refusals_at_cut = 0
        # The best rate accepted over a whole window, and the window being counted.
        self._best = 0.0
        self._window_start = now
        self._window_successes = 0

    def accepted(self, now: float) -> None:
        """Count one request the workspace accepted at ``now``."""
        self._successes += 1
        if now - self._window_start >= BEST_WINDOW:
            # Pauses within the window count in its length: the rate measured is never too high.
            self._best = max(self._best, self._window_successes / (now - self._window_start))
            self._window_start, self._window_successes = now, 0
        self._window_successes += 1

    def refused(self, now: float, seconds: float, resume_at: float) -> None:
        """A refusal at ``now`` asking for a pause of ``seconds``; everyone resumes at ``resume_at``."""
        self._refusals += 1
        # Requests already in flight are refused together: that is one signal, not many.
        if now - self._last_cut < max(seconds, GROWTH_PERIOD):
            return
        accepted = self._successes - self._successes_at_cut
        if accepted == 0:
            # Refused whatever the pace: wait, and measure the first rate from the end of
            # this pause, not from a time when nothing could get through.
            if self.value is None:
                self._started_at = resume_at
            return
        refused = self._refusals - self._refusals_at_cut
        self._last_cut = now
        self._successes_at_cut, self._refusals_at_cut = self._successes, self._refusals
        if self.value is None:
            elapsed = max(now - self._started_at, seconds, GROWTH_PERIOD)
            self.value = max(MIN_RATE, accepted / elapsed)
            self._growth = SLOW_START_FACTOR
            self._period = SLOW_START_PERIOD
            self._grow_at = now + seconds + SLOW_START_PERIOD
        elif self._slow_start:
            # Doubling overshot: go back to the last rate that was not refused and creep.
            self._slow_start = False
            self.value = max(MIN_RATE, self._last_good or self.value / SLOW_START_FACTOR)
            self._growth = CREEP_FACTOR
            self._period = GROWTH_PERIOD
            self._grow_at = now + seconds + GROWTH_PERIOD
        else:
            rare = refused < RARE_REFUSALS * (refused + accepted)
            floor = min(self.value, FLOOR_SHARE * self._best) if rare else 0.0
            self.value = max(MIN_RATE, floor, self.value * BACK_OFF_FACTOR)
            self._growth = CAREFUL_FACTOR
            self._grow_at = now + seconds + HOLD_AFTER_REFUSAL
        self.constrained = False

    def grow(self, now: float) -> None:
        """Raise the rate for every growth period up to ``now`` in which pacing made anyone wait."""
        while self.value is not None and now >= self._grow_at:
            if self.constrained:
                self._last_good = self.value
                self.value *= self._growth
                self.constrained = False
            self._grow_at += self._period


class Gate:
    """Where every request attempt waits for its turn.

    ``rate`` caps attempts per second for all workers together (the user's ``rateLimit``).
    :meth:`throttled` pauses everyone and lowers the learned rate; :meth:`succeeded` counts what
    the workspace accepted. Waiting ends early, with :class:`Cancelled`, when ``stop`` is set.
    Every reading of time and every wait goes through ``clock``.
    """

    def __init__(
        self,
        rate: float | None = None,
        stop: threading.Event | None = None,
        clock: Clock = SYSTEM_CLOCK,
        patience: float | None = None,
        on_stall: Callable[[], None] | None = None,
    ) -> None:
        self._cap = rate
        # With ``patience``: when no request has made progress (a 2xx, or an answer that is not
        # 429 or 5xx) for that long, ``on_stall`` is called once, from a waiting worker.
        self._patience = patience
        self._on_stall = on_stall
        self._progress_at = clock.monotonic()
        self._stalled = False
        self._stop = stop if stop is not None else threading.Event()
        self._clock = clock
        self._lock = threading.Lock()
        self._resume_at = 0.0
        self._next_slot = 0.0
        self._learned = LearnedRate(clock.monotonic())
        # Attempts let through in the window ending at ``_window_end``, and when requests were
        # last seen to be scarce.
        self._window_end = float("-inf")
        self._window_count = 0
        self._scarce_at = float("-inf")
        # Resends made: attempts after a request's first, by any worker.
        self.resends = 0

    @property
    def clock(self) -> Clock:
        """The clock every wait at this gate goes by."""
        return self._clock

    @property
    def rate(self) -> float | None:
        """The attempts per second now allowed, or None when nothing limits them."""
        with self._lock:
            return self._limit()

    def _limit(self) -> float | None:
        limits = [r for r in (self._cap, self._learned.value) if r]
        return min(limits) if limits else None

    def succeeded(self) -> None:
        """Count one request the workspace accepted."""
        with self._lock:
            self._progress_at = self._clock.monotonic()
            self._learned.accepted(self._progress_at)

    def resending(self) -> None:
        """A resend is about to go (its wait is over)."""
        with self._lock:
            self.resends += 1

    def answered(self) -> None:
        """A request got an answer that settles it, though not a 2xx (a 400, say): progress."""
        with self._lock:
            self._progress_at = self._clock.monotonic()

    def _check_progress(self, now: float) -> None:
        if self._patience is None or self._stalled or now - self._progress_at <= self._patience:
            return
        self._stalled = True
        if self._on_stall is not None:
            self._on_stall()

    def throttled(self, seconds: float) -> None:
        """The workspace refused a request for its rate: pause everyone and lower the rate."""
        with self._lock:
            now = self._clock.monotonic()
            self._resume_at = max(self._resume_at, now + seconds)
            self._learned.refused(now, seconds, self._resume_at)
            self._scarce_at = now

    @property
    def scarce(self) -> bool:
        """True when requests are what is scarce: the rate bound, or the workspace refused one for
        its rate, within the last :data:`SCARCE_HOLD` seconds."""
        with self._lock:
            return self._clock.monotonic() - self._scarce_at < SCARCE_HOLD

    def _count_through(self, now: float, limit: float) -> None:
        """One attempt let through at ``now`` under ``limit``: half the limit's worth within a
        window means the rate binds."""
        if now >= self._window_end:
            self._window_end, self._window_count = now + SCARCE_WINDOW, 0
        self._window_count += 1
        if self._window_count >= SCARCE_SHARE * limit * SCARCE_WINDOW:
            self._scarce_at = now

    def wait_turn(self) -> None:
        """Block until this attempt may start; raise :class:`Cancelled` if the run stops first."""
        while True:
            with self._lock:
                now = self._clock.monotonic()
                self._check_progress(now)
                self._learned.grow(now)
                limit = self._limit()
                start = max(self._resume_at, self._next_slot if limit else now)
                if start <= now:
                    if limit:
                        self._next_slot = max(self._next_slot, now) + 1.0 / limit
                        self._count_through(now, limit)
                    break
                if limit and self._next_slot > now:
                    self._learned.constrained = True
            # In slices, so that a long pause still notices a stall.
            if self._clock.wait(self._stop, min(start - now, _SLICE)):
                raise Cancelled
        if self._stop.is_set():
            raise Cancelled

    def sleep(self, seconds: float) -> None:
        """Sleep for ``seconds`` unless the run stops first (then raise :class:`Cancelled`)."""
        until = self._clock.monotonic() + seconds
        while (left := until - self._clock.monotonic()) > 0:
            if self._clock.wait(self._stop, min(left, _SLICE)):
                raise Cancelled
            with self._lock:
                self._check_progress(self._clock.monotonic())

"""Resends through urllib3's ``Retry``, paced by the shared gate.

urllib3 drives the resends of a request with a ``Retry`` object: after a failed attempt the
connection pool calls ``increment`` (which builds the next ``Retry`` through ``new``) and then
``sleep``. :class:`PacedRetry` overrides exactly those three, plus ``get_retry_after``: all four
are public methods in urllib3's API reference, as are the ``history``, ``status``,
``backoff_factor``, ``backoff_max`` and ``respect_retry_after_header`` settings it reads. It
leans on one behaviour beyond their signatures: ``increment`` spends one of ``status`` per
answer in the forcelist. All of that holds across urllib3 2 (cio-sync supports urllib3 2 from the
floor in ``pyproject.toml``, not 3); ``tests/test_retry.py`` checks each hook against the urllib3
that is installed. What to wait is decided by plain functions (:func:`parse_retry_after`,
:func:`backoff`) that know nothing of urllib3.
"""

from __future__ import annotations

import email.utils
import math
import random
from types import TracebackType
from typing import Any

from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from ..clock import SYSTEM_CLOCK, Clock
from .pacing import Cancelled, Gate

# Answers whose Retry-After is honoured. urllib3 also honours it on 413, but a body that is too
# large stays too large.
RETRY_AFTER_STATUSES = frozenset({429, 503})


def parse_retry_after(value: str, cap: float, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (seconds or an HTTP date), capped at ``cap``.

    None for anything malformed or negative: the caller falls back to its own backoff rather
    than failing the request. A date is measured from ``now`` (wall-clock seconds; default: the
    system clock's).
    """
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
            if when.tzinfo is None:
                return None
            seconds = max(0.0, when.timestamp() - (SYSTEM_CLOCK.wall() if now is None else now))
        except (TypeError, ValueError, IndexError, OverflowError):  # a year beyond any date's, say
            return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, cap)


def backoff(factor: float, cap: float, resends: int) -> float:
    """Jittered exponential backoff before resend number ``resends`` ("equal jitter")."""
    if factor <= 0:
        return 0.0
    base = min(cap, factor * 2 ** max(0, resends - 1))
    return float(base / 2 + random.random() * base / 2)


class PacedRetry(Retry):
    """urllib3's Retry, waiting through the shared :class:`Gate` instead of sleeping alone.

    A 429 (or a 503 with Retry-After) pauses every worker, since the limit is the workspace's.
    A malformed ``Retry-After`` falls back to jittered exponential backoff instead of raising.
    Resends after 429 first use their own budget, ``rate_limited``. Time (the resend window, a
    Retry-After date) is read from ``clock``, by default the gate's.
    """

    RETRY_AFTER_STATUS_CODES = RETRY_AFTER_STATUSES

    def __init__(
        self,
        *args: Any,
        gate: Gate | None = None,
        rate_limited: int = 0,
        retry_after_cap: float = 300.0,
        resend_window: float = 300.0,
        started: float | None = None,
        clock: Clock | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        # No resend starts later than ``resend_window`` seconds after the request first failed
        # (``started``): a record cannot be resent for ever, whatever the budgets say.
        self.resend_window = resend_window
        self.started = started
        self.gate = gate if gate is not None else Gate()
        self.clock = clock if clock is not None else self.gate.clock
        # Resends after 429 left; they do not use up the ``status`` budget.
        self.rate_limited = rate_limited
        # A Retry-After longer than this is shortened to it.
        self.retry_after_cap = retry_after_cap

    def new(self, **kwargs: Any) -> PacedRetry:
        """urllib3 builds a fresh Retry per attempt from a fixed list of fields: carry ours too."""
        kwargs.setdefault("gate", self.gate)
        kwargs.setdefault("rate_limited", self.rate_limited)
        kwargs.setdefault("retry_after_cap", self.retry_after_cap)
        kwargs.setdefault("resend_window", self.resend_window)
        kwargs.setdefault("started", self.started)
        kwargs.setdefault("clock", self.clock)
        return super().new(**kwargs)

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: TracebackType | None = None,
    ) -> PacedRetry:
        """Count a 429 against its own budget, every other failure as urllib3 does; and give up
        once the resend window is over (urllib3 then raises, or returns the last answer)."""
        if self.started is None:
            first = self.new(started=self.clock.monotonic())
            return first.increment(method, url, response, error, _pool, _stacktrace)
        if self.clock.monotonic() - self.started > self.resend_window:
            return Retry.increment(self.new(total=0), method, url, response, error, _pool, _stacktrace)
        if response is not None and response.status == 429 and self.rate_limited > 0 and self.status is not None:
            # One more of ``status`` for increment to spend on this answer: the 429 is paid for
            # from ``rate_limited`` instead (tests/test_retry.py checks what increment spends).
            spared = self.new(status=self.status + 1, rate_limited=self.rate_limited - 1)
            return Retry.increment(spared, method, url, response, error, _pool, _stacktrace)
        return super().increment(method, url, response, error, _pool, _stacktrace)

    def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
        """The Retry-After wait in seconds, or None when absent or malformed (never raises)."""
        value = response.headers.get("Retry-After")
        return None if value is None else parse_retry_after(value, self.retry_after_cap, self.clock.wall())

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        """Wait before the next attempt: through the shared gate, and for everyone after a 429."""
        delay = self.get_retry_after(response) if response is not None and self.respect_retry_after_header else None
        shared = response is not None and (response.status == 429 or (response.status == 503 and delay is not None))
        if delay is None:
            delay = backoff(self.backoff_factor, self.backoff_max, len(self.history))
        try:
            if shared:
                self.gate.throttled(delay)
            else:
                self.gate.sleep(delay)
            self.gate.wait_turn()
            self.gate.resending()
        except Cancelled:
            last = f"HTTP {response.status}" if response is not None else "a connection error"
            raise Cancelled(f"the run stopped while waiting to resend (last answer: {last})") from None

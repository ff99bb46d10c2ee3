"""Counting what became of each record into the result of a run."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ..outcome import DONE, RecordOutcome, Status, StopReason
from .causes import HELD_BEHIND_INVALID, CauseCount, Causes
from .mirror import MirrorResult


@dataclass(frozen=True)
class SyncResult:
    """The counts of a finished (or stopped) run, and the first records that failed or were invalid."""

    total: int
    synced: int
    failed: int
    invalid: int
    not_attempted: int
    elapsed: float
    retries: int
    statuses: dict[int, int]
    problems: tuple[RecordOutcome, ...]
    # How many more records failed or were invalid beyond those kept in ``problems``.
    more_problems: int = 0
    # Why the run stopped before the end of the file, or None when it did not.
    stopped: StopReason | None = None
    region: str | None = None
    unchanged: int = 0
    # HTTP requests sent, resends and the credentials check included. ``statuses`` then counts
    # every answer received by status, and ``retries`` every resend made, as they happened.
    requests: int = 0
    # For a run that stopped on a problem of its own (the data file changed, the ledger could not
    # be written): the problem, in words for the user.
    error: str | None = None
    # Problems grouped by cause, the most frequent first (see :mod:`cio_sync.engine.causes`).
    causes: tuple[CauseCount, ...] = ()
    # Of ``not_attempted``: the records held back behind an invalid record of the same person.
    held_behind_invalid: int = 0
    # With whenRemoved other than keep: the people who left the file, and what became of them.
    mirror: MirrorResult | None = None
    # The people cio-sync had suppressed who came back in this file: unsuppressed, then written.
    unsuppressed: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every record was synced (or was already in the workspace, per the ledger)."""
        return self.synced + self.unchanged == self.total and self.stopped is None

    @property
    def only_invalid(self) -> bool:
        """True when the run went to its end and its only problems are invalid records (and the
        records of the same people held back behind them): nothing failed, nothing stopped it."""
        return self.stopped is None and self.failed == 0 and self.not_attempted == self.held_behind_invalid

    @property
    def rate(self) -> float:
        """Records handled per second."""
        handled = self.synced + self.unchanged + self.failed + self.invalid
        return handled / self.elapsed if self.elapsed > 0 else 0.0


_LISTED = frozenset({Status.FAILED, Status.INVALID})


class Tally:
    """Counts outcomes as they arrive (from one thread) and keeps the first few problems."""

    def __init__(self, keep: int = 20) -> None:
        self.counts: Counter[Status] = Counter()
        self._keep = keep
        self._problems: list[RecordOutcome] = []
        self._more = 0
        self.causes = Causes()

    def add(self, outcome: RecordOutcome) -> None:
        """Count one record's outcome."""
        status = outcome.status
        self.counts[status] += outcome.span
        if status in DONE:
            return
        self.causes.add(outcome)
        # Records left unsent by a stop are counted, not listed: the summary says how many.
        if status in _LISTED:
            if len(self._problems) < self._keep:
                self._problems.append(outcome)
            else:
                self._more += 1

    @property
    def done(self) -> int:
        """Records counted so far."""
        return sum(self.counts.values())

    @property
    def problems(self) -> tuple[RecordOutcome, ...]:
        """The first problems kept, in file order."""
        return tuple(sorted(self._problems, key=lambda o: o.index))

    @property
    def more_problems(self) -> int:
        """How many problems were counted beyond those kept."""
        return self._more

    def result(
        self,
        elapsed: float,
        stopped: StopReason | None,
        region: str | None,
        *,
        requests: int,
        statuses: dict[int, int],
        retries: int,
        error: str | None = None,
    ) -> SyncResult:
        """The totals so far as a :class:`SyncResult`, with the requests, answers by status and
        resends as they went over the wire (not as the records ended)."""
        return SyncResult(
            total=self.done,
            synced=self.counts[Status.SYNCED],
            failed=self.counts[Status.FAILED],
            invalid=self.counts[Status.INVALID],
            not_attempted=self.counts[Status.NOT_ATTEMPTED],
            elapsed=elapsed,
            retries=retries,
            statuses=dict(sorted(statuses.items())),
            problems=self.problems,
            more_problems=self._more,
            stopped=stopped,
            region=region,
            unchanged=self.counts[Status.UNCHANGED],
            requests=requests,
            error=error,
            causes=self.causes.ranked(),
            held_behind_invalid=self.causes.count(Status.NOT_ATTEMPTED, HELD_BEHIND_INVALID),
        )

"""Counting what became of each record, and the summary a person reads at the end."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum


class Status(str, Enum):
    """What became of one record of the data file."""

    SYNCED = "synced"
    # Not sent: the ledger (--state) shows the workspace already has exactly this body.
    UNCHANGED = "unchanged"
    FAILED = "failed"
    INVALID = "invalid"
    NOT_ATTEMPTED = "not_attempted"


@dataclass(frozen=True, slots=True)
class RecordOutcome:
    """One record's fate: its position in the file, its id when it has one, and why."""

    index: int
    status: Status
    person_id: str | None = None
    reason: str | None = None
    http_status: int | None = None
    retries: int = 0
    record: object = field(default=None, repr=False, compare=False)

    def describe(self) -> str:
        """One line for a person: ``record 17 (id "a/b"): failed: HTTP 400: ...``."""
        who = f"record {self.index}" + (f' (id "{self.person_id}")' if self.person_id is not None else "")
        label = self.status.value.replace("_", " ")
        return f"{who}: {label}: {self.reason}" if self.reason else f"{who}: {label}"


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
    # Why the run stopped before the end of the file: None, "credentials", "interrupted", ...
    stopped: str | None = None
    region: str | None = None
    unchanged: int = 0

    @property
    def ok(self) -> bool:
        """True when every record was synced (or was already in the workspace, per the ledger)."""
        return self.synced + self.unchanged == self.total and self.stopped is None

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
        self.statuses: Counter[int] = Counter()
        self.retries = 0
        self._keep = keep
        self._problems: list[RecordOutcome] = []
        self._more = 0

    def add(self, outcome: RecordOutcome) -> None:
        """Count one record's outcome."""
        self.counts[outcome.status] += 1
        self.retries += outcome.retries
        if outcome.http_status is not None:
            self.statuses[outcome.http_status] += 1
        # Records left unsent by a stop are counted, not listed: the summary says how many.
        if outcome.status in _LISTED:
            if len(self._problems) < self._keep:
                self._problems.append(outcome)
            else:
                self._more += 1

    @property
    def done(self) -> int:
        """Records counted so far."""
        return sum(self.counts.values())

    def result(self, elapsed: float, stopped: str | None = None, region: str | None = None) -> SyncResult:
        """The totals so far as a :class:`SyncResult`."""
        return SyncResult(
            total=self.done,
            synced=self.counts[Status.SYNCED],
            failed=self.counts[Status.FAILED],
            invalid=self.counts[Status.INVALID],
            not_attempted=self.counts[Status.NOT_ATTEMPTED],
            elapsed=elapsed,
            retries=self.retries,
            statuses=dict(sorted(self.statuses.items())),
            problems=tuple(sorted(self._problems, key=lambda o: o.index)),
            more_problems=self._more,
            stopped=stopped,
            region=region,
            unchanged=self.counts[Status.UNCHANGED],
        )


def summary_line(result: SyncResult) -> str:
    """The last line of a run: counts, elapsed time and rate."""
    parts = [f"{result.synced:,} synced"]
    if result.unchanged:
        parts.append(f"{result.unchanged:,} unchanged")
    parts += [f"{result.failed:,} failed", f"{result.invalid:,} invalid"]
    if result.not_attempted:
        parts.append(f"{result.not_attempted:,} not attempted")
    records = "record" if result.total == 1 else "records"
    text = f"{result.total:,} {records}: {', '.join(parts)} in {result.elapsed:.1f}s ({result.rate:,.0f} records/s)"
    if result.retries:
        text += f"; {result.retries:,} resends"
    return text


def problem_lines(problems: Sequence[RecordOutcome], more_problems: int, limit: int = 20) -> list[str]:
    """A line per record in ``problems``, capped at ``limit``, then "and N more" for the rest
    (``more_problems`` counts those not even kept)."""
    shown = problems[:limit]
    lines = [o.describe() for o in shown]
    more = len(problems) - len(shown) + more_problems
    if more:
        lines.append(f"... and {more:,} more")
    return lines

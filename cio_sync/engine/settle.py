"""Where every record's outcome lands: counted, recorded in the ledger, handed to the caller; and
where a run notices that the API went away."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence

from ..errors import OutputLost
from ..input.datafile import UnreadTail
from ..input.mapping import InvalidRecord, PersonUpdate, none_merged
from ..input.source import Source
from ..outcome import DONE, STOPPED_BEFORE_SENT, Delivery, RecordOutcome, Status, Stop, StopReason
from ..redact import Redactor
from ..state.ledger import Known, Ledger
from .causes import HELD_BEHIND_FAILED, HELD_BEHIND_INVALID, IndexSet, held_back_reason
from .people import People
from .tally import Tally

OutcomeHandler = Callable[[RecordOutcome], None]


class Settle:
    """Settles each record exactly once, from the thread that runs the sync.

    Every outcome is counted and handed on by ``outcomes`` (see :class:`Outcomes`); an update the
    workspace accepted is recorded in the ``ledger``. A delivery whose answer means no request
    can succeed (401/403) stops the run, and so do ``max(10, parallelism)`` requests in a row that
    got no HTTP answer at all: sending the rest would only fail them slowly, one by one. So does a
    ledger that cannot be written (a full disk), which could otherwise vouch for what the
    workspace does not hold: :attr:`lost` says why.
    """

    def __init__(self, stop: Stop, parallelism: int, ledger: Ledger | None, outcomes: Outcomes) -> None:
        self._outcomes = outcomes
        self.tally = outcomes.tally
        self.stop = stop
        self._ledger = ledger
        self._unanswered = _Unanswered(max(10, parallelism))
        self.lost: OutputLost | None = None
        # The invalid records that name a person: a record held back behind one of them is
        # counted as such (see cio_sync.causes), which a tolerance of invalid records relies on.
        self._invalid = IndexSet()

    @property
    def compares(self) -> bool:
        """True when each update is compared with the ledger before it is sent (see :meth:`unchanged`)."""
        return self._ledger is not None

    def sending(self, updates: Sequence[PersonUpdate], people: People) -> bool:
        """``updates`` are about to be sent: the ledger stops vouching for other bodies of their
        ``people``. False (and the updates settled as not attempted) when it cannot be written: they
        must not be sent then."""
        if self._ledger is None:
            return True
        try:
            self._ledger.sending(updates, people.withdrawing(updates))
        except OutputLost as e:
            self.lose_ledger(e)
            for update in updates:
                self.not_sent(update)
            return False
        return True

    def delivered(self, updates: Sequence[PersonUpdate], deliveries: Sequence[Delivery]) -> None:
        """A request is back: settle each of its ``updates`` by its delivery, then record in the
        ledger those the workspace accepted (before any person's next update is routed: its own
        entry must be in place for that update to withdraw it)."""
        # A batch's updates mostly share one delivery: it is then looked at once.
        alike = deliveries.count(deliveries[0]) == len(deliveries) if deliveries else False
        if self._unanswered.count(deliveries[:1] if alike else deliveries):
            self.stop(StopReason.UNREACHABLE)
        for delivery in deliveries[:1] if alike else deliveries:
            if delivery.stop is not None:
                self.stop(delivery.stop)
        if alike and deliveries[0].status is Status.SYNCED:
            self._outcomes.synced(updates, deliveries[0])
        else:
            for update, d in zip(updates, deliveries, strict=True):
                self._outcomes.each(update, d.status, d.reason, d.http_status, d.retries)
        if self._ledger is not None:
            accepted = (u for u, d in zip(updates, deliveries, strict=True) if d.status is Status.SYNCED)
            try:
                self._ledger.accepted(accepted)
            except OutputLost as e:  # counted and handed on; only the ledger did not learn of them
                self.lose_ledger(e)

    def invalid(self, record: InvalidRecord) -> None:
        """A record that cannot be sent."""
        if record.key is not None:  # it names a person, whose later records it may hold back
            self._invalid.add(record.index)
        outcome = RecordOutcome(
            record.index, Status.INVALID, record.person_id, record.reason, record=record.record, cause=record.cause
        )
        self._outcomes.emit(outcome)

    def held_back(self, work: PersonUpdate, earlier: int) -> None:
        """``work`` is not sent: its person's record ``earlier`` did not sync, and it must not overtake it."""
        cause = HELD_BEHIND_INVALID if earlier in self._invalid else HELD_BEHIND_FAILED
        self._outcomes.each(work, Status.NOT_ATTEMPTED, held_back_reason(earlier), cause=cause)

    def unchanged(self, update: PersonUpdate, people: People) -> bool:
        """True, and ``update`` settled as unchanged (not sent), when the ledger shows the
        workspace holds its body already; else its person's owner learns what to withdraw."""
        if self._ledger is None or people.compared(update.key, *self._ledger.check(update)) is not Known.UNCHANGED:
            return False
        self._outcomes.each(update, Status.UNCHANGED)
        return True

    def refused(self, update: PersonUpdate, reason: str) -> None:
        """``update`` cannot be carried (``reason``): each of its records is invalid."""
        self._invalid.add(update.index)
        self._outcomes.each(update, Status.INVALID, reason)

    def not_sent(self, update: PersonUpdate) -> None:
        """``update`` was not sent: the run stopped first."""
        self._outcomes.each(update, Status.NOT_ATTEMPTED, STOPPED_BEFORE_SENT)

    def abandoned(
        self, works: Iterable[PersonUpdate | InvalidRecord], source: Source, person_id: Callable[[object], str | None]
    ) -> None:
        """The run stopped: ``works`` (taken from the file, not sent) and every record ``source``
        has not handed out are settled, as invalid or not attempted."""
        for work in works:
            if isinstance(work, InvalidRecord):
                self.invalid(work)
            else:
                self.not_sent(work)
        unsent, tail = source.rest()
        for index, record in unsent:
            outcome = RecordOutcome(index, Status.NOT_ATTEMPTED, person_id(record), STOPPED_BEFORE_SENT, record=record)
            self._outcomes.emit(outcome)
        if tail is not None:
            self._outcomes.emit(_unread(tail))

    def lose_ledger(self, error: OutputLost) -> None:
        """The ledger could not be written: the run stops, and :attr:`lost` says why."""
        if self.lost is None:
            self.lost = error
        self.stop(StopReason.LEDGER_LOST)


class Outcomes:
    """Counts each record's outcome in ``tally`` and hands it to ``on_outcome`` (with
    ``only_problems``, only those of records not synced nor unchanged), its reason passed through
    ``redact`` (a server's words, or a value quoted from the data file, may hold a credential);
    ``covered`` gives the earlier records merged into an update, which share its outcome."""

    def __init__(
        self,
        tally: Tally,
        on_outcome: OutcomeHandler | None,
        redact: Redactor,
        covered: Callable[[PersonUpdate], Iterator[PersonUpdate]] = lambda _: iter(()),
        only_problems: bool = False,
    ) -> None:
        self.tally = tally
        self._on_outcome = on_outcome
        self._redact = redact
        self._covered = covered
        self._only_problems = only_problems

    def each(
        self,
        update: PersonUpdate,
        status: Status,
        reason: str | None = None,
        http_status: int | None = None,
        retries: int = 0,
        cause: str | None = None,
    ) -> None:
        """Count every record ``update`` stands for, in file order (the earlier ones merged into
        it first), with the one outcome."""
        # Only a merged update chains its earlier records in: most stand for one record alone.
        records = itertools.chain(self._covered(update), (update,)) if update.covers is not None else (update,)
        for each in records:
            # Positional, the span (one record) included: keywords cost a fifth more per record.
            outcome = RecordOutcome(
                each.index, status, each.person_id, reason, http_status, retries, each.record, 1, cause
            )
            self.emit(outcome)

    def synced(self, updates: Sequence[PersonUpdate], delivery: Delivery) -> None:
        """Count ``updates`` as synced by ``delivery``, as :meth:`each` would one by one: the
        records merged into one first, the rest counted at once."""
        if not none_merged(updates):
            for update in updates:
                self.each(update, Status.SYNCED, delivery.reason, delivery.http_status, delivery.retries)
            return
        reason = delivery.reason if delivery.reason is None else self._redact(delivery.reason)
        self.tally.counts[Status.SYNCED] += len(updates)
        handler = self._on_outcome
        if handler is not None and not self._only_problems:
            status, http_status, retries = Status.SYNCED, delivery.http_status, delivery.retries
            for u in updates:
                handler(RecordOutcome(u.index, status, u.person_id, reason, http_status, retries, u.record, 1, None))

    def emit(self, outcome: RecordOutcome) -> None:
        """Count ``outcome`` and hand it on."""
        if outcome.reason is not None:
            cleaned = self._redact(outcome.reason)
            if cleaned != outcome.reason:
                outcome = dataclasses.replace(outcome, reason=cleaned)
        self.tally.add(outcome)
        if self._on_outcome is not None and not (self._only_problems and outcome.status in DONE):
            self._on_outcome(outcome)


def _unread(tail: UnreadTail) -> RecordOutcome:
    """The records a stopped run never read, as one outcome standing for all of them."""
    reason = f"the run stopped before it was read (with the {tail.count - 1:,} records after it)"
    return RecordOutcome(tail.first, Status.NOT_ATTEMPTED, None, reason, record=tail, span=tail.count)


class _Unanswered:
    """Counts the requests in a row that got no HTTP answer, up to ``limit``."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._count = 0

    def count(self, deliveries: Sequence[Delivery]) -> bool:
        """Count one request, however many updates it carried (a batch left unanswered is one
        request, not one per person in it); True once ``limit`` in a row went unanswered."""
        if any(d.http_status is not None for d in deliveries):
            self._count = 0
        elif any(d.status is Status.FAILED for d in deliveries):
            self._count += 1
        return self._count >= self._limit

"""The dry-run plan: what a sync would do, worked out the way the sync works it out, sending nothing."""

from __future__ import annotations

import contextlib
import functools
import itertools
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import cast

from ..input.config import Config, Transport
from ..input.mapping import MAX_ITEM_BYTES, InvalidRecord, PersonUpdate, batch_item, none_merged
from ..outcome import RecordOutcome, Status
from ..state.ledger import Known, Ledger
from .causes import CauseCount
from .merge import Merger, Work, Works, merger_for, merges
from .mirror import MirrorResult, Named, watch_names
from .packer import oversized
from .people import FailedPeople
from .repeats import PersonIndex, temporary_storage
from .settle import OutcomeHandler
from .tally import Tally

# A body longer than this may make a batch item over its limit: what an item adds to its body is
# far less than the rest (an id is at most 150 bytes, 900 escaped).
_NEAR_ITEM_LIMIT = MAX_ITEM_BYTES - 2000
_BODY = operator.attrgetter("body")
_KEY = operator.attrgetter("key")


@dataclass(frozen=True)
class Plan:
    """What a sync would do, worked out without sending anything (``--dry-run``).

    Records are counted as the run counts them; people as the writes it would make (one per
    person, their records merged): ``to_send`` of the ``people`` are written, the rest found
    unchanged in the ledger.
    """

    total: int
    valid: int
    invalid: int
    # The first invalid records, in file order, and how many more there were.
    problems: tuple[RecordOutcome, ...]
    more_problems: int
    # The first few requests exactly as they would be sent.
    samples: tuple[PersonUpdate, ...]
    # With a ledger: how the people's writes compare with it.
    new: int | None = None
    changed: int | None = None
    unchanged: int | None = None
    # The invalid records grouped by cause, the most frequent first.
    causes: tuple[CauseCount, ...] = ()
    # The people a write is worked out for, and how many of those writes would be sent.
    people: int = 0
    to_send: int = 0
    # Valid records not sent: held back behind an invalid record of the same person.
    held_back: int = 0
    # With whenRemoved other than keep: who would be removed; and who would be unsuppressed.
    mirror: MirrorResult | None = None
    unsuppressed: tuple[str, ...] = ()


@dataclass
class _Counts:
    samples: int
    records: int = 0
    people: int = 0
    to_send: int = 0
    held_back: int = 0
    kept: list[PersonUpdate] = field(default_factory=list)

    def send(self, works: Sequence[PersonUpdate]) -> None:
        """``works`` would be sent: the first few are kept as samples."""
        self.to_send += len(works)
        self.kept.extend(works[: max(0, self.samples - len(self.kept))])

    def plain(self, works: Sequence[PersonUpdate]) -> None:
        """``works``, a write each of one record (see :func:`_plain`), would be sent."""
        self.records += len(works)
        self.people += len(works)
        self.send(works)


def plan(
    config: Config,
    records: Iterable[object],
    *,
    ledger: Ledger | None = None,
    on_outcome: OutcomeHandler | None = None,
    samples: int = 3,
    keep_problems: int = 20,
    index: PersonIndex | None = None,
    named: Named | None = None,
) -> Plan:
    """Validate, map and merge every record as :func:`~cio_sync.sync` would, without any network
    traffic: the plan counts the writes the run would send.

    Invalid records are passed to ``on_outcome``; valid ones are only counted. With a ``ledger``
    each person's write is also classed as new (not in the ledger), changed or unchanged.
    ``index`` is as for :func:`~cio_sync.sync`. ``named`` hears of every record (for mirroring).
    """
    merger = merger_for(config, records, index)
    if named is not None:
        watch_names(merger, config, named)
    works = Works(merger)
    tally = Tally(keep_problems)
    # People with an invalid record: the run holds their later records back, and so does the plan.
    failed = FailedPeople()
    compared = dict.fromkeys(Known, 0)
    counts = _Counts(samples)
    invalid = functools.partial(_invalid, tally, on_outcome)
    with temporary_storage(), contextlib.closing(merger), contextlib.closing(failed):
        while run := works.take():
            if ledger is None and _plain(run, config, failed):
                counts.plain(cast("Sequence[PersonUpdate]", run))
                continue
            for work in run:
                if isinstance(work, InvalidRecord):
                    invalid(work)
                    if work.key is not None:
                        failed.add(work.key, work.index)
                    continue
                if not _sendable(work, config, merger, failed, counts, invalid):
                    continue
                counts.people += 1
                if ledger is not None:
                    known = ledger.compare(work)
                    compared[known] += 1
                    if known is Known.UNCHANGED:
                        continue
                counts.send((work,))
    return _plan(tally, ledger is not None, compared, counts)


def _plain(run: Sequence[Work], config: Config, failed: FailedPeople) -> bool:
    """True when every one of ``run`` is a write the run would send as it is, as :func:`_sendable`
    finds one by one: a valid record of its own, of a person with no invalid record, and far from
    a batch item's limit."""
    if set(map(type, run)) != {PersonUpdate}:
        return False
    updates = cast("Sequence[PersonUpdate]", run)
    if not none_merged(updates) or not failed.none_of(map(_KEY, updates)):
        return False
    return config.transport is not Transport.BATCH or max(map(len, map(_BODY, updates))) <= _NEAR_ITEM_LIMIT


def _sendable(
    work: PersonUpdate,
    config: Config,
    merger: Merger,
    failed: FailedPeople,
    counts: _Counts,
    invalid: Callable[[InvalidRecord], None],
) -> bool:
    """True when the run would send ``work`` (unless the ledger has it): neither held back
    behind an invalid record of its person nor too large for a batch. Its records are counted."""
    if failed.get(work.key) is not None:
        counts.held_back += _records(work, merger)
        return False
    near = config.transport is Transport.BATCH and len(work.body) > _NEAR_ITEM_LIMIT
    # Stamped as the run stamps it (unless a mapping sets _timestamp): a stamp is ten digits.
    too_big = oversized(batch_item(work, 9_999_999_999 if merges(config) else None)) if near else None
    if too_big is not None:
        for each in itertools.chain(merger.covered(work), (work,)):
            invalid(InvalidRecord(each.index, each.person_id, too_big, each.record))
        failed.add(work.key, work.index)
        return False
    counts.records += _records(work, merger)
    return True


def _records(work: PersonUpdate, merger: Merger) -> int:
    """How many records ``work`` stands for (its earlier ones then forgotten)."""
    return 1 if work.covers is None else 1 + sum(1 for _ in merger.covered(work))


def _invalid(tally: Tally, on_outcome: OutcomeHandler | None, work: InvalidRecord) -> None:
    outcome = RecordOutcome(
        work.index, Status.INVALID, work.person_id, work.reason, record=work.record, cause=work.cause
    )
    tally.add(outcome)
    if on_outcome is not None:
        on_outcome(outcome)


def _plan(tally: Tally, ledger: bool, compared: dict[Known, int], counts: _Counts) -> Plan:
    invalid = tally.counts[Status.INVALID]
    total = invalid + counts.held_back + counts.records
    new, changed, unchanged = (compared[k] if ledger else None for k in (Known.NEW, Known.CHANGED, Known.UNCHANGED))
    return Plan(
        total,
        total - invalid,
        invalid,
        tally.problems,
        tally.more_problems,
        tuple(counts.kept),
        new,
        changed,
        unchanged,
        tally.causes.ranked(),
        counts.people,
        counts.to_send,
        counts.held_back,
    )

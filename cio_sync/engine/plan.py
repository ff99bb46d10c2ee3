"""The dry-run plan: what a sync would do, worked out without sending anything."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..input.config import Config
from ..input.mapping import InvalidRecord, PersonUpdate, RecordMapper
from ..outcome import RecordOutcome, Status
from ..state.ledger import Known, Ledger
from .causes import CauseCount
from .mirror import MirrorResult
from .settle import OutcomeHandler
from .tally import Tally


@dataclass(frozen=True)
class Plan:
    """What a sync would do, worked out without sending anything (``--dry-run``)."""

    total: int
    valid: int
    invalid: int
    # The first invalid records, in file order, and how many more there were.
    problems: tuple[RecordOutcome, ...]
    more_problems: int
    # The first few requests exactly as they would be sent.
    samples: tuple[PersonUpdate, ...]
    # With a ledger: how the valid records compare with it.
    new: int | None = None
    changed: int | None = None
    unchanged: int | None = None
    # The invalid records grouped by cause, the most frequent first.
    causes: tuple[CauseCount, ...] = ()
    # With whenRemoved other than keep: who would be removed; and who would be unsuppressed.
    mirror: MirrorResult | None = None
    unsuppressed: tuple[str, ...] = ()


def plan(
    config: Config,
    records: Iterable[object],
    *,
    ledger: Ledger | None = None,
    on_outcome: OutcomeHandler | None = None,
    samples: int = 3,
    keep_problems: int = 20,
    named: Callable[[PersonUpdate | InvalidRecord], None] | None = None,
) -> Plan:
    """Validate and map every record as :func:`~cio_sync.sync` would, without any network traffic.

    Invalid records are passed to ``on_outcome``; valid ones are only counted. With a ``ledger``
    each valid record is also classed as new (not in the ledger), changed or unchanged; a person
    repeated in the file is compared with the ledger each time, not with the file's earlier
    record. ``named`` is told of every record mapped, valid or not (for mirroring).
    """
    mapper = RecordMapper.for_config(config)
    tally = Tally(keep_problems)
    kept: list[PersonUpdate] = []
    compared = dict.fromkeys(Known, 0)
    total = 0
    for index, record in enumerate(records):
        total += 1
        update = mapper.map(index, record)
        if named is not None:
            named(update)
        if isinstance(update, InvalidRecord):
            outcome = RecordOutcome(
                index, Status.INVALID, update.person_id, update.reason, record=record, cause=update.cause
            )
            tally.add(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
            continue
        if ledger is not None:
            known = ledger.compare(update)
            compared[known] += 1
            if known is Known.UNCHANGED:
                continue
        if len(kept) < samples:
            kept.append(update)
    invalid = tally.counts[Status.INVALID]
    new, changed, unchanged = (
        compared[k] if ledger is not None else None for k in (Known.NEW, Known.CHANGED, Known.UNCHANGED)
    )
    problems = (tally.problems, tally.more_problems)
    return Plan(total, total - invalid, invalid, *problems, tuple(kept), new, changed, unchanged, tally.causes.ranked())

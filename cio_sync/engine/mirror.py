"""Mirroring (``whenRemoved``): the people who left the data file leave the workspace, under a guard.

Who left: a person the ledger holds as written to this workspace by an earlier run whom no record
of this run names (an invalid record whose person id can be read names its person too). The
removals start only once the whole file was read and every upsert settled, and only when the run
did not stop early. Over ``maxRemovals`` no one is removed; an empty data file removes no one
unless the guard is ``all``: a broken export must never empty a workspace. A record that names no
one (unreadable, or without a usable id) may be anyone's, so while one does no one is removed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from ..errors import OutputLost
from ..input.config import Config, MaxRemovals, WhenRemoved
from ..input.mapping import InvalidRecord, PersonUpdate, RecordMapper, ordering_key
from ..outcome import Delivery, Status, Stop
from ..state.roster import Leaver, Roster
from .merge import Merger
from .removal import Sender, removals
from .stamps import Stamps
from .workers import Workers


class Removed(str, Enum):
    """What became of one person who left the data file (or came back to it)."""

    REMOVED = "removed"
    FAILED = "failed"
    NOT_ATTEMPTED = "not_attempted"
    # --dry-run: would be removed.
    PLANNED = "would_remove"
    # Suppressed by cio-sync earlier, in this file again: unsuppressed before being written.
    UNSUPPRESSED = "unsuppressed"


@dataclass(frozen=True, slots=True)
class RemovalEntry:
    """One person's removal (or unsuppression), for the report."""

    person_id: str
    outcome: Removed
    reason: str | None = None
    http_status: int | None = None


@dataclass(frozen=True)
class MirrorResult:
    """What mirroring did in one run (or, in a dry run, would do)."""

    mode: WhenRemoved
    guard: MaxRemovals
    # The people the ledger holds for this workspace, and how many of them left the file.
    held: int = 0
    leaving: int = 0
    # False when the guard stopped the removals: no one was removed.
    allowed: bool = True
    # Why removals did not start although people left (the run stopped early), else None.
    skipped: str | None = None
    entries: tuple[RemovalEntry, ...] = ()
    # Records of the data file that name no one (unreadable, or without a usable id): while there
    # are any, who the file names is not known, and no one is removed (allowed is False).
    unnamed: int = 0
    # People no record named who stay all the same: the file of a run that did not end clean
    # named them (see cio_sync.state.roster), so the data file may be a partial one (--failed).
    spared: int = 0

    def count(self, outcome: Removed) -> int:
        """How many people had ``outcome``."""
        return sum(1 for e in self.entries if e.outcome is outcome)

    @property
    def ok(self) -> bool:
        """True unless the guard stopped the removals or one of them did not succeed."""
        bad = (Removed.FAILED, Removed.NOT_ATTEMPTED)
        return self.allowed and not any(e.outcome in bad for e in self.entries)

    def refusal(self, empty: bool) -> str:
        """Why the guard (or records that name no one) stopped the removals, and how to allow them."""
        people = f"{self.leaving:,} " + ("person" if self.leaving == 1 else "people")
        if self.unnamed:
            records = f"{self.unnamed:,} record" + (" names" if self.unnamed == 1 else "s name")
            return (
                f"{records} no one (unreadable, or without a usable id), so who the data file names is not "
                f"known: no one was removed ({people} would have left it); fix those records and the removals "
                "go ahead"
            )
        if empty:
            return (
                f"the data file holds no records: removing everyone it left ({people} of {self.held:,} the ledger "
                "holds) needs --max-removals all; no one was removed"
            )
        return (
            f"{people} of the {self.held:,} the ledger holds left the data file, more than --max-removals "
            f"{self.guard} allows: no one was removed; to allow it, run again with --max-removals {self.leaving} "
            "(or a larger share, or all)"
        )


class Named:
    """Records each person a record of this run names in the ledger's ``roster``, and who of
    them cio-sync suppressed earlier (they come back)."""

    def __init__(self, config: Config, roster: Roster, suppressed: set[str], record: bool) -> None:
        self._id_type = config.id_type
        self._roster = roster
        self._suppressed = suppressed
        self._record = record
        if record:
            roster.begin()
        self.back: list[str] = []
        # Records that name no one: they may be anyone's, so they stop the removals.
        self.unnamed = 0

    def __call__(self, work: PersonUpdate | InvalidRecord) -> None:
        key = work.key
        if key is None and work.person_id is not None:
            key = ordering_key(work.person_id, self._id_type)
        if key is None:
            self.unnamed += 1
            return
        if self._record:
            self._roster.seen(key)
        # Only a valid record brings a person back: an invalid one is never written.
        if isinstance(work, PersonUpdate) and key in self._suppressed:
            self._suppressed.discard(key)  # a person repeated in the file comes back once
            self.back.append(work.person_id)


class NamingMapper(RecordMapper):
    """The run's mapper, telling ``named`` of every record it maps (valid or not)."""

    named: Named | None = None

    def map(self, index: int, record: object) -> PersonUpdate | InvalidRecord:
        """As :meth:`RecordMapper.map`; then ``named`` hears of the record's person."""
        work = super().map(index, record)
        if self.named is not None:
            self.named(work)
        return work

    def map_run(self, first: int, records: Sequence[object]) -> list[PersonUpdate | InvalidRecord]:
        """As :meth:`RecordMapper.map_run`; then ``named`` hears of each record's person."""
        works = super().map_run(first, records)
        if self.named is not None:
            for work in works:
                self.named(work)
        return works


def watch_names(merger: Merger, config: Config, named: Named) -> None:
    """Have ``merger`` tell ``named`` of every record it maps."""
    mapper = NamingMapper.for_config(config)
    assert isinstance(mapper, NamingMapper)
    mapper.named = named
    merger.mapper = mapper


def decide(config: Config, roster: Roster, total: int, unnamed: int = 0) -> tuple[list[Leaver], MirrorResult]:
    """Who left the data file (of ``total`` records, ``unnamed`` of which name no one), and
    whether they may go: not over the guard, and not while a record may name any of them."""
    leavers = roster.leavers()
    held = roster.held()
    guard = config.max_removals
    allowed = not leavers or (not unnamed and (total > 0 or guard.everyone) and guard.allows(len(leavers), held))
    unnamed = unnamed if leavers else 0
    result = MirrorResult(
        config.when_removed, guard, held, len(leavers), allowed, unnamed=unnamed, spared=roster.spared()
    )
    return leavers, result


def planned(config: Config, roster: Roster, total: int, unnamed: int = 0) -> MirrorResult:
    """What a run would remove (``--dry-run``)."""
    leavers, result = decide(config, roster, total, unnamed)
    entries = tuple(RemovalEntry(p.person_id, Removed.PLANNED) for p in leavers)
    return dataclasses.replace(result, entries=entries)


def remove(
    config: Config, roster: Roster, workers: Workers, stop: Stop, stamps: Stamps, total: int, unnamed: int = 0
) -> tuple[MirrorResult, OutputLost | None]:
    """Remove everyone who left the data file, as ``config.when_removed`` says, when the guard
    allows it and every record names its person: through the run's ``workers`` and their
    adapter, as its records went. The result, and the ledger's problem if it could not be written."""
    leavers, result = decide(config, roster, total, unnamed)
    if not result.allowed or not leavers:
        return result, None
    entries: list[RemovalEntry] = []

    def done(person: Leaver, delivery: Delivery) -> None:
        entries.append(_entry(person, delivery))

    mode = config.when_removed
    try:
        stamp = stamps.issue() if mode is WhenRemoved.CLEAR else None
    except OutputLost as e:
        return dataclasses.replace(result, skipped=str(e)), e
    jobs = workers.adapter.operations(removals(config, mode, leavers, stamp))
    lost = Sender(workers, roster, stop, config.parallelism).run(jobs, mode, done)
    return dataclasses.replace(result, entries=tuple(entries)), lost


def _entry(person: Leaver, delivery: Delivery) -> RemovalEntry:
    if delivery.status is Status.SYNCED:
        return RemovalEntry(person.person_id, Removed.REMOVED, None, delivery.http_status)
    outcome = Removed.NOT_ATTEMPTED if delivery.status is Status.NOT_ATTEMPTED else Removed.FAILED
    return RemovalEntry(person.person_id, outcome, delivery.reason, delivery.http_status)

"""One write per person: the records of a person the file names more than once, merged.

A person's records are merged in file order into one update, each attribute taking the value of
the last record that sets it: what applying them one after another would leave in the workspace.
It is sent in place of the person's last record; the earlier ones wait for it, and share its
outcome. To know which record is a person's last, the data file's check pass counts
the records of each person (:class:`~cio_sync.engine.repeats.PersonIndex`) before anything is
sent. Records waiting for their person's last are held in memory up to :data:`HOLD_IN_MEMORY`,
the rest in a temporary SQLite database, so memory stays flat however many people repeat and
however far apart.

A person's invalid record ends their merge: the records before it are merged and sent, and it
and their later records follow in their turn (held back behind it, as ever). Where a mapping sets
``_timestamp`` nothing is merged: the API orders each record's update by its own stamp, which one
merged write cannot carry.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ..input.config import Config, IdType
from ..input.mapping import MAX_ITEM_BYTES, TIMESTAMP, InvalidRecord, PersonUpdate, RecordMapper, merged_body
from ..input.runs import RECORDS_A_RUN
from ..input.source import Source
from .repeats import PersonIndex, dump, index_records, load, temporary_database, temporary_storage

# A person's record on its way: to be sent, or to be settled as invalid in its turn.
Work = PersonUpdate | InvalidRecord


def merges(config: Config) -> bool:
    """True when a run merges the records of each person: unless a mapping sets ``_timestamp``
    (the API orders each record's update by its own stamp, which one merged write cannot carry)."""
    return all(m.target != TIMESTAMP for m in config.mappings)


def person_index(config: Config) -> PersonIndex | None:
    """An empty index to :meth:`~PersonIndex.note` a run's records in, or None when the run
    merges nothing."""
    return PersonIndex(RecordMapper.for_config(config).person_keys) if merges(config) else None


def merger_for(config: Config, records: Iterable[object], index: PersonIndex | None) -> Merger:
    """The :class:`Merger` of a run of ``config`` over ``records``, whose people ``index`` counted
    (they are counted now when it is None)."""
    mapper = RecordMapper.for_config(config)
    if not merges(config):
        return Merger(mapper, None, records)
    if index is None:
        with temporary_storage():
            records, index = index_records(records, mapper)
    return Merger(mapper, index, records)


# Records held for merges in memory before the rest go to the temporary database: about 10 MB.
HOLD_IN_MEMORY = 10_000
# The bodies of the merged updates made ready at once, at most (beyond one): a run of records that
# each end a merge of many would otherwise make ready far more than it holds itself.
READY_BYTES = 1 << 20
# The largest merged body: a batch item may be 32 KB, and what an item adds to its body is far
# less than the rest (an id is at most 150 bytes, 900 escaped). A person whose records merged
# would be larger is written one record at a time, as each record fits on its own.
MERGE_CAP = MAX_ITEM_BYTES - 2000


class Merger:
    """Turns each record into work for its person, merging the records of people named more
    than once (see the module's docstring). The earlier records of a merged update are kept until
    its outcome is settled: :meth:`covered` hands them out, once.

    Records waiting for their person's last are held in memory up to ``hold_in_memory`` of them,
    the rest in a temporary database (:class:`_Spill`); one person's are all in one place.
    """

    def __init__(
        self,
        mapper: RecordMapper,
        index: PersonIndex | None,
        records: Iterable[object] = (),
        hold_in_memory: int | None = None,
    ) -> None:
        self.mapper = mapper
        # The records to read: those the index was taken of.
        self.records = records
        self._index = index if index is not None and index.repeats else None
        self._limit = HOLD_IN_MEMORY if hold_in_memory is None else hold_in_memory
        # Records waiting for their person's last, and those a merged update stands for, until
        # it is settled; how many of both are held.
        self._waiting: dict[str, list[PersonUpdate]] = {}
        self._merged: dict[tuple[str, int], list[PersonUpdate]] = {}
        self._held = 0
        self._spill: _Spill | None = None
        # Work made ready with the last that :meth:`feed_run` returned, to follow it in turn.
        self.after: deque[Iterator[Work]] = deque()

    def feed_run(self, works: Sequence[Work], start: int) -> tuple[Sequence[Work], int]:
        """``works[start:]`` (records mapped, in file order) were read: the work they make ready
        now, and how many were taken: all, unless one made ready more (:attr:`after`), which goes
        first, or the merged bodies made ready reach :data:`READY_BYTES`."""
        if self._index is None:
            return works[start:], len(works) - start
        ready: list[Work] = []
        size = 0
        for taken, work in enumerate(itertools.islice(works, start, None), 1):
            if (made := self._merge(work)) is not None:
                ready.append(made)
                size += len(made.body) if isinstance(made, PersonUpdate) else 0
            if self.after or size >= READY_BYTES:
                return ready, taken
        return ready, len(works) - start

    def _merge(self, work: Work) -> Work | None:
        key, index = work.key, self._index
        if key is None or index is None or (left := index.take(key)) is None:
            return work
        if isinstance(work, InvalidRecord):
            merged = self._flush(key, None)
            if merged is None:
                return work
            self.after.append(iter((work,)))
            return merged
        if left > 0:
            self._keep(work)
            return None
        return self._flush(key, work)

    def rest(self) -> Iterator[Work]:
        """Once every record was read: the merges still waiting (people whose key shares its hash
        with another's), each person's in file order."""
        while self._waiting:
            merged = self._flush(next(iter(self._waiting)), None)
            assert merged is not None
            yield merged
        while self._spill is not None and (key := self._spill.first()) is not None:
            merged = self._flush(key, None)
            assert merged is not None
            yield merged

    def drain(self) -> Iterator[Work]:
        """For a run that stops: the work made ready and not taken, and the records waiting for a
        merge, each person's in file order, taken out."""
        while self.after:
            yield from self.after.popleft()
        waiting, self._waiting = self._waiting, {}
        for updates in waiting.values():
            self._held -= len(updates)
            yield from updates
        if self._spill is not None:
            yield from self._spill.drain()

    def covered(self, update: PersonUpdate) -> Iterator[PersonUpdate]:
        """The earlier records merged into ``update``, in file order; forgotten once handed out."""
        if update.covers is None:
            return
        held = self._merged.pop((update.key, update.index), None)
        if held is not None:
            self._held -= len(held)
            yield from held
        elif self._spill is not None:
            yield from self._spill.covered(update)

    def close(self) -> None:
        """Let go of the temporary database."""
        if self._spill is not None:
            self._spill.close()
            self._spill = None

    def _keep(self, update: PersonUpdate) -> None:
        key = update.key
        waiting = self._waiting.get(key)
        if self._held < self._limit and (waiting is not None or self._spill is None or not self._spill.has(key)):
            if waiting is None:
                self._waiting[key] = [update]
            else:
                waiting.append(update)
            self._held += 1
            return
        spill = self._spill = self._spill or _Spill()
        if waiting is not None:  # memory is full: this person's records all go to the database
            del self._waiting[key]
            self._held -= len(waiting)
            spill.keep(waiting)
        spill.keep((update,))

    def _flush(self, key: str, last: PersonUpdate | None) -> PersonUpdate | None:
        """``key``'s waiting records (and ``last``) as one update, or ``last`` when none wait."""
        waiting = self._waiting.pop(key, None)
        if waiting is None and self._spill is not None:
            # Up to a thousand of the person's records come back to memory, where there is room.
            merged, waiting, apart = self._spill.flush(key, last, min(1000, self._limit - self._held))
            if apart is not None:
                return self._one_by_one(apart)
            if waiting:
                assert merged is not None
                self._merged[(key, merged.index)] = waiting
                self._held += len(waiting)
            return merged
        if waiting is None:
            return last
        updates = waiting if last is None else [*waiting, last]
        self._held -= len(waiting)
        if len(updates) == 1:
            return updates[0]
        body = merged_body(u.body for u in updates)
        if len(body) > MERGE_CAP:
            return self._one_by_one(iter(updates))
        self._merged[(key, updates[-1].index)] = updates[:-1]
        self._held += len(updates) - 1
        return merge(updates[0], body, updates[-1])

    def _one_by_one(self, updates: Iterator[PersonUpdate]) -> PersonUpdate:
        """The first of ``updates``, each to be written on its own; the rest follow in turn."""
        self.after.append(updates)
        return next(updates)


def merge(first: PersonUpdate, body: bytes, last: PersonUpdate) -> PersonUpdate:
    """The update standing for a person's records from ``first`` to ``last``, whose bodies
    merged are ``body``. They are named as ``first`` names them, as a write of each record would
    leave them: an email address keeps the case the person was first written with."""
    return PersonUpdate(
        last.index, last.person_id, body, last.record, first.kind, first.identifier, last.key, first.index
    )


_COLUMNS = "key TEXT, idx INTEGER, person_id TEXT, kind TEXT, identifier TEXT, body BLOB, record BLOB"


class _Spill:
    """The records waiting for a merge that memory did not hold, in a temporary database: those
    waiting for their person's last (``waiting``), and those a merged update stands for until it
    is settled (``merged``). Each person's are read one at a time: a person named a million times
    takes no more memory than one named twice."""

    def __init__(self) -> None:
        self._db = temporary_database()
        for table in ("waiting", "merged"):
            self._db.execute(f"CREATE TABLE {table} ({_COLUMNS}, PRIMARY KEY (key, idx)) WITHOUT ROWID")
        self._db.execute("CREATE INDEX waiting_order ON waiting (idx)")

    def keep(self, updates: Iterable[PersonUpdate]) -> None:
        rows = ((u.key, u.index, u.person_id, u.kind.value, u.identifier, u.body, dump(u.record)) for u in updates)
        self._db.executemany("INSERT INTO waiting VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def has(self, key: str) -> bool:
        return self._db.execute("SELECT 1 FROM waiting WHERE key = ? LIMIT 1", (key,)).fetchone() is not None

    def first(self) -> str | None:
        row = self._db.execute("SELECT key FROM waiting ORDER BY idx LIMIT 1").fetchone()
        return None if row is None else str(row[0])

    def flush(
        self, key: str, last: PersonUpdate | None, room: int
    ) -> tuple[PersonUpdate | None, list[PersonUpdate], Iterator[PersonUpdate] | None]:
        """``key``'s waiting records (and ``last``) as one update, or ``last`` when none wait;
        and the records it stands for when there are at most ``room`` of them, taken out of the
        database (more stay in it until :meth:`covered` hands them out). Where merged they would
        be too large for one write: the records one by one instead (the third)."""
        db = self._db
        loaded: list[PersonUpdate] = []
        ends: list[PersonUpdate] = []  # the first waiting record, and the last one read

        def bodies() -> Iterator[bytes]:
            for row in db.execute("SELECT * FROM waiting WHERE key = ? ORDER BY idx", (key,)):
                if len(loaded) <= room:
                    loaded.append(_update(row))
                ends[1 if ends else 0 :] = [loaded[-1] if len(loaded) <= room else _update(row, with_record=False)]
                yield row[5]
            if last is not None:
                yield last.body

        body = merged_body(bodies())
        if not ends:
            return last, [], None
        if len(body) > MERGE_CAP:
            return None, [], self._one_by_one(key, last)
        if len(loaded) <= room:
            db.execute("DELETE FROM waiting WHERE key = ?", (key,))
            last = last or loaded.pop()
            return (merge(loaded[0], body, last) if loaded else last), loaded, None
        if last is None:
            final = ends[-1]
            (record,) = db.execute(
                "SELECT record FROM waiting WHERE key = ? AND idx = ?", (key, final.index)
            ).fetchone()
            last = dataclasses.replace(final, record=load(record))
        db.execute("INSERT INTO merged SELECT * FROM waiting WHERE key = ?", (key,))
        db.execute("DELETE FROM waiting WHERE key = ?", (key,))
        return merge(ends[0], body, last), [], None

    def _one_by_one(self, key: str, last: PersonUpdate | None) -> Iterator[PersonUpdate]:
        """``key``'s waiting records, then ``last``, a page at a time, each taken out as it goes."""
        after = -1
        while rows := self._db.execute(
            "SELECT * FROM waiting WHERE key = ? AND idx > ? ORDER BY idx LIMIT 256", (key, after)
        ).fetchall():
            self._db.execute("DELETE FROM waiting WHERE key = ? AND idx <= ?", (key, rows[-1][1]))
            after = rows[-1][1]
            yield from (_update(row) for row in rows)
        if last is not None:
            yield last

    def drain(self) -> Iterator[PersonUpdate]:
        for row in self._db.execute("SELECT * FROM waiting ORDER BY key, idx"):
            yield _update(row)
        self._db.execute("DELETE FROM waiting")

    def covered(self, update: PersonUpdate) -> Iterator[PersonUpdate]:
        span = (update.key, update.covers, update.index)
        for row in self._db.execute("SELECT * FROM merged WHERE key = ? AND idx >= ? AND idx < ? ORDER BY idx", span):
            yield _update(row)
        self._db.execute("DELETE FROM merged WHERE key = ? AND idx >= ? AND idx <= ?", span)

    def close(self) -> None:
        self._db.close()


def _update(row: tuple[Any, ...], with_record: bool = True) -> PersonUpdate:
    key, index, person_id, kind, identifier, body, record = row
    kept = load(record) if with_record else None
    return PersonUpdate(index, person_id, body, kept, IdType(kind), identifier, key)


class Works:
    """A run's records as work for their people, in file order, a run at a time: read from the
    ``merger``'s records, mapped and merged by it; once the records ran out, the merges still
    waiting."""

    def __init__(self, merger: Merger) -> None:
        self.source = Source(merger.records)
        self.merger = merger
        self._rest: Iterator[Work] | None = None
        # Records mapped, and how many of them the merger took: the rest follow what it made ready.
        self._mapped: Sequence[Work] = ()
        self._fed = 0
        # The works made ready last, and how many of them were handed out.
        self._ready: Sequence[Work] = ()
        self._at = 0
        self.exhausted = False

    def take(self, count: int | None = None) -> Sequence[Work]:
        """Up to ``count`` of the next works (by default, the rest of those made ready together),
        in file order; empty when there are none (the records ran out, or stopped parsing:
        ``source.broken`` then says how)."""
        if self._at == len(self._ready):
            self._ready, self._at = self._next_run(), 0
        end = len(self._ready) if count is None else self._at + count
        works = self._ready[self._at : end]
        self._at += len(works)
        return works

    def give_back(self, count: int) -> None:
        """The last ``count`` works handed out were not taken: they are handed out again next."""
        self._at -= count

    def drain(self) -> Iterator[Work]:
        """For a run that stops: the works not handed out, each person's in file order (those
        made ready, those the merger holds, the records mapped and not yet merged), taken out."""
        ready, self._ready, self._at = self._ready[self._at :], (), 0
        mapped, self._mapped, self._fed = self._mapped[self._fed :], (), 0
        return itertools.chain(ready, self.merger.drain(), mapped)

    def _next_run(self) -> Sequence[Work]:
        merger = self.merger
        while True:
            while merger.after:
                works = list(itertools.islice(merger.after[0], RECORDS_A_RUN))
                if works:
                    return works
                merger.after.popleft()
            if self._fed < len(self._mapped):
                made, taken = merger.feed_run(self._mapped, self._fed)
                self._fed += taken
                if made:
                    return made
                continue
            if self._rest is not None:
                works = list(itertools.islice(self._rest, RECORDS_A_RUN))
                self.exhausted = not works
                return works
            numbered = self.source.next_run()
            if numbered is not None:
                self._mapped, self._fed = merger.mapper.map_run(*numbered), 0
            elif self.source.broken is not None:
                return []
            else:
                self._rest = merger.rest()

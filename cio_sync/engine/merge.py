"""One write per person: the records of a person the file names more than once, merged.

A person's records are merged in file order into one update, each attribute taking the value of
the last record that sets it: what applying them one after another would leave in the workspace.
It is sent in place of the person's last record; the earlier ones wait for it in a temporary
SQLite database (so memory stays flat however many people repeat, and however far apart), and
share its outcome. To know which record is a person's last, the data file's check pass counts
the records of each person (:class:`PersonIndex`) before anything is sent.

A person's invalid record ends their merge: the records before it are merged and sent, and it
and their later records follow in their turn (held back behind it, as ever). Where a mapping sets
``_timestamp`` nothing is merged: the API orders each record's update by its own stamp, which one
merged write cannot carry.
"""

from __future__ import annotations

import bisect
import dataclasses
import pickle
import sqlite3
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence

from ..errors import DataFileChanged
from ..input.config import Config
from ..input.datafile import Records
from ..input.mapping import TIMESTAMP, InvalidRecord, PersonUpdate, RecordMapper, merged_body
from ..input.source import Source

# A person's record on its way: to be sent, or to be settled as invalid in its turn.
Work = PersonUpdate | InvalidRecord

# Hashes written to the index's table at a time: few statements, little memory.
_CHUNK = 8192


def _temporary_database() -> sqlite3.Connection:
    # An empty name is SQLite's private temporary database: kept in memory while small, then in a
    # file it unlinks at once, so that nothing is left behind however the run ends.
    db = sqlite3.connect("", isolation_level=None)
    db.execute("PRAGMA cache_size=-4000")
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    return db


class PersonIndex:
    """How many records each person named more than once has in the data file, counted down as
    the run reads them: :meth:`note` each record once, :meth:`finish`, then :meth:`take`.

    People are told apart by the hash of their key (8 bytes); the repeated ones are kept in two
    arrays, 12 bytes a person, and the counting is done by SQLite. Two people whose keys share a
    hash only cost a merge that ends later: correctness never rests on the index.
    """

    def __init__(self, key_of: Callable[[object], str | None]) -> None:
        self._key_of = key_of
        self._pending: list[tuple[int]] = []
        self._db: sqlite3.Connection | None = None
        self._hashes = array("q")
        self._left = array("q")

    @classmethod
    def of(cls, records: Iterable[object], key_of: Callable[[object], str | None]) -> PersonIndex:
        """The index of ``records``, read once through."""
        index = cls(key_of)
        for record in records:
            index.note(record)
        index.finish()
        return index

    def note(self, record: object) -> None:
        """Count ``record`` (every record of the file, once, before :meth:`finish`)."""
        key = self._key_of(record)
        if key is None:
            return
        self._pending.append((hash(key),))
        if len(self._pending) >= _CHUNK:
            self._write()

    def finish(self) -> None:
        """Every record was noted: keep the people named more than once, and how often."""
        if self._db is None and not self._pending:
            return
        self._write()
        assert self._db is not None
        rows = self._db.execute("SELECT h, count(*) FROM hashes GROUP BY h HAVING count(*) > 1 ORDER BY h")
        for hashed, count in rows:
            self._hashes.append(hashed)
            self._left.append(count)
        self._db.close()
        self._db = None

    @property
    def repeats(self) -> bool:
        """True when some person is named more than once."""
        return bool(self._hashes)

    def take(self, key: str) -> int | None:
        """One record of ``key``'s person was read: how many more the file names them in, or None
        when it names them once."""
        hashes = self._hashes
        hashed = hash(key)
        at = bisect.bisect_left(hashes, hashed)
        if at == len(hashes) or hashes[at] != hashed:
            return None
        left = self._left[at] - 1
        self._left[at] = left
        return max(left, 0)

    def _write(self) -> None:
        if self._db is None:
            self._db = _temporary_database()
            self._db.execute("CREATE TABLE hashes (h INTEGER NOT NULL)")
        self._db.executemany("INSERT INTO hashes VALUES (?)", self._pending)
        self._pending.clear()


def merges(config: Config) -> bool:
    """True when a run merges the records of each person: unless a mapping sets ``_timestamp``
    (the API orders each record's update by its own stamp, which one merged write cannot carry)."""
    return all(m.target != TIMESTAMP for m in config.mappings)


def person_index(config: Config) -> PersonIndex | None:
    """An empty index to :meth:`~PersonIndex.note` a run's records in, or None when the run
    merges nothing."""
    return PersonIndex(RecordMapper.for_config(config).person_key) if merges(config) else None


def merger_for(config: Config, records: Iterable[object], index: PersonIndex | None) -> Merger:
    """The :class:`Merger` of a run of ``config`` over ``records``, whose people ``index`` counted
    (they are counted now when it is None)."""
    mapper = RecordMapper.for_config(config)
    if not merges(config):
        return Merger(mapper, None, records)
    if index is None:
        records, index = index_records(records, mapper)
    return Merger(mapper, index, records)


def index_records(records: Iterable[object], mapper: RecordMapper) -> tuple[Iterable[object], PersonIndex]:
    """``records`` ready to be read for a run, and their :class:`PersonIndex`, for a caller that
    brought none: a data file's records are read once more from its start, a sequence is read
    twice, and records that can be read only once are first kept in a temporary file."""
    if isinstance(records, Records):
        try:
            return records, PersonIndex.of(records.again(), mapper.person_key)
        except DataFileChanged:
            # The run will find the change where it reads it, and stop there; until then its
            # records are written one by one.
            return records, PersonIndex.of((), mapper.person_key)
    if isinstance(records, Sequence):
        return records, PersonIndex.of(records, mapper.person_key)
    spool = _Spool()
    index = PersonIndex.of(spool.keep(records), mapper.person_key)
    return spool.read(), index


class _Spool:
    """Records that can be read only once, kept in a temporary database to be read again."""

    def __init__(self) -> None:
        self._db = _temporary_database()
        self._db.execute("CREATE TABLE records (record BLOB NOT NULL)")

    def keep(self, records: Iterable[object]) -> Iterator[object]:
        for record in records:
            self._db.execute("INSERT INTO records VALUES (?)", (pickle.dumps(record, pickle.HIGHEST_PROTOCOL),))
            yield record

    def read(self) -> Iterator[object]:
        try:
            for (blob,) in self._db.execute("SELECT record FROM records ORDER BY rowid"):
                yield pickle.loads(blob)  # noqa: S301 - our own private database, written just now
        finally:
            self._db.close()


class Merger:
    """Turns each record into work for its person, merging the records of people named more
    than once (see the module's docstring). The earlier records of a merged update are kept until
    its outcome is settled: :meth:`covered` hands them out, once."""

    def __init__(self, mapper: RecordMapper, index: PersonIndex | None, records: Iterable[object] = ()) -> None:
        self.mapper = mapper
        # The records to read: those the index was taken of.
        self.records = records
        self._index = index if index is not None and index.repeats else None
        self._db: sqlite3.Connection | None = None

    def feed(self, index: int, record: object) -> list[Work]:
        """Record ``index`` was read: the work it makes ready now, in file order (none while a
        merge waits for the person's later records)."""
        work = self.mapper.map(index, record)
        key = work.key
        if key is None or self._index is None:
            return [work]
        left = self._index.take(key)
        if left is None:
            return [work]
        if isinstance(work, InvalidRecord):
            merged = self._flush(key, None)
            return [work] if merged is None else [merged, work]
        if left > 0:
            self._keep(work)
            return []
        merged = self._flush(key, work)
        assert merged is not None
        return [merged]

    def rest(self) -> Iterator[Work]:
        """Once every record was read: the merges still waiting (people whose key shares its hash
        with another's), each person's in file order."""
        while self._db is not None:
            row = self._db.execute("SELECT key FROM pending ORDER BY idx LIMIT 1").fetchone()
            if row is None:
                return
            merged = self._flush(row[0], None)
            assert merged is not None
            yield merged

    def drain(self) -> Iterator[PersonUpdate]:
        """For a run that stops: the records waiting for a merge, in file order, taken out."""
        if self._db is None:
            return
        for (blob,) in self._db.execute("SELECT work FROM pending ORDER BY idx"):
            yield _load(blob)
        self._db.execute("DELETE FROM pending")

    def covered(self, update: PersonUpdate) -> Iterator[PersonUpdate]:
        """The earlier records merged into ``update``, in file order; forgotten once handed out."""
        if update.covers is None or self._db is None:
            return
        span = (update.key, update.covers, update.index)
        for (blob,) in self._db.execute(
            "SELECT work FROM covered WHERE key = ? AND idx >= ? AND idx < ? ORDER BY idx", span
        ):
            yield _load(blob)
        self._db.execute("DELETE FROM covered WHERE key = ? AND idx >= ? AND idx <= ?", span)

    def close(self) -> None:
        """Let go of the temporary database."""
        if self._db is not None:
            self._db.close()
            self._db = None

    def _keep(self, update: PersonUpdate) -> None:
        if self._db is None:
            self._db = _temporary_database()
            for table in ("pending", "covered"):
                self._db.execute(
                    f"CREATE TABLE {table} (key TEXT, idx INTEGER, work BLOB, PRIMARY KEY (key, idx)) WITHOUT ROWID"
                )
            self._db.execute("CREATE INDEX pending_order ON pending (idx)")
        self._db.execute("INSERT INTO pending VALUES (?, ?, ?)", (update.key, update.index, _dump(update)))

    def _flush(self, key: str, last: PersonUpdate | None) -> PersonUpdate | None:
        """``key``'s waiting records (and ``last``) as one update, or ``last`` when none wait.
        The records are read one at a time: a person named a million times takes no more memory
        than one named twice."""
        db = self._db
        if db is None:
            return last
        ends: list[PersonUpdate] = []  # the first waiting record, and the last one read

        def bodies() -> Iterator[bytes]:
            for (blob,) in db.execute("SELECT work FROM pending WHERE key = ? ORDER BY idx", (key,)):
                update = _load(blob)
                ends[1 if ends else 0 :] = [update]
                yield update.body
            if last is not None:
                yield last.body

        body = merged_body(bodies())
        if not ends:
            return last
        if last is None and len(ends) == 1:  # one record waited: nothing to merge it with
            db.execute("DELETE FROM pending WHERE key = ?", (key,))
            return ends[0]
        db.execute("INSERT INTO covered SELECT * FROM pending WHERE key = ?", (key,))
        db.execute("DELETE FROM pending WHERE key = ?", (key,))
        final, first = last if last is not None else ends[-1], ends[0]
        # Named as the first record names them, as a write of each record would leave it: an
        # email address keeps the case the person was first written with.
        return dataclasses.replace(final, body=body, covers=first.index, path=first.path, identifier=first.identifier)


def _dump(update: PersonUpdate) -> bytes:
    return pickle.dumps(update, pickle.HIGHEST_PROTOCOL)


def _load(blob: bytes) -> PersonUpdate:
    update = pickle.loads(blob)  # noqa: S301 - our own private database, written by this run
    assert isinstance(update, PersonUpdate)
    return update


class Works:
    """A run's records as work for their people, in file order: read from the ``merger``'s
    records, mapped and merged by it; once the records ran out, the merges still waiting."""

    def __init__(self, merger: Merger) -> None:
        self.source = Source(merger.records)
        self.merger = merger
        self._ready: Iterator[Work] = iter(())
        self._rest: Iterator[Work] | None = None
        self.exhausted = False

    def next(self) -> Work | None:
        """The next work, or None when there is none (the records ran out, or stopped parsing:
        ``source.broken`` then says how)."""
        while True:
            work = next(self._ready, None)
            if work is not None:
                return work
            if self._rest is not None:
                self.exhausted = True
                return None
            numbered = self.source.next()
            if numbered is not None:
                self._ready = iter(self.merger.feed(*numbered))
            elif self.source.broken is not None:
                return None
            else:
                self._rest = self._ready = self.merger.rest()

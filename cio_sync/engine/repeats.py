"""Which people a data file names more than once, and how many records each has: counted as the
file's check reads it, so that a run knows each person's last record before it sends anything
(see :mod:`cio_sync.engine.merge`)."""

from __future__ import annotations

import bisect
import pickle
import sqlite3
import tempfile
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import islice
from typing import IO

from ..errors import DataFileChanged, TemporaryStorageLost
from ..input.datafile import Records
from ..input.mapping import RecordMapper


@contextmanager
def temporary_storage(on_error: Callable[[], object] = lambda: None) -> Iterator[None]:
    """Calls ``on_error`` on any error in its block; a temporary database that failed (a full
    temporary directory, most likely) becomes an error a user can act on."""
    try:
        yield
    except sqlite3.Error as e:
        on_error()
        raise _lost(e) from None
    except BaseException:
        on_error()
        raise


def _lost(error: Exception) -> TemporaryStorageLost:
    return TemporaryStorageLost(
        f"the run's temporary storage failed ({error}): it is kept in the temporary directory; "
        "free room there, or point TMPDIR at a larger one, and run again"
    )


def temporary_database() -> sqlite3.Connection:
    # An empty name is SQLite's private temporary database: kept in memory while small, then in a
    # file it unlinks at once, so that nothing is left behind however the run ends.
    db = sqlite3.connect("", isolation_level=None)
    db.execute("PRAGMA cache_size=-4000")
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    return db


class PersonIndex:
    """How many records each person named more than once has in the data file, counted down as
    the run reads them: :meth:`note` each record once (a run of them at a time), :meth:`finish`,
    then :meth:`take`. ``keys_of`` gives the key of each of a run's records (None: names no one).

    People are told apart by the hash of their key (8 bytes). The hashes are sorted a run of
    :data:`_RUN` at a time into a temporary file, and counted a range of hashes at a time from
    every run, so memory stays flat however long the file; the repeated people are kept in two
    arrays, 16 bytes a person. Two people whose keys share a hash only cost a merge that ends later: correctness
    never rests on the index.
    """

    def __init__(self, keys_of: Callable[[Sequence[object]], Sequence[str | None]]) -> None:
        self._keys_of = keys_of
        self._run = array("q")
        self._runs = _SortedRuns()
        self._hashes = array("q")
        self._left = array("q")

    @classmethod
    def of(cls, records: Iterable[object], keys_of: Callable[[Sequence[object]], Sequence[str | None]]) -> PersonIndex:
        """The index of ``records``, read once through."""
        index = cls(keys_of)
        records = iter(records)
        while run := list(islice(records, _READ)):
            index.note(run)
        index.finish()
        return index

    def note(self, records: Sequence[object]) -> None:
        """Count ``records`` (every record of the file, once, before :meth:`finish`)."""
        keys = self._keys_of(records)
        if None in keys:
            keys = [key for key in keys if key is not None]
        self._run.extend(map(hash, keys))
        if len(self._run) >= _RUN:
            self._runs.add(self._run)
            self._run = array("q")

    def finish(self) -> None:
        """Every record was noted: keep the people named more than once, and how often."""
        self._runs.add(self._run)
        self._run = array("q")
        for hashed, count in self._runs.repeated():
            self._hashes.append(hashed)
            self._left.append(count)

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


# Hashes sorted at a time (256 KB of them; sorting takes a list of about 1.3 MB); records read at
# a time from records with no index.
_RUN = 1 << 15
_READ = 1 << 10
# The ranges of hashes counted one at a time once every run is in: each about 1/256 of them (for
# 10,000,000 people, 40,000 hashes, counted in a set of 2 MB).
_PARTS = 256
_BOUNDS = [-(1 << 63) + ((1 << 64) * part) // _PARTS for part in range(1, _PARTS)]
_ONCE = array("q", [1])


class _SortedRuns:
    """Runs of hashes, each counted and sorted, in an unlinked temporary file: a run's distinct
    hashes and how often each came, so that a person named in every record takes a few bytes a
    run. The hashes found more than once are counted a range of hashes at a time, from every
    run's part in that range."""

    def __init__(self) -> None:
        self._file: IO[bytes] | None = None
        # Where each run starts in the file, its distinct hashes, where each of its parts begins
        # among them (and its end), and whether its counts follow them (else each came once).
        self._runs: list[tuple[int, int, array[int], bool]] = []

    def add(self, hashes: array[int]) -> None:
        if not hashes:
            return
        ordered = sorted(hashes)
        # Most runs name no one twice: nothing to count, and no counts written (8 bytes a hash).
        counts = None
        if len(set(ordered)) < len(ordered):
            counted = Counter(ordered)
            ordered = sorted(counted)
            counts = array("q", map(counted.__getitem__, ordered))
        # Four bytes a cut: a list of ints would hold 9 KB for each run, for the whole check.
        cuts = array("I", [0, *(bisect.bisect_left(ordered, bound) for bound in _BOUNDS), len(ordered)])
        try:
            if self._file is None:
                self._file = tempfile.TemporaryFile(prefix="cio-sync-index-")  # noqa: SIM115 - closed by repeated()
            self._runs.append((self._file.tell(), len(ordered), cuts, counts is not None))
            array("q", ordered).tofile(self._file)
            if counts is not None:
                counts.tofile(self._file)
        except OSError as e:
            raise _lost(e) from None

    def repeated(self) -> Iterator[tuple[int, int]]:
        """Each hash added more than once, and how often, in order; the file is closed once all
        were found."""
        if self._file is None:
            return
        try:
            for part in range(_PARTS):
                hashes, counts = self._part(part)
                # Most ranges hold no hash twice: told in C, without counting.
                if len(set(hashes)) < len(hashes) or max(counts, default=1) > 1:
                    total: Counter[int] = Counter()
                    for hashed, count in zip(hashes, counts, strict=True):
                        total[hashed] += count
                    yield from sorted((hashed, count) for hashed, count in total.items() if count > 1)
        except OSError as e:
            raise _lost(e) from None
        finally:
            self._file.close()
            self._file = None

    def _part(self, part: int) -> tuple[array[int], array[int]]:
        """Every run's distinct hashes in the range ``part``, and how often each came."""
        assert self._file is not None
        hashes, counts = array("q"), array("q")
        for start, distinct, cuts, counted in self._runs:
            low, high = cuts[part], cuts[part + 1]
            if high > low:
                self._file.seek(start + low * hashes.itemsize)
                hashes.fromfile(self._file, high - low)
                if counted:
                    self._file.seek(start + (distinct + low) * counts.itemsize)
                    counts.fromfile(self._file, high - low)
                else:
                    counts.extend(_ONCE * (high - low))
        return hashes, counts


def index_records(records: Iterable[object], mapper: RecordMapper) -> tuple[Iterable[object], PersonIndex]:
    """``records`` ready to be read for a run, and their :class:`PersonIndex`, for a caller that
    brought none: a data file's records are read once more from its start, a sequence is read
    twice, and records that can be read only once are first kept in a temporary file."""
    if isinstance(records, Records):
        try:
            return records, PersonIndex.of(records.again(), mapper.person_keys)
        except DataFileChanged:
            # The run will find the change where it reads it, and stop there; until then its
            # records are written one by one.
            return records, PersonIndex.of((), mapper.person_keys)
    if isinstance(records, Sequence):
        return records, PersonIndex.of(records, mapper.person_keys)
    spool = _Spool()
    index = PersonIndex.of(spool.keep(records), mapper.person_keys)
    return spool.read(), index


class _Spool:
    """Records that can be read only once, kept in a temporary database to be read again."""

    def __init__(self) -> None:
        self._db = temporary_database()
        self._db.execute("CREATE TABLE records (record BLOB NOT NULL)")

    def keep(self, records: Iterable[object]) -> Iterator[object]:
        for record in records:
            self._db.execute("INSERT INTO records VALUES (?)", (dump(record),))
            yield record

    def read(self) -> Iterator[object]:
        try:
            for (blob,) in self._db.execute("SELECT record FROM records ORDER BY rowid"):
                yield load(blob)
        finally:
            self._db.close()


def dump(record: object) -> bytes:
    return pickle.dumps(record, pickle.HIGHEST_PROTOCOL)


def load(blob: bytes) -> object:
    return pickle.loads(blob)  # noqa: S301 - our own private database, written by this run

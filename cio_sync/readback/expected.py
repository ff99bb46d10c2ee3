"""What each person in the data file should hold: their records' mapped attributes, merged in file order.

A person the file names in several records is one person: each attribute takes the value of the
last record that sets it (a record that leaves an attribute out does not set it; a ``null`` does).
The merged state lives in a private temporary SQLite file, not in memory, so a file of millions of
people costs the same memory as one of a hundred: the page cache and a bounded write buffer.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ..input.config import UPDATE_ONLY, IdType
from ..input.mapping import TIMESTAMP, PersonUpdate

# People merged in memory before they are written out: bounds memory, amortises the writes.
BUFFER_PEOPLE = 20_000
# Rows asked for in one query (SQLite allows at most 32,766 parameters).
_QUERY_ROWS = 500
# The page cache, in KiB (a negative cache_size is KiB): enough to keep the index hot.
_CACHE_KIB = 16_000


class Verdict(str, Enum):
    """What reading a person back found."""

    MATCHES = "matches"  # every attribute the file sets holds its value
    DIFFERS = "differs"  # at least one attribute holds another value, or none
    MISSING = "missing"  # the workspace has no such person


@dataclass(frozen=True, slots=True)
class ExpectedPerson:
    """One person as the file says they should be: how to name them, and the attributes it sets."""

    seq: int
    key: str
    kind: IdType
    identifier: str
    attributes: dict[str, Any]


@dataclass(slots=True)
class _Pending:
    kind: IdType
    identifier: str
    attributes: dict[str, Any]


class ExpectedState:
    """Every person's expected attributes, merged in file order, numbered 0, 1, ... by first appearance."""

    def __init__(self, buffer_people: int = BUFFER_PEOPLE) -> None:
        # "": a private on-disk database SQLite deletes when the connection closes.
        self._db = sqlite3.connect("")
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
        self._db.execute(
            "CREATE TABLE people (seq INTEGER PRIMARY KEY, key TEXT UNIQUE NOT NULL, kind TEXT NOT NULL,"
            " identifier TEXT NOT NULL, state TEXT NOT NULL, verdict TEXT)"
        )
        self._db.execute("CREATE TABLE held (key TEXT PRIMARY KEY, first INTEGER NOT NULL) WITHOUT ROWID")
        self._buffer: dict[str, _Pending] = {}
        self._buffer_people = buffer_people
        self.count = 0
        # People with an invalid record, and the first one's index: in memory up to the buffer's
        # size, then on disk.
        self._held: dict[str, int] = {}
        self._held_on_disk = False

    def hold(self, key: str, index: int) -> None:
        """``key``'s person has an invalid record, record ``index`` (read in file order): a sync
        holds back their later records (they would overtake it once it is fixed and fed back), so
        none of them is expected."""
        if self.held_from(key) is not None:
            return
        self._held[key] = index
        if len(self._held) >= self._buffer_people:
            self._db.executemany("INSERT INTO held VALUES (?, ?)", self._held.items())
            self._held.clear()
            self._held_on_disk = True

    def held_from(self, key: str) -> int | None:
        """The index of ``key``'s first invalid record, or None."""
        found = self._held.get(key)
        if found is not None or not self._held_on_disk:
            return found
        row = self._db.execute("SELECT first FROM held WHERE key = ?", (key,)).fetchone()
        return None if row is None else int(row[0])

    def add(self, update: PersonUpdate) -> None:
        """Merge one valid record's mapped attributes into its person's expected state, unless an
        invalid record of theirs came before it (see :meth:`hold`)."""
        if (self._held or self._held_on_disk) and self.held_from(update.key) is not None:
            return
        attributes: dict[str, Any] = json.loads(update.body)
        # Controls of the write, not attributes: the workspace keeps neither.
        attributes.pop(UPDATE_ONLY, None)
        attributes.pop(TIMESTAMP, None)
        pending = self._buffer.get(update.key)
        if pending is None:
            self._buffer[update.key] = _Pending(update.kind, update.identifier, attributes)
            if len(self._buffer) >= self._buffer_people:
                self.flush()
        else:
            pending.attributes.update(attributes)

    def flush(self) -> None:
        """Write the buffered people out, merged with what earlier records of theirs set."""
        if not self._buffer:
            return
        keys = list(self._buffer)
        known: dict[str, tuple[int, str]] = {}
        for start in range(0, len(keys), _QUERY_ROWS):
            chunk = keys[start : start + _QUERY_ROWS]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT key, seq, state FROM people WHERE key IN ({marks})"  # noqa: S608 - only ?s are formatted in
            known.update((key, (seq, state)) for key, seq, state in self._db.execute(query, chunk))
        rows = []
        for key in keys:  # in order of first appearance within the buffer: new people are numbered so
            pending = self._buffer[key]
            if key in known:
                seq, state = known[key]
                merged = json.loads(state)
                merged.update(pending.attributes)
                attributes = merged
            else:
                seq, attributes = self.count, pending.attributes
                self.count += 1
            rows.append((seq, key, pending.kind.value, pending.identifier, _dump(attributes)))
        self._db.executemany("INSERT OR REPLACE INTO people VALUES (?, ?, ?, ?, ?, NULL)", rows)
        self._buffer.clear()

    def people(self, chosen: Iterable[int] | None = None) -> Iterator[ExpectedPerson]:
        """Every person in order of first appearance, or those numbered in ``chosen`` (ascending)."""
        self.flush()
        if chosen is None:
            # Page by page, each fetched whole: no cursor stays open while verdicts are written.
            after = -1
            query = "SELECT seq, key, kind, identifier, state FROM people WHERE seq > ? ORDER BY seq LIMIT ?"
            while rows := self._db.execute(query, (after, _QUERY_ROWS)).fetchall():
                yield from (_person(row) for row in rows)
                after = rows[-1][0]
            return
        numbers = list(chosen)
        for start in range(0, len(numbers), _QUERY_ROWS):
            chunk = numbers[start : start + _QUERY_ROWS]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT seq, key, kind, identifier, state FROM people WHERE seq IN ({marks}) ORDER BY seq"  # noqa: S608 - only ?s
            yield from (_person(row) for row in self._db.execute(query, chunk).fetchall())

    def judge(self, verdicts: Iterable[tuple[str, Verdict]]) -> None:
        """Record what reading back found for these people (by key)."""
        self._db.executemany("UPDATE people SET verdict = ? WHERE key = ?", ((v.value, k) for k, v in verdicts))

    def verdict(self, key: str) -> Verdict | None:
        """What reading back found for the person ``key``; None when they were not read back."""
        row = self._db.execute("SELECT verdict FROM people WHERE key = ?", (key,)).fetchone()
        return Verdict(row[0]) if row is not None and row[0] is not None else None

    def any_failed(self) -> bool:
        """Whether anyone was found to differ or be missing."""
        query = "SELECT 1 FROM people WHERE verdict IN (?, ?) LIMIT 1"
        return self._db.execute(query, (Verdict.DIFFERS.value, Verdict.MISSING.value)).fetchone() is not None

    def close(self) -> None:
        """Close (and so delete) the temporary database."""
        self._db.close()


def _dump(attributes: dict[str, Any]) -> str:
    return json.dumps(attributes, ensure_ascii=False, separators=(",", ":"))


def _person(row: tuple[Any, ...]) -> ExpectedPerson:
    seq, key, kind, identifier, state = row
    return ExpectedPerson(seq, key, IdType(kind), identifier, json.loads(state))

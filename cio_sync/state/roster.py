"""Who the ledger holds as written to a workspace, who left the data file, and their removals.

The ``synced`` table of the ledger is scoped by the fingerprint of the mappings: a changed mapping
makes it trust nothing. Membership must not change with a mapping, so the people written to a
workspace are kept apart, in ``people``, scoped by the workspace alone (site id and base URL).
A row is written before any write to the person leaves (see
:meth:`~cio_sync.state.ledger.Ledger.sending`): a write whose answer is lost, or a run killed
with it in flight, still leaves the person counted, so a later run can remove them.

A removal follows the ledger's write-ahead rule:

- before its request leaves, the row is marked pending with its mode, and every ``synced`` entry
  of the person is deleted (the workspace will no longer hold that body), in one committed
  transaction (:meth:`Roster.pending`);
- only after a 2xx is the row marked removed (:meth:`Roster.removed`). A lost answer, a 5xx past
  its retries or a kill leaves it pending, and the next run that removes people removes them again.

A pending or done suppression sets ``suppressed``: such a person who comes back must be
unsuppressed before they are written. Writing a person again resets their row.

Who was named in this run's data file is kept in a ``TEMP`` table of the ledger's connection, so
that the people who left are found by one exact query, however many there are.

A mirroring run that does not end clean keeps who its file named, in ``kept`` (added to whoever
an earlier such run kept), and a run that ends clean forgets them: such a run leaves a ``--failed``
file holding only the records not synced, and feeding it back must not take it for the whole
membership. Until a run ends clean, a person counts as removed only when named neither by the
run's own file nor in ``kept``.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import OutputLost
from ..input.config import Config, IdType, WhenRemoved

PEOPLE_SCHEMA = """
CREATE TABLE IF NOT EXISTS people (
    workspace TEXT NOT NULL,
    person TEXT NOT NULL,
    kind TEXT NOT NULL,
    identifier TEXT NOT NULL,
    path TEXT NOT NULL,
    person_id TEXT NOT NULL,
    removal TEXT,
    removed INTEGER NOT NULL DEFAULT 0,
    suppressed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace, person)
) WITHOUT ROWID;
"""
KEPT_SCHEMA = """
CREATE TABLE IF NOT EXISTS kept (
    workspace TEXT NOT NULL,
    person TEXT NOT NULL,
    PRIMARY KEY (workspace, person)
) WITHOUT ROWID;
"""
KEPT_COLUMNS = ["workspace", "person"]
PEOPLE_COLUMNS = ["workspace", "person", "kind", "identifier", "path", "person_id", "removal", "removed", "suppressed"]
# A person written (again): nothing pending, nothing removed, not suppressed (a comeback was
# unsuppressed before this write could succeed).
# Written only when it changes something: the row is nearly always in place since the person's
# write left (SENDING), and a write per record would double the ledger's cost.
WRITTEN = (
    "INSERT INTO people VALUES (?, ?, ?, ?, ?, ?, NULL, 0, 0) ON CONFLICT (workspace, person) "
    "DO UPDATE SET removal = NULL, removed = 0, suppressed = 0 "
    "WHERE suppressed = 1 OR removal IS NOT NULL OR removed = 1"
)
# A person about to be written: a member, no longer removed nor pending; still suppressed if they
# were (until a write succeeds, after their unsuppress).
SENDING = (
    "INSERT INTO people VALUES (?, ?, ?, ?, ?, ?, NULL, 0, 0) ON CONFLICT (workspace, person) "
    "DO UPDATE SET removal = NULL, removed = 0 WHERE removal IS NOT NULL OR removed = 1"
)
# How many seen people are held in memory before they go to the TEMP table.
_SEEN_BUFFER = 2000


def workspace_fingerprint(config: Config) -> str:
    """A digest of where people are written (site id and base URL), and nothing of how."""
    shape = {"siteId": config.credentials.site_id, "baseUrl": same_url(config.base_url)}
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:32]


def same_url(url: str) -> str:
    """``url`` as every spelling of the same address writes it: the scheme and host in lower case
    (both are case-insensitive). A query or fragment, even an empty one, is refused with the
    configuration.

    A URL already written so comes back unchanged, so ledgers written before keep their people.
    Different hosts stay apart even when they reach the same place (``localhost``, ``127.0.0.1``):
    nothing here can tell, and a workspace split in two only removes fewer people.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    netloc, tail = rest[:cut], rest[cut:]
    user, at, host = netloc.rpartition("@")
    return f"{scheme.lower()}://{user}{at}{host.lower()}{tail}"


@dataclass(frozen=True, slots=True)
class Leaver:
    """A person the ledger holds who is named nowhere in this run's data file."""

    key: str
    person_id: str
    kind: IdType
    identifier: str
    path: str
    # The mode of a removal written ahead by an earlier run and never confirmed, else None.
    pending: WhenRemoved | None


class Roster:
    """The people of one workspace in the ledger's connection ``db`` (the ledger file ``path``)."""

    def __init__(self, db: sqlite3.Connection, path: str, config: Config) -> None:
        self._db = db
        self._path = path
        self._workspace = workspace_fingerprint(config)
        self._buffer: list[tuple[str]] = []
        self._db.execute("CREATE TEMP TABLE IF NOT EXISTS seen (person TEXT PRIMARY KEY) WITHOUT ROWID")
        self.begin()

    def begin(self) -> None:
        """A run starts: no one is named yet. (One ledger may serve several runs in turn: who an
        earlier one named must not keep anyone from leaving in the next.)"""
        self._buffer.clear()
        self._db.execute("DELETE FROM temp.seen")

    def seen(self, key: str) -> None:
        """``key`` is named by a record of this run's data file (valid or not)."""
        self._buffer.append((key,))
        if len(self._buffer) >= _SEEN_BUFFER:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            self._db.executemany("INSERT OR IGNORE INTO temp.seen VALUES (?)", self._buffer)
            self._buffer.clear()

    def held(self) -> int:
        """How many people the ledger holds for this workspace (written, or pending removal)."""
        return self._count("removed = 0")

    def leavers(self) -> list[Leaver]:
        """Everyone held (not yet removed) whom no record of this run named, nor ``kept`` holds, by key."""
        self._flush()
        query = (
            "SELECT person, person_id, kind, identifier, path, removal FROM people "
            "WHERE workspace = ? AND removed = 0 AND person NOT IN (SELECT person FROM temp.seen) {} "
            "ORDER BY person"
        )
        kept = "AND person NOT IN (SELECT person FROM kept WHERE workspace = ?)"
        try:
            rows = self._db.execute(query.format(kept), (self._workspace, self._workspace)).fetchall()
        except sqlite3.OperationalError:
            try:  # a ledger from before ``kept``, looked at read-only: it keeps no one
                rows = self._db.execute(query.format(""), (self._workspace,)).fetchall()
            except sqlite3.OperationalError:  # a ledger from before mirroring, looked at read-only
                return []
        return [
            Leaver(str(r[0]), str(r[1]), IdType(r[2]), str(r[3]), str(r[4]), WhenRemoved(r[5]) if r[5] else None)
            for r in rows
        ]

    def spared(self) -> int:
        """How many people held whom no record of this run named are spared by ``kept``."""
        self._flush()
        try:
            row = self._db.execute(
                "SELECT count(*) FROM people WHERE workspace = ? AND removed = 0 "
                "AND person NOT IN (SELECT person FROM temp.seen) "
                "AND person IN (SELECT person FROM kept WHERE workspace = ?)",
                (self._workspace, self._workspace),
            ).fetchone()
        except sqlite3.OperationalError:  # a ledger from before ``kept``, looked at read-only
            return 0
        return int(row[0])

    def keep_named(self) -> None:
        """Keep who this run's file named, with whoever is kept already, until a run ends clean:
        durable when it returns."""
        self._flush()
        self._write([("INSERT OR IGNORE INTO kept SELECT ?, person FROM temp.seen", [(self._workspace,)])])

    def forget_named(self) -> None:
        """The run ended clean: its file named everyone, and no one is kept any longer."""
        self._write([("DELETE FROM kept WHERE workspace = ?", [(self._workspace,)])])

    def suppressed(self) -> set[str]:
        """The people cio-sync suppressed (or may have: pending), who must be unsuppressed to come back."""
        try:
            rows = self._db.execute(
                "SELECT person FROM people WHERE workspace = ? AND suppressed = 1", (self._workspace,)
            ).fetchall()
        except sqlite3.DatabaseError:  # unreadable (no table yet, a disk error): none known
            return set()
        return {str(r[0]) for r in rows}

    def pending(self, leavers: Sequence[Leaver], mode: WhenRemoved) -> None:
        """Before their requests leave: write ``leavers``' removal ahead, durable when it returns."""
        suppress = int(mode is WhenRemoved.SUPPRESS)
        marks = [(mode.value, suppress, self._workspace, p.key) for p in leavers]
        self._write(
            [
                (
                    "UPDATE people SET removal = ?, suppressed = max(suppressed, ?) WHERE workspace = ? AND person = ?",
                    marks,
                ),
                ("DELETE FROM synced WHERE person = ?", [(p.key,) for p in leavers]),
            ]
        )

    def removed(self, leavers: Iterable[Leaver]) -> None:
        """The workspace answered 2xx to ``leavers``' removals: durable when it returns."""
        rows = [(self._workspace, p.key) for p in leavers]
        if rows:
            self._write([("UPDATE people SET removed = 1 WHERE workspace = ? AND person = ?", rows)])

    def _count(self, where: str) -> int:
        try:
            row = self._db.execute(
                f"SELECT count(*) FROM people WHERE workspace = ? AND {where}",  # noqa: S608 - a constant
                (self._workspace,),
            ).fetchone()
        except sqlite3.OperationalError:
            return 0
        return int(row[0])

    def _write(self, statements: Sequence[tuple[str, Sequence[tuple[object, ...]]]]) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for statement, rows in statements:
                    self._db.executemany(statement, rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as e:
            raise OutputLost(f"--state {self._path}: the ledger could not be written ({e})") from None

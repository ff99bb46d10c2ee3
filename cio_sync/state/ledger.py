"""The local ledger behind ``--state``: what was last synced to each person, to skip the unchanged.

A SQLite file (WAL mode) holds, per person, a digest of the exact body last accepted by the
workspace. Entries are scoped by a fingerprint of everything that shapes those bodies and where
they go (site id, base URL, userId, idType, the mappings with their paths, constants and casts,
mode): a ledger made for another workspace or another mapping is not trusted.

An entry is a promise that the workspace holds that body, so it must never outlive the truth:

- before a different body for a person leaves the machine, that person's entry is deleted and
  the deletion committed (:meth:`Ledger.sending`): if the answer is lost, the run killed or the
  request refused, the person is simply not vouched for and is sent again next time;
- an entry is written only after a 2xx, and committed at once (:meth:`Ledger.accepted`): a run
  killed at any instant makes the next one resend at most the requests that were in flight.

Every statement commits on its own (autocommit), so no write transaction is ever open while a
request is on the network. Commits use ``synchronous=NORMAL``: in WAL mode a commit then survives
the process being killed, though not the machine losing power (which costs, at worst, resending
the people of the last commits). A run holds an exclusive ``flock`` on the ledger file for its
whole length, so two runs never share one ledger.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shlex
import sqlite3
import stat
import time
from collections.abc import Iterable, Sequence
from enum import Enum
from pathlib import Path
from types import TracebackType

from ..errors import LedgerInUse, OutputError, OutputLost
from ..input.config import Config, IdType
from ..input.mapping import PersonUpdate
from .roster import (
    KEPT_COLUMNS,
    KEPT_SCHEMA,
    PEOPLE_COLUMNS,
    PEOPLE_SCHEMA,
    SENDING,
    WRITTEN,
    Roster,
    workspace_fingerprint,
)


def fingerprint(config: Config) -> str:
    """A digest of what shapes request bodies and where they go; changing any of it resends all."""
    shape: dict[str, object] = {
        "siteId": config.credentials.site_id,
        "baseUrl": config.base_url,
        "userId": config.user_id,
        "mappings": [m.shape() for m in config.mappings],
        "mode": config.mode.value,
    }
    # Keys that came later join the digest only when set, so that older ledgers stay trusted.
    if config.id_type is not IdType.AUTO:
        shape["idType"] = config.id_type.value
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:32]


_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS synced (
    scope TEXT NOT NULL,
    person TEXT NOT NULL,
    digest BLOB NOT NULL,
    synced_at REAL NOT NULL,
    PRIMARY KEY (scope, person)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('schema', '1');
"""
    + PEOPLE_SCHEMA
    + KEPT_SCHEMA
)
# How long a statement waits for a reader that holds the file (a dry run, an inspection) to let
# go: writers are kept apart by the run lock, so only readers can be in the way, and briefly.
_BUSY_SECONDS = 10.0


def digest(body: bytes) -> bytes:
    """The digest of one request body, as stored in the ledger."""
    return hashlib.blake2b(body, digest_size=16).digest()


class Known(Enum):
    """How a person update compares with what the ledger vouches for."""

    NEW = "new"
    # The ledger vouches for another body: its entry is withdrawn before this one is sent.
    CHANGED = "changed"
    # The workspace holds exactly this body: sending it again would change nothing.
    UNCHANGED = "unchanged"


class Ledger:
    """The ledger file at ``path``, holding entries for ``config``'s workspace and mapping.

    With ``trust=False`` (``--full``) everything counts as new, but successes are still
    recorded. ``read_only`` (``--dry-run``) neither creates nor changes the file. Opening it for
    writing takes the run lock: :class:`~cio_sync.errors.LedgerInUse` when another run holds
    it. Use from one thread; close it (or use it as a context manager) to let the next run in.
    """

    def __init__(self, path: str, config: Config, *, trust: bool = True, read_only: bool = False) -> None:
        self.path = path
        self._scope = fingerprint(config)
        self._workspace = workspace_fingerprint(config)
        self._trust = trust
        self._lock: int | None = None
        _check_kind(path)
        if read_only:
            self._db = _open_read_only(path)
        else:
            self._lock = _take_lock(path)
            try:
                self._db = _open_for_writing(path)
                self._note_run()
            except BaseException:
                os.close(self._lock)
                raise
        try:
            # Entries of another configuration (or workspace): its writes may have overwritten
            # what this one's entries vouch for, and no one can tell in which order they ran. So
            # no entry is trusted, and a run that writes forgets them all: a ledger holds the
            # entries of one configuration at a time.
            self.foreign = self._others() > 0
            if self.foreign:
                self._trust = False
                if not read_only:
                    self._db.execute("DELETE FROM synced")
        except sqlite3.DatabaseError as e:
            self.close()
            raise _unusable(path, e) from None
        # Who this workspace holds, for mirroring (whenRemoved); it shares this connection.
        self.roster = Roster(self._db, path, config)

    def _others(self) -> int:
        """How many entries another configuration (or workspace) made."""
        try:
            row = self._db.execute("SELECT count(*) FROM synced WHERE scope != ?", (self._scope,)).fetchone()
        except sqlite3.OperationalError:  # a read-only look at a file that holds no ledger yet
            return 0
        return int(row[0])

    def _note_run(self) -> None:
        # For the message of a run that finds the ledger locked: which process holds it.
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('run', ?)", (f"{os.getpid()} {time.time():.0f}",))

    def compare(self, update: PersonUpdate) -> Known:
        """How ``update`` compares with the body the ledger vouches for (with ``--full``: new)."""
        return self.check(update)[0]

    def check(self, update: PersonUpdate) -> tuple[Known, bool]:
        """:meth:`compare`'s answer, and whether the ledger vouches for another body of the person
        (or may: it cannot be read), an entry to withdraw before ``update`` leaves (see :meth:`sending`).

        Anything but unchanged is to be sent, and :meth:`sending` must be called before it leaves.
        """
        try:
            row = self._db.execute(
                "SELECT digest FROM synced WHERE scope = ? AND person = ?", (self._scope, update.key)
            ).fetchone()
        except sqlite3.Error:
            # Unreadable (a read-only look at a ledger that has no tables yet, a disk error): it
            # may vouch for another body all the same.
            return Known.NEW, True
        if row is None:
            return Known.NEW, False
        if bytes(row[0]) == digest(update.body):
            return (Known.UNCHANGED if self._trust else Known.NEW), False
        return (Known.CHANGED if self._trust else Known.NEW), True

    def sending(self, updates: Iterable[PersonUpdate], withdraw: Iterable[str]) -> None:
        """Before a request for ``updates`` leaves: stop vouching for any other body of theirs, by
        withdrawing the entries of the people ``withdraw`` names (:meth:`check` found them).

        Durable when it returns. A person whose entry holds the very body being sent keeps it:
        whatever becomes of the request, the workspace still holds that body.
        """
        sent = list(updates)
        stale = [(self._scope, key) for key in withdraw]
        # Whoever a write may reach joins the workspace's roster first, so that a write that
        # lands without its answer still counts them in (see cio_sync.state.roster).
        people = [(self._workspace, u.key, u.kind.value, u.identifier, u.path, u.person_id) for u in sent]
        self._write("DELETE FROM synced WHERE scope = ? AND person = ?", stale, (SENDING, people))

    def accepted(self, updates: Iterable[PersonUpdate]) -> None:
        """Record that the workspace answered 2xx to ``updates``.

        Durable when it returns: a run killed afterwards does not send them again.
        """
        now = time.time()
        done = list(updates)
        if not done:
            return
        rows = [(self._scope, u.key, digest(u.body), now) for u in done]
        # In the same transaction, the person joins the workspace's roster (see cio_sync.state.roster).
        people = [(self._workspace, u.key, u.kind.value, u.identifier, u.path, u.person_id) for u in done]
        self._write("INSERT OR REPLACE INTO synced VALUES (?, ?, ?, ?)", rows, (WRITTEN, people))

    def stamp_floor(self) -> int:
        """The lowest ``_timestamp`` this run may send: above every stamp an earlier run using
        this ledger may have sent, even one killed mid-request (0 when none is known)."""
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'stamp'").fetchone()
        except sqlite3.Error:
            return 0
        try:
            return int(row[0]) + 1 if row is not None else 0
        except ValueError:
            return 0

    def stamped(self, stamp: int) -> None:
        """Record, before it is sent, that a write stamped ``stamp`` may go: durable when it
        returns; :class:`OutputLost` when the file cannot take it."""
        self._write("INSERT OR REPLACE INTO meta VALUES ('stamp', ?)", [(str(stamp),)])

    def _write(
        self, statement: str, rows: Sequence[tuple[object, ...]], *more: tuple[str, Sequence[tuple[object, ...]]]
    ) -> None:
        """``statement`` for every row (and each of ``more``), in one committed transaction;
        :class:`OutputLost` when the file cannot take it (a full disk)."""
        try:
            with _Transaction(self._db):
                self._db.executemany(statement, rows)
                for other, other_rows in more:
                    self._db.executemany(other, other_rows)
        except sqlite3.Error as e:
            raise OutputLost(f"--state {self.path}: the ledger could not be written ({e})") from None

    def close(self) -> None:
        """Close the file and release the run lock."""
        self._db.close()
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class _Transaction:
    """BEGIN ... COMMIT around a few statements on an autocommit connection (ROLLBACK on error)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")


def _take_lock(path: str) -> int:
    """An exclusive ``flock`` on the ledger file, held until the returned descriptor is closed.

    The kernel drops it when the process dies, however it dies, so a killed run never leaves a
    stale lock. SQLite's own locks are POSIX record locks, which ``flock`` does not touch.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except IsADirectoryError:
        raise OutputError(f"--state {path}: is a directory") from None
    except OSError as e:
        raise OutputError(f"--state {path}: cannot open the ledger: {e.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LedgerInUse(f"--state {path}: another cio-sync run is using this ledger{_holder(path)}") from None
    return fd


def _holder(path: str) -> str:
    """ ", pid N, started at T" for the run that holds the ledger, when it has said so."""
    try:
        db = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, timeout=1.0)
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'run'").fetchone()
        finally:
            db.close()
        pid, started = str(row[0]).split()
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(started)))
    except (sqlite3.Error, TypeError, ValueError):
        return " (it has not said which yet); wait for it to finish"
    return f" (pid {pid}, started {when}); wait for it to finish"


# The tables of a ledger and their columns. A database holding anything else is not one, and is
# left untouched: it may be some other program's.
_SHAPE = {"synced": ["scope", "person", "digest", "synced_at"], "meta": ["key", "value"]}
# A ledger made before mirroring has no people table, and one made before the kept set of a run
# that did not end clean no kept table; each gains them when next opened for writing.
_MIRRORED = {**_SHAPE, "people": PEOPLE_COLUMNS}
_SHAPES = ({**_MIRRORED, "kept": KEPT_COLUMNS}, _MIRRORED, _SHAPE)


def _check_shape(db: sqlite3.Connection, path: str) -> None:
    tables = [str(row[0]) for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    shape = {table: [str(c[1]) for c in db.execute(f'PRAGMA table_info("{table}")')] for table in tables}
    if shape and shape not in _SHAPES:
        db.close()
        raise OutputError(
            f"--state {path}: an SQLite database, but not a cio-sync ledger (its tables are "
            f"{', '.join(sorted(shape))}); give a new path"
        )
    # A damaged file can still answer lookups from its intact pages, so that a dry run would
    # plan on it and a run would find out only at its first write, mid-run: every run checks
    # the whole file's structure first (about 0.15 s a million entries, once read from disk).
    (found,) = db.execute("PRAGMA quick_check(1)").fetchone()
    if found != "ok":
        db.close()
        raise _damaged(path, " ".join(str(found).split()).removeprefix("*** in database main *** "))


def _check_kind(path: str) -> None:
    """Refuse a ``path`` that is there but is no regular file: opening a FIFO would wait for a
    writer for ever, and a device is no place for a ledger."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return  # made by the run (or, for a dry run, read as empty)
    except OSError as e:
        raise OutputError(f"--state {path}: cannot be read: {e.strerror}") from None
    if stat.S_ISDIR(mode):
        raise OutputError(f"--state {path}: is a directory; give the path of a file")
    if not stat.S_ISREG(mode):
        kind = "a pipe, a socket or a device"
        raise OutputError(f"--state {path}: is not a regular file ({kind}); give the path of a file")


def _unusable(path: str, error: sqlite3.DatabaseError) -> OutputError:
    """Why the file at ``path`` cannot serve as a ledger, as SQLite said it."""
    if error.sqlite_errorcode == sqlite3.SQLITE_CORRUPT:  # its structure is broken
        return _damaged(path, str(error))
    return OutputError(f"--state {path}: not a usable ledger: {error}")


def _damaged(path: str, problem: str) -> OutputError:
    # What the ledger alone knows goes with it: say so before anyone moves it aside. The command
    # names it by its absolute path, quoted: the sqlite3 shell reads ":memory:" and "file:..." as
    # databases of its own.
    where = shlex.quote(os.path.abspath(path))
    return OutputError(
        f"--state {path}: the ledger is damaged ({problem}). Try SQLite's recovery first "
        f"(sqlite3 {where} .recover | sqlite3 recovered.db); a run without it sends everyone once more, "
        "cannot remove people who left the file before it, and stamps by the wall clock alone"
    )


def _open_for_writing(path: str) -> sqlite3.Connection:
    try:
        # By its absolute path: SQLite reads the name ":memory:" as a database kept in memory,
        # which would vouch for no one and forget every stamp by the next run.
        db = sqlite3.connect(os.path.abspath(path), timeout=_BUSY_SECONDS, isolation_level=None)
        _check_shape(db, path)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
    except sqlite3.DatabaseError as e:
        raise _unusable(path, e) from None
    return db


def _open_read_only(path: str) -> sqlite3.Connection:
    # A dry run must not create the ledger; an empty in-memory one answers "not known".
    if not Path(path).exists():
        db = sqlite3.connect(":memory:")
        db.executescript(_SCHEMA)
        return db
    uri = f"{Path(path).resolve().as_uri()}?mode=ro"
    try:
        return _open_uri(uri, path)
    except sqlite3.OperationalError:
        # A WAL ledger needs its shared-memory file, which a read-only filesystem cannot hold.
        # Nothing can be writing the ledger there, so it is read as it stands on disk.
        pass
    except sqlite3.DatabaseError as e:
        raise _unusable(path, e) from None
    try:
        return _open_uri(uri + "&immutable=1", path)
    except sqlite3.DatabaseError as e:
        raise _unusable(path, e) from None


def _open_uri(uri: str, path: str) -> sqlite3.Connection:
    """The ledger at ``uri``, checked to be one (:class:`OutputError` when it is something else)."""
    db = sqlite3.connect(uri, uri=True)
    try:
        _check_shape(db, path)
    except sqlite3.DatabaseError:
        db.close()
        raise
    return db

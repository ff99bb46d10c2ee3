"""The local ledger behind ``--state``: what was last synced to each person, to skip the unchanged.

A SQLite file (WAL mode) holds, per person, a digest of the exact body last accepted by the
workspace. Entries are scoped by a fingerprint of everything that shapes those bodies and where
they go (site id, base URL, userId, mappings, mode): a ledger made for another workspace or
another mapping is not trusted. Entries are written only after a 2xx, and committed in small
batches: a crash loses at most the last batch, whose people are then simply sent again.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path

from .config import Config
from .errors import OutputError

# Commit after this many new entries, or this many seconds, whichever comes first.
COMMIT_EVERY = 100
COMMIT_SECONDS = 0.25


def fingerprint(config: Config) -> str:
    """A digest of what shapes request bodies and where they go; changing any of it resends all."""
    shape = {
        "siteId": config.credentials.site_id,
        "baseUrl": config.base_url,
        "userId": config.user_id,
        "mappings": [[m.source, m.target] for m in config.mappings],
        "mode": config.mode,
    }
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:32]


_SCHEMA = """
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


def _open(path: str, read_only: bool) -> sqlite3.Connection:
    if read_only:
        # A dry run must not create the ledger; an empty in-memory one answers "not known".
        if not Path(path).exists():
            return sqlite3.connect(":memory:")
        return sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(_SCHEMA)
    return db


def digest(body: bytes) -> bytes:
    """The digest of one request body, as stored in the ledger."""
    return hashlib.blake2b(body, digest_size=16).digest()


class Ledger:
    """The ledger file at ``path`` for the configuration with fingerprint ``scope``.

    With ``trust=False`` (``--full``) nothing is reported unchanged, but successes are still
    recorded. Use from one thread.
    """

    def __init__(self, path: str, scope: str, *, trust: bool = True, read_only: bool = False) -> None:
        self.path = path
        self._scope = scope
        self._trust = trust
        self._pending = 0
        self._committed_at = time.monotonic()
        try:
            self._db = _open(path, read_only)
            self.entries = self._count("scope = ?")
            # Entries exist, but none for this configuration: say so, and send everything.
            self.foreign = self.entries == 0 and self._count("scope != ?") > 0
        except sqlite3.DatabaseError as e:
            raise OutputError(f"--state {path}: not a usable ledger: {e}") from None

    def _count(self, where: str) -> int:
        try:
            row = self._db.execute(f"SELECT count(*) FROM synced WHERE {where}", (self._scope,)).fetchone()  # noqa: S608
        except sqlite3.OperationalError:  # a read-only look at a ledger that does not exist yet
            return 0
        return int(row[0])

    def known(self, person: str) -> bytes | None:
        """The digest last recorded for ``person``, or None (also always None with ``--full``)."""
        if not self._trust:
            return None
        try:
            row = self._db.execute(
                "SELECT digest FROM synced WHERE scope = ? AND person = ?", (self._scope, person)
            ).fetchone()
        except sqlite3.OperationalError:
            return None
        return bytes(row[0]) if row else None

    def record(self, person: str, body_digest: bytes) -> None:
        """Note that the workspace accepted ``body_digest`` for ``person``."""
        self._db.execute(
            "INSERT OR REPLACE INTO synced VALUES (?, ?, ?, ?)", (self._scope, person, body_digest, time.time())
        )
        self._pending += 1
        now = time.monotonic()
        if self._pending >= COMMIT_EVERY or now - self._committed_at >= COMMIT_SECONDS:
            self.commit()

    def commit(self) -> None:
        """Make the recorded entries durable."""
        self._db.commit()
        self._pending = 0
        self._committed_at = time.monotonic()

    def close(self) -> None:
        """Commit and close."""
        self.commit()
        self._db.close()

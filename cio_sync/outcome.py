"""What became of each record, in one vocabulary from the HTTP answer to the report, and why a run
stopped early."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from enum import Enum


class Status(str, Enum):
    """What became of one record of the data file."""

    # Hashed as its text, in C: Enum's own hash is a Python call, and every record's outcome is
    # counted by its status several times over.
    __hash__ = str.__hash__

    SYNCED = "synced"
    # Not sent: the ledger (--state) shows the workspace already has exactly this body.
    UNCHANGED = "unchanged"
    FAILED = "failed"
    INVALID = "invalid"
    NOT_ATTEMPTED = "not_attempted"


# What became of the records the workspace now holds.
DONE = frozenset({Status.SYNCED, Status.UNCHANGED})


class StopReason(str, Enum):
    """Why a run stopped before the end of its records (written as its value in the report)."""

    # The workspace refused the credentials mid-run (401/403): every request would fail alike.
    CREDENTIALS = "credentials"
    # Requests in a row got no HTTP answer at all: the API went away.
    UNREACHABLE = "unreachable"
    # No request made progress for --give-up-after seconds (only 429, 5xx or no answer at all).
    NO_PROGRESS = "no_progress"
    # SIGINT (Ctrl-C) and SIGTERM (docker stop, kill).
    INTERRUPTED = "interrupted"
    TERMINATED = "terminated"
    # A library caller's Stop() without a reason.
    STOPPED = "stopped"
    # An exception ended the run; it is raised to the caller.
    ERROR = "error"
    # The data file stopped parsing mid-run: it changed while being read. What was in flight is
    # settled; the result's ``error`` says what changed.
    DATA_FILE_CHANGED = "data_file_changed"
    # The --state ledger could not be written (a full disk): it could otherwise vouch for what the
    # workspace does not hold. The result's ``error`` says why.
    LEDGER_LOST = "ledger_lost"


class Stop:
    """Asks a running sync to stop: no new requests start, those in flight finish.

    Thread-safe and safe to call from a signal handler; the first reason given is kept.
    """

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason: StopReason | None = None

    def __call__(self, reason: StopReason | str = StopReason.STOPPED) -> None:
        if self.reason is None:
            self.reason = StopReason(reason)
        self.event.set()

    @property
    def requested(self) -> bool:
        """True once a stop was asked for."""
        return self.event.is_set()


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the workspace made of one person's update: the client's half of a :class:`RecordOutcome`."""

    status: Status
    http_status: int | None = None
    reason: str | None = None
    retries: int = 0
    # Set when the answer means no later request can succeed either: the run stops for it.
    stop: StopReason | None = None
    # True when the answer leaves open whether the write was applied, though its status alone
    # does not say so (a 207 that does not name the items it refused).
    unclear: bool = False


# The reason of every record a stop left unsent, whichever way it was left.
STOPPED_BEFORE_SENT = "the run stopped before it was sent"
NOT_SENT = Delivery(Status.NOT_ATTEMPTED, reason=STOPPED_BEFORE_SENT)


# Not frozen: one is made for every record, and a frozen dataclass costs five times as much to build
# (see PersonUpdate). Nothing changes one once made.
@dataclass(slots=True)
class RecordOutcome:
    """One record's fate: its position in the file, its id when it has one, and why."""

    index: int
    status: Status
    person_id: str | None = None
    reason: str | None = None
    http_status: int | None = None
    retries: int = 0
    record: object = field(default=None, repr=False, compare=False)
    # How many records this outcome stands for: more than one only for the records a stopped
    # run never read (``record`` is then their :class:`~cio_sync.datafile.UnreadTail`).
    span: int = 1
    # What this record's problem has in common with others' (its reason without the value, the
    # index or the id), where the code that worded the reason knew it; see :mod:`cio_sync.engine.causes`.
    cause: str | None = None

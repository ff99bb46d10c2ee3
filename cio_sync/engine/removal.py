"""Sending removals (delete, suppress, clear) as operations through the run's adapter and workers.

Each removal is written ahead in the ledger before its request leaves, and marked done only after
a 2xx (see :mod:`cio_sync.state.roster`). Nothing here decides who is removed: that is
:mod:`cio_sync.engine.mirror`'s; nor how a removal goes on the wire: that is the transport's
adapter's (:mod:`cio_sync.engine.adapters`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..errors import OutputLost
from ..input.config import Config, WhenRemoved
from ..outcome import NOT_SENT, Delivery, Status, Stop, StopReason
from ..state.roster import Leaver, Roster
from .adapters import Action, Operation, OperationJob
from .workers import Workers

# How the Track API removes an attribute: the spec says it for objects ("Pass `null` or an empty
# string to remove an attribute") and relationships, and nothing for people. Of its two values ""
# is the one within the letter of identify, whose attribute values are string, integer or boolean
# (null is not), in v1 bodies and batch items alike.
CLEARED = ""
# Attributes a clear never sends: identifiers (clearing one would rename or split the person) and
# reserved names (``_update``, ``_timestamp``), which are instructions, not attributes.
_NOT_CLEARED = frozenset({"id", "email", "cio_id"})


def clear_attributes(config: Config) -> dict[str, object]:
    """The body that removes every attribute ``config``'s mappings write; ``_update`` so that a
    clear never creates a person (one deleted meanwhile stays deleted)."""
    body: dict[str, object] = {
        m.target: CLEARED for m in config.mappings if m.target not in _NOT_CLEARED and not m.target.startswith("_")
    }
    body["_update"] = True
    return body


def removals(config: Config, mode: WhenRemoved, people: Sequence[Leaver], stamp: int | None) -> list[Operation]:
    """The operations that remove ``people`` as ``mode`` says: a delete or a suppress each, or a
    clear (an identify that removes the mapped attributes, stamped ``stamp``)."""
    if mode is WhenRemoved.CLEAR:
        attributes = clear_attributes(config)
        return [Operation(Action.IDENTIFY, p, attributes, stamp) for p in people]
    action = Action(mode.value)
    return [Operation(action, p) for p in people]


class Sender:
    """Sends removal jobs through the run's ``workers``, ``parallelism`` at a time, each round
    written ahead in ``roster`` first.

    Deliveries are handed to ``on_done`` from the calling thread (the ledger's); the run's
    ``stop`` ends the sending between rounds, and the rest count as not attempted.
    """

    def __init__(self, workers: Workers, roster: Roster, stop: Stop, parallelism: int) -> None:
        self._workers = workers
        self._roster = roster
        self._stop = stop
        self._parallelism = parallelism

    def run(
        self, jobs: Sequence[OperationJob], mode: WhenRemoved, on_done: Callable[[Leaver, Delivery], None]
    ) -> OutputLost | None:
        """Send every one of ``jobs``; the ledger's problem when it could not be written (the rest
        are then not attempted)."""
        lost: OutputLost | None = None
        for start in range(0, len(jobs), self._parallelism):
            chunk = jobs[start : start + self._parallelism]
            if self._stop.requested or lost is not None:
                _skip(chunk, on_done)
                continue
            lost = self._round(chunk, mode, on_done)
        return lost

    def _round(
        self, chunk: Sequence[OperationJob], mode: WhenRemoved, on_done: Callable[[Leaver, Delivery], None]
    ) -> OutputLost | None:
        try:
            self._roster.pending([o.person for job in chunk for o in job.updates], mode)
        except OutputLost as e:
            _skip(chunk, on_done)
            return e
        answers = self._workers.run(chunk)
        # Only requests that left can tell that the API went away.
        flat = [d for job, deliveries in zip(chunk, answers, strict=True) if job.refused is None for d in deliveries]
        if flat and all(d.status is Status.FAILED and d.http_status is None for d in flat):
            # A whole round without one HTTP answer, each past its resends: the API went away,
            # and the rest would only fail as slowly.
            self._stop(StopReason.UNREACHABLE)
        done = []
        for job, deliveries in zip(chunk, answers, strict=True):
            for operation, delivery in zip(job.updates, deliveries, strict=True):
                if delivery.stop is not None:
                    self._stop(delivery.stop)
                if delivery.status is Status.SYNCED:
                    done.append(operation.person)
                on_done(operation.person, delivery)
        try:
            self._roster.removed(done)
        except OutputLost as e:
            return e
        return None


def _skip(chunk: Sequence[OperationJob], on_done: Callable[[Leaver, Delivery], None]) -> None:
    for job in chunk:
        for operation in job.updates:
            on_done(operation.person, NOT_SENT)

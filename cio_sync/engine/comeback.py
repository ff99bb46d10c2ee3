"""Coming back: a person cio-sync suppressed who is in a later data file is unsuppressed, then
written, in that order. An adapter around the transport's own, so the engine's loop is unchanged."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from ..input.config import Config, Transport
from ..input.mapping import PersonUpdate
from ..outcome import Delivery, Status
from ..state.roster import Leaver
from .adapters import Action, Adapter, Operation, OperationJob
from .packer import Added, Job


def leaver_of(update: PersonUpdate) -> Leaver:
    """``update``'s person, named as an operation names them."""
    return Leaver(update.key, update.person_id, update.kind, update.identifier, update.path, None)


class Comeback:
    """``inner``, but a job for a person in ``suppressed`` first unsuppresses them (in the worker
    that sends it). When that fails, their write counts as failed: the API would drop it."""

    def __init__(self, inner: Adapter, config: Config, suppressed: set[str]) -> None:
        self._inner = inner
        self._config = config
        self._suppressed = set(suppressed)
        self._lock = threading.Lock()
        self.ready = inner.ready
        # The ids of the people unsuppressed so far, for the summary and the report.
        self.unsuppressed: list[str] = []

    @property
    def room(self) -> bool:
        """As the inner adapter."""
        return self._inner.room

    def add(self, update: PersonUpdate, stamp: int | None) -> Job | str | None:
        """As the inner adapter."""
        return self._inner.add(update, stamp)

    def space(self, requests: int) -> int:
        """As the inner adapter."""
        return self._inner.space(requests)

    def add_run(self, updates: Sequence[PersonUpdate], stamp: int | None, requests: int) -> Added | None:
        """As the inner adapter."""
        return self._inner.add_run(updates, stamp, requests)

    def settled(self, job: Job) -> None:
        """As the inner adapter."""
        self._inner.settled(job)

    def take(self) -> Job | None:
        """As the inner adapter."""
        return self._inner.take()

    def drain(self) -> list[PersonUpdate]:
        """As the inner adapter."""
        return self._inner.drain()

    def operations(self, operations: Sequence[Operation]) -> list[OperationJob]:
        """As the inner adapter."""
        return self._inner.operations(operations)

    def send(self, job: Job | OperationJob) -> list[Delivery]:
        """Unsuppress whoever in ``job`` (of records) cio-sync suppressed, then send ``job``."""
        if isinstance(job, OperationJob):
            return self._inner.send(job)
        with self._lock:
            back = [u for u in job.updates if u.key in self._suppressed]
        if not back:
            return self._inner.send(job)
        refused = self._unsuppress(back)
        if self._config.transport is Transport.V1 and refused:
            # One person a request: their write is not sent at all.
            return [refused[job.updates[0].key]]
        deliveries = self._inner.send(job)
        return [refused.get(u.key, d) for u, d in zip(job.updates, deliveries, strict=True)]

    def _unsuppress(self, back: list[PersonUpdate]) -> dict[str, Delivery]:
        """Unsuppress ``back``; the delivery standing for each one's write whose unsuppress failed."""
        refused: dict[str, Delivery] = {}
        unsuppress = [Operation(Action.UNSUPPRESS, leaver_of(u)) for u in back]
        for job in self._inner.operations(unsuppress):
            for operation, delivery in zip(job.updates, self._inner.send(job), strict=True):
                person = operation.person
                if delivery.status is Status.SYNCED:
                    with self._lock:
                        self._suppressed.discard(person.key)
                        self.unsuppressed.append(person.person_id)
                    continue
                reason = f"cio-sync suppressed this person earlier, and unsuppressing them failed: {delivery.reason}"
                status = Status.NOT_ATTEMPTED if delivery.status is Status.NOT_ATTEMPTED else Status.FAILED
                refused[person.key] = Delivery(status, delivery.http_status, reason, delivery.retries, delivery.stop)
        return refused

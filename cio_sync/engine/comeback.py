"""Coming back: a person cio-sync suppressed who is in a later data file is unsuppressed, then
written, in that order. An adapter around the transport's own, so the engine's loop is unchanged."""

from __future__ import annotations

import threading

from ..input.config import Config, Transport
from ..input.mapping import PersonUpdate
from ..outcome import Delivery, Status
from ..state.roster import Leaver
from ..transport.client import TrackClient
from .adapters import Adapter
from .packer import Job
from .removal import requests_for, send


def leaver_of(update: PersonUpdate) -> Leaver:
    """``update``'s person, named as a removal names them."""
    return Leaver(update.key, update.person_id, update.kind, update.identifier, update.path, None)


class Comeback:
    """``inner``, but a job for a person in ``suppressed`` first unsuppresses them (in the worker
    that sends it). When that fails, their write counts as failed: the API would drop it."""

    def __init__(self, inner: Adapter, config: Config, client: TrackClient, suppressed: set[str]) -> None:
        self._inner = inner
        self._config = config
        self._client = client
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

    def settled(self, job: Job) -> None:
        """As the inner adapter."""
        self._inner.settled(job)

    def take(self) -> Job | None:
        """As the inner adapter."""
        return self._inner.take()

    def drain(self) -> list[PersonUpdate]:
        """As the inner adapter."""
        return self._inner.drain()

    def send(self, job: Job) -> list[Delivery]:
        """Unsuppress whoever in ``job`` cio-sync suppressed, then send ``job``."""
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
        people = [leaver_of(u) for u in back]
        for request in requests_for(self._config, "unsuppress", people):
            for person, delivery in zip(request.people, send(self._client, request), strict=True):
                if delivery.status is Status.SYNCED:
                    with self._lock:
                        self._suppressed.discard(person.key)
                        self.unsuppressed.append(person.person_id)
                    continue
                reason = f"cio-sync suppressed this person earlier, and unsuppressing them failed: {delivery.reason}"
                status = Status.NOT_ATTEMPTED if delivery.status is Status.NOT_ATTEMPTED else Status.FAILED
                refused[person.key] = Delivery(status, delivery.http_status, reason, delivery.retries, delivery.stop)
        return refused

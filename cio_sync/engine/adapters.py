"""The two transports behind one interface: each turns person updates into requests, and the
answers into one delivery per update. v1 is a batch of one.

The engine hands an adapter each update with its stamp (:meth:`Adapter.add`) and gets back the
requests to send (:class:`~cio_sync.packer.Job`); workers send them with :meth:`Adapter.send`.
Nothing here knows of files, the ledger or the order of people: that is the engine's.
"""

from __future__ import annotations

from typing import Protocol

from ..input.config import Config, Transport
from ..input.mapping import PersonUpdate, batch_item, stamped
from ..outcome import Delivery
from ..transport.client import TrackClient
from .packer import Batches, Job, oversized


class Adapter(Protocol):
    """Turns updates into requests and answers into deliveries, for one transport."""

    # Jobs kept ready beyond those in flight, so that a worker that finishes takes its next at once.
    ready: int

    @property
    def room(self) -> bool:
        """True while the adapter may take another update: the engine reads no further while False."""

    def add(self, update: PersonUpdate, stamp: int | None) -> Job | str | None:
        """Take ``update``: a request now ready to send, None when none is yet, or why the
        update cannot be carried (it is then invalid)."""

    def take(self) -> Job | None:
        """The request being filled, to send now although not full; None when there is none."""

    def drain(self) -> list[PersonUpdate]:
        """The updates taken but in no request yet, for a run that stops."""

    def send(self, job: Job) -> list[Delivery]:
        """Send ``job``: one delivery per update, in order."""

    def settled(self, job: Job) -> None:
        """``job``'s answer is in, to be settled at once (called from the engine's thread)."""


class V1Adapter:
    """``PUT /api/v1/customers/{id}``: every update is a request of its own."""

    # Memory is bounded by the requests in flight and ready: nothing else is held.
    room = True

    def __init__(self, client: TrackClient, parallelism: int) -> None:
        self._client = client
        self.ready = parallelism

    def add(self, update: PersonUpdate, stamp: int | None) -> Job:
        """The update's own request, ready at once."""
        return Job((update,), stamped(update.body, stamp))

    def take(self) -> None:
        """Nothing is ever being filled."""

    def drain(self) -> list[PersonUpdate]:
        """Nothing is ever held."""
        return []

    def send(self, job: Job) -> list[Delivery]:
        """One PUT."""
        (update,) = job.updates
        return [self._client.put_person(update.path, job.body)]

    def settled(self, job: Job) -> None:
        """Nothing is counted."""


class BatchAdapter:
    """``POST /api/v2/batch``: updates packed into batches under the endpoint's byte limits."""

    # Batches are large: one waiting ready is enough to keep the workers busy.
    ready = 1

    def __init__(self, client: TrackClient, parallelism: int) -> None:
        self._client = client
        # Batches fill to the byte limit while the gate finds requests scarce.
        gate = client.gate
        self._packer = Batches(parallelism, lambda: gate.scarce)

    @property
    def room(self) -> bool:
        """True while the records out are under the packer's bound."""
        return self._packer.room

    def add(self, update: PersonUpdate, stamp: int | None) -> Job | str | None:
        """The batch that closed to make room for ``update``, if any; or why it fits in none."""
        item = batch_item(update, stamp)
        problem = oversized(item)
        if problem is not None:
            return problem
        return self._packer.add(update, item)

    def take(self) -> Job | None:
        """The batch filled so far, if it holds anything."""
        return self._packer.take()

    def drain(self) -> list[PersonUpdate]:
        """The updates of the batch being filled."""
        return self._packer.drain()

    def send(self, job: Job) -> list[Delivery]:
        """One POST of the whole batch."""
        return self._client.post_batch(job.body, len(job.updates))

    def settled(self, job: Job) -> None:
        """``job`` is settled: its records leave the packer's count."""
        self._packer.settled(job)


def adapter_for(config: Config, client: TrackClient) -> Adapter:
    """The adapter of ``config``'s transport, sending through ``client``."""
    if config.transport is Transport.BATCH:
        return BatchAdapter(client, config.parallelism)
    return V1Adapter(client, config.parallelism)

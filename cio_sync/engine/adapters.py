"""The two transports behind one interface: each turns operations on people into requests, and the
answers into one delivery per operation. v1 is a batch of one.

Two kinds of operation travel this way. The upsert of a record (an identify) is handed over with
its stamp (:meth:`Adapter.add`) and packed with other records into :class:`~cio_sync.engine.packer.Job`
requests, on the hot path. An :class:`Operation` on a person the ledger names (delete, suppress,
unsuppress, or a clear: an identify of empty values that never creates anyone) is made into
:class:`OperationJob` requests (:meth:`Adapter.operations`). Workers send both with
:meth:`Adapter.send`. Nothing here knows of files, the ledger or the order of people: that is the
engine's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from ..input.config import Config, Transport
from ..input.mapping import (
    TIMESTAMP,
    PersonUpdate,
    batch_body,
    batch_item,
    batch_items,
    identify,
    stamped,
)
from ..outcome import Delivery, Status
from ..state.roster import Leaver
from ..transport.client import TrackClient
from .packer import Added, Batches, Job, oversized

# A batch of operations stays well under the endpoint's 500 KB, and holds at most this many items.
_BATCH_BYTES = 400_000
_BATCH_ITEMS = 1000


class Action(str, Enum):
    """What an operation does to its person (a batch item's ``action``)."""

    IDENTIFY = "identify"
    DELETE = "delete"
    SUPPRESS = "suppress"
    UNSUPPRESS = "unsuppress"


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation on a person named as the ledger holds them (not by a record of the file):
    ``action``; an identify sets ``attributes``, as of ``stamp`` when given."""

    action: Action
    person: Leaver
    attributes: dict[str, object] | None = None
    stamp: int | None = None

    @property
    def key(self) -> str:
        """The person's key, as the ledger and the engine hold them."""
        return self.person.key


@dataclass(frozen=True, slots=True)
class OperationJob:
    """One request carrying ``updates`` (operations; one on v1) with ``body`` (empty: none)."""

    updates: tuple[Operation, ...]
    body: bytes
    method: str = "POST"
    # The v1 path after /api/v1/customers/, or None for a batch.
    path: str | None = None
    # Why the request is not sent at all (v1 would name someone else), else None.
    refused: str | None = None


class Adapter(Protocol):
    """Turns operations into requests and answers into deliveries, for one transport."""

    # Jobs kept ready beyond those in flight, so that a worker that finishes takes its next at once.
    ready: int

    @property
    def room(self) -> bool:
        """True while the adapter may take another update: the engine reads no further while False."""

    def add(self, update: PersonUpdate, stamp: int | None) -> Job | str | None:
        """Take ``update``: a request now ready to send, None when none is yet, or why the
        update cannot be carried (it is then invalid)."""

    def space(self, requests: int) -> int:
        """About how many more updates to take now, while at most ``requests`` more may be made."""

    def add_run(self, updates: Sequence[PersonUpdate], stamp: int | None, requests: int) -> Added | None:
        """Take the first of ``updates``, all stamped ``stamp``, in order, as :meth:`add` would one
        at a time while at most ``requests`` more may be made and there is :attr:`room`: the
        requests now ready to send, and how many were taken. None (and none taken) when one of
        them cannot be carried: they are to be taken one at a time."""

    def take(self) -> Job | None:
        """The request being filled, to send now although not full; None when there is none."""

    def drain(self) -> list[PersonUpdate]:
        """The updates taken but in no request yet, for a run that stops."""

    def operations(self, operations: Sequence[Operation]) -> list[OperationJob]:
        """The requests that carry ``operations``, each in one of them, in order."""

    def send(self, job: Job | OperationJob) -> list[Delivery]:
        """Send ``job``: one delivery per update or operation, in order."""

    def settled(self, job: Job) -> None:
        """``job``'s answer is in, to be settled at once (called from the engine's thread)."""


class V1Adapter:
    """``PUT /api/v1/customers/{id}``: every update is a request of its own, and so is every
    operation (``DELETE``, ``POST .../suppress`` or ``.../unsuppress``, or a clear's ``PUT``)."""

    # Memory is bounded by the requests in flight and ready: nothing else is held.
    room = True

    def __init__(self, client: TrackClient, parallelism: int) -> None:
        self._client = client
        self.ready = parallelism

    def add(self, update: PersonUpdate, stamp: int | None) -> Job:
        """The update's own request, ready at once."""
        return Job((update,), stamped(update.body, stamp))

    def space(self, requests: int) -> int:
        """One request an update."""
        return requests

    def add_run(self, updates: Sequence[PersonUpdate], stamp: int | None, requests: int) -> Added:
        """A request of its own for each of the first ``requests`` updates, ready at once."""
        return [Job((update,), stamped(update.body, stamp)) for update in updates[:requests]], min(
            len(updates), requests
        )

    def take(self) -> None:
        """Nothing is ever being filled."""

    def drain(self) -> list[PersonUpdate]:
        """Nothing is ever held."""
        return []

    def operations(self, operations: Sequence[Operation]) -> list[OperationJob]:
        """A request for each operation (or, when v1 would name someone else, a refusal)."""
        return [_v1_job(operation) for operation in operations]

    def send(self, job: Job | OperationJob) -> list[Delivery]:
        """One request."""
        if isinstance(job, OperationJob):
            return _send_operation(self._client, job)
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

    def space(self, requests: int) -> int:
        """About how many records fit under the packer's bounds, ``requests`` batches closing."""
        return self._packer.space(requests)

    def add_run(self, updates: Sequence[PersonUpdate], stamp: int | None, requests: int) -> Added | None:
        """The batches that closed to make room for the first of ``updates`` (at most
        ``requests``), and how many were added; None when one fits in no batch."""
        items = batch_items(updates, stamp)
        if any(map(oversized, items)):
            return None
        return self._packer.add_run(updates, items, requests)

    def take(self) -> Job | None:
        """The batch filled so far, if it holds anything."""
        return self._packer.take()

    def drain(self) -> list[PersonUpdate]:
        """The updates of the batch being filled."""
        return self._packer.drain()

    def operations(self, operations: Sequence[Operation]) -> list[OperationJob]:
        """``operations`` as batch items, in batches of at most :data:`_BATCH_ITEMS` items and
        under :data:`_BATCH_BYTES`."""
        made: list[OperationJob] = []
        group: list[Operation] = []
        items: list[bytes] = []
        size = 0
        for operation in operations:
            item = _item(operation)
            if items and (size + len(item) + 1 > _BATCH_BYTES or len(items) >= _BATCH_ITEMS):
                made.append(OperationJob(tuple(group), batch_body(items)))
                group, items, size = [], [], 0
            group.append(operation)
            items.append(item)
            size += len(item) + 1
        if items:
            made.append(OperationJob(tuple(group), batch_body(items)))
        return made

    def send(self, job: Job | OperationJob) -> list[Delivery]:
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


def _json(value: dict[str, object]) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _item(operation: Operation) -> bytes:
    """``operation`` as one item of a v2 batch."""
    person = operation.person
    item: dict[str, object] = {
        "type": "person",
        "action": operation.action.value,
        "identifiers": {person.kind.value: person.identifier},
    }
    if operation.attributes is not None:
        item["attributes"] = operation.attributes
        if operation.stamp is not None:
            item["timestamp"] = operation.stamp
    return _json(item)


def _v1_job(operation: Operation) -> OperationJob:
    """``operation`` as a v1 request of its own, or refused."""
    path, refused = _v1_path(operation.person)
    if path is None:
        return OperationJob((operation,), b"", refused=refused)
    if operation.action is Action.DELETE:
        return OperationJob((operation,), b"", "DELETE", path)
    if operation.action is not Action.IDENTIFY:
        return OperationJob((operation,), b"", "POST", f"{path}/{operation.action.value}")
    body = dict(operation.attributes or {})
    if operation.stamp is not None:
        body[TIMESTAMP] = operation.stamp
    return OperationJob((operation,), _json(body), "PUT", path)


def _v1_path(person: Leaver) -> tuple[str | None, str | None]:
    """The v1 path naming ``person`` as the ledger holds them, or None and why there is none.

    The path is worked out afresh, as a v1 write of their id and kind would name them now, and
    never taken from the ledger: a person written by batch (told their kind) may have an id that
    v1, reading its path by shape, takes for an email address or a cio_id, so the stored path
    could remove someone else. The kind is the ledger's, not the configuration's ``idType``,
    which may have changed since they were written.
    """
    ref, problem = identify(person.person_id, person.kind, v1=True)
    # The same person by their key: one merged from records that spell an email address in two
    # cases is named as the first spells it and the last (whose id this is) otherwise.
    if ref is not None and (ref.kind, ref.key) == (person.kind, person.key):
        return ref.path, None
    if ref is not None:  # not expected: identify keeps the kind it is given; refused all the same
        problem = f'the v1 API would read it as the {ref.kind.value} "{ref.identifier}"'
    return None, (
        f"not sent, as it would remove someone else: {problem}; to remove this person, run again with --transport batch"
    )


def _send_operation(client: TrackClient, job: OperationJob) -> list[Delivery]:
    """Send a v1 operation's request, unless it is refused. A delete answered 404 counts as done:
    the spec gives delete no 404, but an API that answers one says nobody has the identifier,
    which is what the delete was for."""
    if job.refused is not None or job.path is None:
        return [Delivery(Status.FAILED, reason=job.refused) for _ in job.updates]
    delivery = client.put_person(job.path, job.body or None, job.method)
    if job.method == "DELETE" and delivery.http_status == 404:
        return [Delivery(Status.SYNCED, 404)]
    return [delivery]

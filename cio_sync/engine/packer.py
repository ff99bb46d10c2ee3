"""Packing person updates into requests: one PUT each, or v2 batches under the endpoint's byte limits.

How full a batch gets depends on what is scarce. Memory is bounded by the records out (in batches
sent and not yet answered, ready, or being filled), counted twice over: at most
:data:`ITEMS_IN_FLIGHT` of them, since each record held costs about 1 KB however small it is on
the wire (its record, mapped body, item and person; ~150 bytes of them go on the wire for a small
person), and at most :data:`ITEM_BYTES_IN_FLIGHT` of their items, since a large record costs
about three times its item (the record, its body and its item). Within that bound:

- while requests are plentiful, the records are shared among ``parallelism`` batches, so that
  every worker has one to send, but a batch holds at least :data:`RECORDS_A_BATCH` (with more
  workers than that leaves batches for, some wait: the records out set the pace, not the workers);
- while they are scarce (the workspace's rate binds: :attr:`~cio_sync.transport.pacing.Gate.scarce`),
  a request spent on a small batch is one a full batch could have used: batches fill to the byte
  limit, as many as the bound holds (two or three of small people), and a part-filled one goes
  only when nothing else is out.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..input.mapping import MAX_BATCH_BYTES, MAX_ITEM_BYTES, PersonUpdate, batch_body

# A batch body is its items joined by commas inside this envelope.
_ENVELOPE_BYTES = len(batch_body([]))


@dataclass(frozen=True, slots=True)
class Job:
    """One request for a worker: the updates it carries and the exact body that carries them."""

    updates: tuple[PersonUpdate, ...]
    body: bytes


# Records carried by the batches in flight, the one being filled and the one ready, at most, and
# their items' bytes: about 10 MB held for small people, 25 MB for large ones. With 25,000 out,
# a run merging repeated people far apart came to 101 MB at peak (83 MB with 10,000; measured
# with tests/bench_merge.py on 2026-12-06), so the bound stays.
ITEMS_IN_FLIGHT = 10_000
ITEM_BYTES_IN_FLIGHT = 8_000_000
# While requests are plentiful, the fewest records a batch is filled with before it waits for a
# worker: a request costs the run about 1 ms of CPU however few it carries (its hand-overs
# between threads above all), and at P=25 a share of 10,000 records out was 370 a batch (2,705
# requests for 1,000,000 small people against 1,001, and about 2 us of CPU a record more).
RECORDS_A_BATCH = 1000


# The requests an adapter made ready from a run of updates, and how many of them it took.
Added = tuple[list[Job], int]


def oversized(item: bytes) -> str | None:
    """Why ``item`` (an encoded batch item) cannot go in any batch, or None."""
    if len(item) <= MAX_ITEM_BYTES:
        return None
    return f"as a batch item it is {len(item):,} bytes; the batch endpoint allows at most {MAX_ITEM_BYTES:,} (32 KB)"


class BatchPacker:
    """Fills one batch at a time; its size is counted on the exact bytes of the body to be sent."""

    def __init__(self, limit: int = MAX_BATCH_BYTES, max_items: int | None = None) -> None:
        self.limit = limit
        # The most items a batch holds, besides the byte limit; it may change between batches.
        self.max_items = max_items
        self._updates: list[PersonUpdate] = []
        self._items: list[bytes] = []
        self._size = _ENVELOPE_BYTES

    def __bool__(self) -> bool:
        """True while a batch is being filled."""
        return bool(self._items)

    def __len__(self) -> int:
        """The items of the batch being filled."""
        return len(self._items)

    @property
    def size(self) -> int:
        """The bytes of the batch being filled, as its body would be."""
        return self._size

    def add(self, update: PersonUpdate, item: bytes) -> Job | None:
        """Add ``update``, encoded as ``item``; returns the batch that had to close to make room
        (or that holds ``max_items`` already).

        A body stays *smaller than* the limit, as the endpoint words it: never equal to it.
        """
        closed = None
        full = self.max_items is not None and len(self._items) >= self.max_items
        if self._items and (full or self._size + 1 + len(item) >= self.limit):
            closed = self.take()
        self._size += len(item) + (1 if self._items else 0)
        self._updates.append(update)
        self._items.append(item)
        return closed

    def add_run(
        self, updates: Sequence[PersonUpdate], items: Sequence[bytes], start: int, most: int, below: int
    ) -> int:
        """Add as many of ``updates[start:]`` (encoded as ``items[start:]``) as the batch holds,
        in order, as :meth:`add` would one at a time (an empty batch takes at least one), while it
        holds fewer than ``most`` items and fewer bytes than ``below``: how many."""
        count, size, limit = len(self._items), self._size, self.limit
        end = len(items) if self.max_items is None else min(len(items), start + max(0, self.max_items - count))
        end = min(end, start + max(0, most - count))
        fit = 0
        for item in itertools.islice(items, start, end):
            grown = size + len(item) + (1 if count + fit else 0)
            if (count + fit and grown >= limit) or size >= below:  # a body stays smaller than the limit
                break
            size = grown
            fit += 1
        self._updates.extend(itertools.islice(updates, start, start + fit))
        self._items.extend(itertools.islice(items, start, start + fit))
        self._size = size
        return fit

    def take(self) -> Job:
        """The batch filled so far, ready to send; a new one starts empty."""
        job = Job(tuple(self._updates), batch_body(self._items))
        self._updates, self._items, self._size = [], [], _ENVELOPE_BYTES
        return job

    def drain(self) -> list[PersonUpdate]:
        """The updates of the batch being filled, unsent, for a run that stops."""
        left, self._updates, self._items, self._size = self._updates, [], [], _ENVELOPE_BYTES
        return left


class Batches:
    """One run's batches: the one being filled, and the count of records out in the others.

    Used from the run's thread alone. ``scarce`` says whether requests are what is scarce now (the
    gate's :attr:`~cio_sync.transport.pacing.Gate.scarce`); it is asked once a batch, as it begins.
    """

    def __init__(
        self,
        parallelism: int,
        scarce: Callable[[], bool],
        budget: int = ITEMS_IN_FLIGHT,
        limit: int = MAX_BATCH_BYTES,
        byte_budget: int = ITEM_BYTES_IN_FLIGHT,
        fewest: int = RECORDS_A_BATCH,
    ) -> None:
        # While requests are plentiful: the budget shared among the batches in flight, the one
        # ready and the one being filled, but at least ``fewest`` a batch, so that fewer batches
        # than workers may be out (the records out are what the pace depends on).
        self._shared = max(fewest, budget // (parallelism + 2))
        self._budget = budget
        # As many batches of that share as the budget holds, and those of them out now.
        self._slots = max(1, budget // self._shared)
        self._batches_out = 0
        self._scarce = scarce
        self._packer = BatchPacker(limit, self._shared)
        self._byte_budget = byte_budget
        # Records in batches made and not yet settled, and the bytes of those batches. Not at the
        # answer: an answer waits for the run's thread to settle it, its records held all the while.
        self._out = 0
        self._out_bytes = 0
        # Whether the batch being filled is one of scarce requests, to be filled to the byte limit.
        self.filling = False

    def __bool__(self) -> bool:
        """True while a batch is being filled."""
        return bool(self._packer)

    @property
    def room(self) -> bool:
        """True while another record may be taken: those out and being filled are under the
        budget, and so are their bytes."""
        packer = self._packer
        return self._out + len(packer) < self._budget and self._out_bytes + packer.size < self._byte_budget

    def add(self, update: PersonUpdate, item: bytes) -> Job | None:
        """Add ``update``, encoded as ``item``; the batch that closed to make room, if any."""
        closed = self._packer.add(update, item)
        if closed is not None:
            self._made(closed)
        if len(self._packer) == 1:
            # A batch begins: how full it is to get.
            self.filling = self._scarce()
            self._packer.max_items = None if self.filling else self._shared
        return closed

    def space(self, requests: int) -> int:
        """About how many more records may be taken now, while at most ``requests`` batches close
        (at least one while there is :attr:`room`): for how many to make ready at once."""
        packer = self._packer
        # Records of the size of those in the batch being filled (or of one small person).
        each = packer.size // len(packer) if packer else 200
        by_bytes = (self._byte_budget - self._out_bytes - packer.size) // each
        by_requests = requests * (self._shared if not self.filling else self._packer.limit // each)
        return max(1, min(self._budget - self._out - len(packer), by_bytes, by_requests))

    def add_run(self, updates: Sequence[PersonUpdate], items: Sequence[bytes], requests: int) -> Added:
        """Add ``updates``, encoded as ``items``, in order, as :meth:`add` adds them one at a time
        while there is :attr:`room` and another request may be made, at most ``requests`` of
        them: the batches that closed to make room, and how many of ``updates`` were added."""
        closed: list[Job] = []
        packer, at = self._packer, 0
        while at < len(items) and self.room:
            if not packer:
                # A batch begins: how full it is to get (asked before its first record, which
                # one at a time asks just after: nothing between the two changes the answer).
                self.filling = self._scarce()
                packer.max_items = None if self.filling else self._shared
            at += packer.add_run(updates, items, at, self._budget - self._out, self._byte_budget - self._out_bytes)
            if at == len(items) or not self.room or len(closed) == requests:
                break
            # The next record does not fit in this batch: it closes.
            job = packer.take()
            self._made(job)
            closed.append(job)
        return closed, at

    def take(self) -> Job | None:
        """The batch being filled, to send although not full; None when it is empty, or when
        other batches are out and their answers are to make room to fill it on: requests are
        scarce, or as many batches are out as the records out hold at their share (a part-filled
        one sent then would leave one as small after it, and so on)."""
        if not self._packer or (self.filling and self._out > 0) or self._batches_out >= self._slots:
            return None
        job = self._packer.take()
        self._made(job)
        return job

    def drain(self) -> list[PersonUpdate]:
        """The updates of the batch being filled, unsent, for a run that stops."""
        return self._packer.drain()

    def settled(self, job: Job) -> None:
        """``job``'s answer is in and settled: its records are no longer out."""
        self._out -= len(job.updates)
        self._out_bytes -= len(job.body)
        self._batches_out -= 1

    def _made(self, job: Job) -> None:
        self._out += len(job.updates)
        self._out_bytes += len(job.body)
        self._batches_out += 1

"""Packing person updates into requests: one PUT each, or v2 batches under the endpoint's byte limits."""

from __future__ import annotations

from dataclasses import dataclass

from ..input.mapping import MAX_BATCH_BYTES, MAX_ITEM_BYTES, PersonUpdate, batch_body

# A batch body is its items joined by commas inside this envelope.
_ENVELOPE_BYTES = len(batch_body([]))


@dataclass(frozen=True, slots=True)
class Job:
    """One request for a worker: the updates it carries and the exact body that carries them."""

    updates: tuple[PersonUpdate, ...]
    body: bytes


# Records carried by the batches in flight, the one being filled and the one ready, at most.
ITEMS_IN_FLIGHT = 10_000


def oversized(item: bytes) -> str | None:
    """Why ``item`` (an encoded batch item) cannot go in any batch, or None."""
    if len(item) <= MAX_ITEM_BYTES:
        return None
    return f"as a batch item it is {len(item):,} bytes; the batch endpoint allows at most {MAX_ITEM_BYTES:,} (32 KB)"


class BatchPacker:
    """Fills one batch at a time; its size is counted on the exact bytes of the body to be sent."""

    def __init__(self, limit: int = MAX_BATCH_BYTES, max_items: int | None = None) -> None:
        self._limit = limit
        self._max_items = max_items
        self._updates: list[PersonUpdate] = []
        self._items: list[bytes] = []
        self._size = _ENVELOPE_BYTES

    @classmethod
    def for_workers(cls, parallelism: int) -> BatchPacker:
        """A packer for ``parallelism`` workers: each batch in flight holds its records until its
        answer, so all of them together (and the one being filled, and one ready) hold at most
        :data:`ITEMS_IN_FLIGHT`; memory does not grow with parallelism, batches get smaller."""
        return cls(max_items=max(100, ITEMS_IN_FLIGHT // (parallelism + 2)))

    def __bool__(self) -> bool:
        """True while a batch is being filled."""
        return bool(self._items)

    def add(self, update: PersonUpdate, item: bytes) -> Job | None:
        """Add ``update``, encoded as ``item``; returns the batch that had to close to make room
        (or that holds ``max_items`` already).

        A body stays *smaller than* the limit, as the endpoint words it: never equal to it.
        """
        closed = None
        full = self._max_items is not None and len(self._items) >= self._max_items
        if self._items and (full or self._size + 1 + len(item) >= self._limit):
            closed = self.take()
        self._size += len(item) + (1 if self._items else 0)
        self._updates.append(update)
        self._items.append(item)
        return closed

    def take(self) -> Job:
        """The batch filled so far, ready to send; a new one starts empty."""
        job = Job(tuple(self._updates), batch_body(self._items))
        self._updates, self._items, self._size = [], [], _ENVELOPE_BYTES
        return job

    def drain(self) -> list[PersonUpdate]:
        """The updates of the batch being filled, unsent, for a run that stops."""
        left, self._updates, self._items, self._size = self._updates, [], [], _ENVELOPE_BYTES
        return left

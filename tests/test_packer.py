"""The batch packer on its own: byte limits counted on the exact body that is sent."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cio_sync.engine.packer import BatchPacker, Job, oversized
from cio_sync.input.config import IdType
from cio_sync.input.mapping import MAX_BATCH_BYTES, MAX_ITEM_BYTES, PersonUpdate, batch_body, batch_item


def update(index: int, size: int = 10) -> PersonUpdate:
    body = json.dumps({"v": "x" * size}).encode()
    return PersonUpdate(index, str(index), body, None, IdType.ID, str(index), str(index))


def pack(packer: BatchPacker, updates: list[PersonUpdate]) -> list[Job]:
    jobs = [job for u in updates if (job := packer.add(u, batch_item(u))) is not None]
    if packer:
        jobs.append(packer.take())
    return jobs


@given(sizes=st.lists(st.integers(0, 300), min_size=1, max_size=40), limit=st.integers(400, 3000))
def test_batches_keep_order_and_stay_below_the_limit(sizes: list[int], limit: int) -> None:
    updates = [update(i, size) for i, size in enumerate(sizes)]
    jobs = pack(BatchPacker(limit), updates)
    assert [u for job in jobs for u in job.updates] == updates
    for job in jobs:
        assert job.body == batch_body([batch_item(u) for u in job.updates])
        assert len(job.body) < limit
    # A batch closes only when the next item would have brought it to the limit.
    for job, following in itertools.pairwise(jobs):
        grown = batch_body([batch_item(u) for u in (*job.updates, following.updates[0])])
        assert len(grown) >= limit


def test_a_batch_fills_to_the_last_byte_below_the_limit() -> None:
    item = batch_item(update(0))
    limit = len(batch_body([item, item])) + 1
    packer = BatchPacker(limit)
    assert packer.add(update(0), item) is None
    assert packer.add(update(1), item) is None
    closed = packer.add(update(2), item)
    assert closed is not None
    assert closed.body is not None and len(closed.body) == limit - 1


def test_a_body_never_reaches_the_limit() -> None:
    """The endpoint wants bodies "smaller than" its limit: one that would equal it is closed before."""
    item = batch_item(update(0))
    packer = BatchPacker(len(batch_body([item, item])))
    assert packer.add(update(0), item) is None
    closed = packer.add(update(1), item)
    assert closed is not None and closed.updates == (update(0),)


def test_the_default_limit_is_the_endpoints() -> None:
    updates = [update(i, 20_000) for i in range(60)]
    jobs = pack(BatchPacker(), updates)
    assert len(jobs) > 1
    assert all(job.body is not None and len(job.body) < MAX_BATCH_BYTES for job in jobs)


def test_drain_returns_the_unsent_batch() -> None:
    packer = BatchPacker()
    first, second = update(0), update(1)
    packer.add(first, batch_item(first))
    packer.add(second, batch_item(second))
    assert packer.drain() == [first, second]
    assert not packer


@pytest.mark.parametrize(("size", "refused"), [(MAX_ITEM_BYTES, False), (MAX_ITEM_BYTES + 1, True)])
def test_an_item_over_32_kb_is_refused(size: int, refused: bool) -> None:
    problem = oversized(b"x" * size)
    assert (problem is not None) is refused
    if problem is not None:
        assert problem == f"as a batch item it is {size:,} bytes; the batch endpoint allows at most 32,000 (32 KB)"


def test_a_batch_closes_at_its_item_cap() -> None:
    packer = BatchPacker(max_items=3)
    jobs = pack(packer, [update(i) for i in range(7)])
    assert [len(job.updates) for job in jobs] == [3, 3, 1]


@given(identifier=st.text(), kind=st.sampled_from(list(IdType)))
def test_an_items_identifiers_are_the_bytes_the_json_encoder_gives(identifier: str, kind: IdType) -> None:
    """The identifiers are spelt out by hand for speed: the same bytes, and the same refusal of a
    lone surrogate, as encoding them as a JSON object."""
    u = PersonUpdate(0, identifier, b"{}", None, kind, identifier, identifier)
    try:
        expected = json.dumps({kind.value: identifier}, ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError):
            batch_item(u)
        return
    assert batch_item(u) == b'{"type":"person","action":"identify","identifiers":' + expected + b',"attributes":{}}'

"""The batch packer on its own: byte limits counted on the exact body that is sent."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cio_sync.engine.packer import Batches, BatchPacker, Job, oversized
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


@given(
    runs=st.lists(st.lists(st.integers(0, 300), max_size=120), min_size=1, max_size=6),
    limit=st.integers(200, 30_000),
    shared=st.integers(100, 400),
    scarce=st.lists(st.booleans(), min_size=1, max_size=8),
)
def test_a_run_added_at_once_is_packed_as_one_by_one(
    runs: list[list[int]], limit: int, shared: int, scarce: list[bool]
) -> None:
    # The same batches, closing at the same records, whether a run is added at once or record
    # by record; each batch asks how full it is to get as it begins, in the same order.
    def packed(at_once: bool) -> list[Job]:
        answers = itertools.cycle(scarce)
        # parallelism 23 shares a budget of 10,000 as 400 records a batch; more shares it as fewer
        batches = Batches(25, lambda: next(answers), limit=limit, fewest=shared)
        jobs: list[Job] = []
        first = 0
        for sizes in runs:
            updates = [update(first + i, size) for i, size in enumerate(sizes)]
            first += len(sizes)
            if at_once:
                made, taken = batches.add_run(updates, [batch_item(u) for u in updates], len(updates))
                assert taken == len(updates)
                jobs += made
            else:
                jobs += [job for u in updates if (job := batches.add(u, batch_item(u))) is not None]
            # Between runs, what a worker would take when idle.
            if (idle := batches.take()) is not None:
                jobs.append(idle)
        return jobs

    assert [(job.updates, job.body) for job in packed(True)] == [(job.updates, job.body) for job in packed(False)]


@pytest.mark.parametrize("room", [0, 1])
def test_a_run_fills_a_batch_to_the_last_byte_below_the_limit(room: int) -> None:
    items = [batch_item(update(n)) for n in range(3)]
    limit = len(batch_body(items[:2])) + room  # two items reach it, or stay one byte below
    packer = BatchPacker(limit)
    assert packer.add_run([update(n) for n in range(3)], items, 0, 10, limit) == 1 + room
    assert len(packer.take().body) < limit


def test_a_run_closes_a_batch_at_its_share_of_the_records_out() -> None:
    # Requests plentiful: 10,000 records out shared among 98 + 2 batches, 100 each.
    batches = Batches(98, lambda: False, fewest=100)
    updates = [update(n) for n in range(250)]
    closed, taken = batches.add_run(updates, [batch_item(u) for u in updates], 3)
    assert [len(job.updates) for job in closed] == [100, 100]
    assert taken == 250
    idle = batches.take()
    assert idle is not None and idle.updates == tuple(updates[200:])

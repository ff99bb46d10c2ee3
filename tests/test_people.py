"""The people of a run on their own: file order per person, one record out each, bounded waiting."""

from __future__ import annotations

import json
import random
from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cio_sync.engine.people import FailedPeople, People
from cio_sync.input.config import IdType
from cio_sync.input.mapping import PersonUpdate, ordering_key


def update(index: int, person_id: str) -> PersonUpdate:
    body = json.dumps({"n": index}).encode()
    return PersonUpdate(index, person_id, body, None, IdType.ID, person_id, ordering_key(person_id))


def _admit(queue: People, update: PersonUpdate) -> PersonUpdate | None:
    admitted = queue.admit(update, update.key)
    assert admitted is None or isinstance(admitted, PersonUpdate)
    return admitted


def _finish(queue: People, update: PersonUpdate, now: float = 0.0) -> PersonUpdate | None:
    following = queue.finish(update.key, now)
    assert following is None or isinstance(following, PersonUpdate)
    return following


def test_a_person_with_nothing_outstanding_goes_at_once() -> None:
    queue = People(limit=10)
    first, other = update(0, "a"), update(1, "b")
    assert _admit(queue, first) is first
    assert _admit(queue, other) is other
    assert queue.waiting == 0


def test_later_updates_wait_and_follow_in_file_order() -> None:
    queue = People(limit=10)
    updates = [update(i, "a") for i in range(3)]
    assert _admit(queue, updates[0]) is updates[0]
    assert _admit(queue, updates[1]) is None
    assert _admit(queue, updates[2]) is None
    assert queue.waiting == 2
    assert _finish(queue, updates[0]) is updates[1]
    assert _finish(queue, updates[1]) is updates[2]
    assert _finish(queue, updates[2]) is None
    assert queue.waiting == 0
    # Finished for good: the person's next update goes at once.
    again = update(3, "a")
    assert _admit(queue, again) is again


def test_email_ids_differing_in_case_are_one_person() -> None:
    queue = People(limit=10)
    assert _admit(queue, update(0, "Ada@x.com")) is not None
    assert _admit(queue, update(1, "ada@X.COM")) is None
    assert _admit(queue, update(2, "Ada")) is not None
    assert _admit(queue, update(3, "ada")) is not None


def test_full_at_the_limit() -> None:
    queue = People(limit=2)
    outstanding = update(0, "a")
    _admit(queue, outstanding)
    _admit(queue, update(1, "a"))
    assert not queue.full
    _admit(queue, update(2, "a"))
    assert queue.full
    _finish(queue, outstanding)
    assert not queue.full


def test_drain_leaves_nothing_waiting() -> None:
    queue = People(limit=10)
    for i, person in enumerate("abab"):
        _admit(queue, update(i, person))
    assert [u.index for u in queue.drain()] == [2, 3]
    assert queue.waiting == 0
    assert queue.drain() == []


@given(
    people=st.lists(st.sampled_from(["a", "b", "c", "A@x.com", "a@X.com", "d"]), max_size=60),
    seed=st.integers(0, 2**32),
)
def test_any_finishing_order_keeps_each_person_in_file_order(people: list[str], seed: int) -> None:
    """Whatever order the workspace finishes requests in (and whether they succeed or fail),
    each person has at most one update outstanding, gets every update exactly once, in file
    order, and nothing waits at the end."""
    chooser = random.Random(seed)
    queue = People(limit=len(people) + 1)
    outstanding: list[PersonUpdate] = []
    sent: list[PersonUpdate] = []

    def go(ready: PersonUpdate | None) -> None:
        if ready is not None:
            assert all(ordering_key(u.person_id) != ordering_key(ready.person_id) for u in outstanding)
            outstanding.append(ready)
            sent.append(ready)

    for index, person in enumerate(people):
        go(_admit(queue, update(index, person)))
        while outstanding and chooser.random() < 0.4:
            go(_finish(queue, outstanding.pop(chooser.randrange(len(outstanding)))))
    while outstanding:
        go(_finish(queue, outstanding.pop(chooser.randrange(len(outstanding)))))
    assert sorted(u.index for u in sent) == list(range(len(people)))
    for key in {ordering_key(p) for p in people}:
        order = [u.index for u in sent if ordering_key(u.person_id) == key]
        assert order == sorted(order)
    assert queue.waiting == 0
    assert queue.drain() == []


@given(people=st.lists(st.sampled_from(["a", "b", "c"]), max_size=80), limit=st.integers(1, 10))
def test_waiting_never_passes_the_limit_when_the_caller_respects_full(people: list[str], limit: int) -> None:
    queue = People(limit=limit)
    outstanding: list[PersonUpdate] = []
    for index, person in enumerate(people):
        while queue.full:
            ready = _finish(queue, outstanding.pop(0))
            if ready is not None:
                outstanding.append(ready)
        admitted = _admit(queue, update(index, person))
        if admitted is not None:
            outstanding.append(admitted)
        assert queue.waiting <= limit


def test_a_person_is_held_until_their_ready_time_and_forgotten_after() -> None:
    queue = People(limit=10)
    first = update(0, "y")
    _admit(queue, first)
    queue.unclear(first.key, 41, ready_at=5.0)
    assert _finish(queue, first) is None
    later = update(1, "y")
    assert _admit(queue, later) is later
    assert queue.hold(later, now=4.0)
    assert queue.next_due(4.0) == 1.0
    assert queue.due(4.5) is None
    assert queue.due(5.0) is later
    assert queue.take_unclear(later.key) == 41
    assert queue.take_unclear(later.key) is None
    assert _finish(queue, later) is None
    other = update(2, "z")
    assert _admit(queue, other) is other
    assert not queue.hold(other, now=4.0)


def test_people_kept_only_for_their_second_are_forgotten_once_it_passed() -> None:
    queue = People(limit=10)
    for n in range(100):
        u = update(n, f"p{n}")
        _admit(queue, u)
        queue.unclear(u.key, 7, ready_at=1.0)
        _finish(queue, u)
    assert len(queue._people) == 100
    queue.due(2.0)
    assert queue._people == {}


@pytest.mark.parametrize("spill_after", [0, 3, 1000])
def test_failed_people_are_remembered_in_memory_or_spilled(spill_after: int) -> None:
    failed = FailedPeople(spill_after=spill_after)
    for n in range(50):
        failed.add(f"p{n % 20}", n)
    assert [failed.get(f"p{n}") for n in range(20)] == list(range(20))
    assert failed.get("nobody") is None
    assert len(failed._memory) == min(spill_after, 20)
    failed.close()


def test_an_unclear_write_is_remembered_until_the_stamps_have_passed_it() -> None:
    # Stamps can run ahead of the wall clock (a ledger's floor, a clock set back): the person's
    # next write, however much later it comes, must still be stamped above the unclear one.
    from cio_sync.engine.stamps import Stamps

    from .fakeclock import FakeClock

    clock = FakeClock(wall=2_000_000.5, monotonic=10.0)
    stamps = Stamps(clock, enabled=True, floor=2_000_100)
    queue = People(limit=10, floor=stamps.floor)
    first = update(0, "A")
    _admit(queue, first)
    sent = stamps.issue(queue.take_unclear(first.key))
    mark = stamps.unclear()
    assert mark is not None
    queue.unclear(first.key, *mark)
    clock.advance(5.0)  # well past the one second the next write waits
    _finish(queue, first, clock.monotonic())
    queue.due(clock.monotonic())
    assert first.key in queue._people  # kept: the run's stamps are not past theirs yet
    later = update(1, "A")
    assert _admit(queue, later) is later
    assert not queue.hold(later, clock.monotonic())
    stamp = stamps.issue(queue.take_unclear(later.key))
    assert sent is not None and stamp is not None and stamp > sent
    # Once the run's stamps are past it, the person is forgotten.
    assert queue.finish(later.key, clock.monotonic()) is None
    queue.due(clock.monotonic())
    assert queue._people == {}


@given(
    st.lists(st.sampled_from(["a", "b", "c", "d", None]), max_size=6),
    st.lists(st.sampled_from(["a", "b", "c"]), max_size=3),
    st.lists(st.sampled_from(["a", "b", "c"]), max_size=3),
)
def test_a_run_is_admitted_at_once_only_where_one_by_one_each_would_go(
    keys: list[str | None], out: list[str], finished: list[str]
) -> None:
    # Admitted at once, a run's records are each out, as admitting them one by one would leave
    # them; a run where one of them would wait (its person has a record out, or it is named twice
    # in the run) or names no one is not admitted at all.
    at_once, one_by_one = People(limit=10), People(limit=10)
    for queue in (at_once, one_by_one):
        for n, key in enumerate(out):
            queue.admit(update(n, key), key)
        for key in sorted(set(finished) & set(out)):  # its first record settles
            queue.finish(key, 0.0)
    admitted = at_once.admit_run(keys)
    goes = [None if key is None else one_by_one.admit(update(9, key), key) for key in keys]
    assert admitted == all(work is not None for work in goes)
    if admitted:  # each is out now, nothing more waits, and each finishes to nothing
        assert at_once.waiting == one_by_one.waiting
        assert at_once.finish_out(cast("list[str]", keys)) == []
        assert [one_by_one.finish(cast(str, key), 0.0) for key in keys] == [None] * len(keys)


def test_settled_at_once_a_person_with_more_to_do_is_left_to_finish() -> None:
    queue = People(limit=10)
    first, later, other = update(0, "a"), update(1, "a"), update(2, "b")
    for each in (first, later, other):
        queue.admit(each, each.key)
    queue.unclear("b", 5, 0.0)  # b has something to be remembered by
    assert queue.finish_out(["a", "b"]) == ["a", "b"]
    assert _finish(queue, first) is later
    queue.admit(update(3, "c"), "c")
    assert queue.finish_out(["c"]) == []
    assert queue.admit(update(4, "c"), "c") is not None  # forgotten: a new record of theirs goes at once

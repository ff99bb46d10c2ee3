"""The per-person queue on its own: file order per person, one outstanding each, bounded waiting."""

from __future__ import annotations

import json
import random

from hypothesis import given
from hypothesis import strategies as st

from cio_sync.config import IdType
from cio_sync.mapping import PersonUpdate, ordering_key
from cio_sync.personqueue import PersonQueue


def update(index: int, person_id: str) -> PersonUpdate:
    body = json.dumps({"n": index}).encode()
    return PersonUpdate(index, person_id, person_id, body, None, IdType.ID, person_id, ordering_key(person_id))


def test_a_person_with_nothing_outstanding_goes_at_once() -> None:
    queue = PersonQueue(limit=10)
    first, other = update(0, "a"), update(1, "b")
    assert queue.admit(first) is first
    assert queue.admit(other) is other
    assert queue.waiting == 0


def test_later_updates_wait_and_follow_in_file_order() -> None:
    queue = PersonQueue(limit=10)
    updates = [update(i, "a") for i in range(3)]
    assert queue.admit(updates[0]) is updates[0]
    assert queue.admit(updates[1]) is None
    assert queue.admit(updates[2]) is None
    assert queue.waiting == 2
    assert queue.finish(updates[0]) is updates[1]
    assert queue.finish(updates[1]) is updates[2]
    assert queue.finish(updates[2]) is None
    assert queue.waiting == 0
    # Finished for good: the person's next update goes at once.
    again = update(3, "a")
    assert queue.admit(again) is again


def test_email_ids_differing_in_case_are_one_person() -> None:
    queue = PersonQueue(limit=10)
    assert queue.admit(update(0, "Ada@x.com")) is not None
    assert queue.admit(update(1, "ada@X.COM")) is None
    assert queue.admit(update(2, "Ada")) is not None
    assert queue.admit(update(3, "ada")) is not None


def test_full_at_the_limit() -> None:
    queue = PersonQueue(limit=2)
    outstanding = update(0, "a")
    queue.admit(outstanding)
    queue.admit(update(1, "a"))
    assert not queue.full
    queue.admit(update(2, "a"))
    assert queue.full
    queue.finish(outstanding)
    assert not queue.full


def test_drain_leaves_nothing_waiting() -> None:
    queue = PersonQueue(limit=10)
    for i, person in enumerate("abab"):
        queue.admit(update(i, person))
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
    queue = PersonQueue(limit=len(people) + 1)
    outstanding: list[PersonUpdate] = []
    sent: list[PersonUpdate] = []

    def go(ready: PersonUpdate | None) -> None:
        if ready is not None:
            assert all(ordering_key(u.person_id) != ordering_key(ready.person_id) for u in outstanding)
            outstanding.append(ready)
            sent.append(ready)

    for index, person in enumerate(people):
        go(queue.admit(update(index, person)))
        while outstanding and chooser.random() < 0.4:
            go(queue.finish(outstanding.pop(chooser.randrange(len(outstanding)))))
    while outstanding:
        go(queue.finish(outstanding.pop(chooser.randrange(len(outstanding)))))
    assert sorted(u.index for u in sent) == list(range(len(people)))
    for key in {ordering_key(p) for p in people}:
        order = [u.index for u in sent if ordering_key(u.person_id) == key]
        assert order == sorted(order)
    assert queue.waiting == 0
    assert queue.drain() == []


@given(people=st.lists(st.sampled_from(["a", "b", "c"]), max_size=80), limit=st.integers(1, 10))
def test_waiting_never_passes_the_limit_when_the_caller_respects_full(people: list[str], limit: int) -> None:
    queue = PersonQueue(limit=limit)
    outstanding: list[PersonUpdate] = []
    for index, person in enumerate(people):
        while queue.full:
            ready = queue.finish(outstanding.pop(0))
            if ready is not None:
                outstanding.append(ready)
        admitted = queue.admit(update(index, person))
        if admitted is not None:
            outstanding.append(admitted)
        assert queue.waiting <= limit

"""Operations on people through the transports' one interface: each adapter makes an operation a
request (v1 one each, batch items packed under the endpoint's limits) and each answer an outcome.

The requests go to the emulator on loopback, through a real client and the run's worker threads.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from typing import cast

import pytest

from cio_sync.clock import SYSTEM_CLOCK
from cio_sync.emulator import Emulator, Fault
from cio_sync.emulator.rules import Endpoint
from cio_sync.emulator.workspace import suppressed
from cio_sync.engine.adapters import Action, Adapter, BatchAdapter, Operation, OperationJob, V1Adapter
from cio_sync.engine.packer import Job
from cio_sync.engine.workers import Workers
from cio_sync.input.config import IdType
from cio_sync.outcome import Delivery, Status, StopReason
from cio_sync.state.roster import Leaver
from cio_sync.transport.client import TrackClient
from cio_sync.transport.pacing import Gate

from .conftest import FAST, make_config
from .fakeclock import FakeClock


@pytest.fixture
def client(emulator: Emulator) -> Iterator[TrackClient]:
    track = TrackClient(make_config(emulator.url), FAST, Gate(), pool_size=4)
    yield track
    track.close()


def person(person_id: str, kind: IdType = IdType.ID) -> Leaver:
    """Someone the ledger holds, named as a write of ``person_id`` as ``kind`` named them."""
    return Leaver(person_id.lower(), person_id, kind, person_id, person_id, None)


def put(client: TrackClient, *ids: str) -> None:
    for person_id in ids:
        assert client.put_person(person_id, b'{"a":1}').status is Status.SYNCED


def test_v1_makes_each_operation_a_request_of_its_own(client: TrackClient) -> None:
    clear: dict[str, object] = {"a": "", "_update": True}
    jobs = V1Adapter(client, 2).operations(
        [
            Operation(Action.DELETE, person("p1")),
            Operation(Action.SUPPRESS, person("p2")),
            Operation(Action.UNSUPPRESS, person("ü/2")),
            Operation(Action.IDENTIFY, person("p3"), clear, 1700000000),
        ]
    )
    requests = [(j.method, j.path, j.body, j.refused) for j in jobs]
    assert requests == [
        ("DELETE", "p1", b"", None),
        ("POST", "p2/suppress", b"", None),
        ("POST", "%C3%BC%2F2/unsuppress", b"", None),
        ("PUT", "p3", b'{"a":"","_update":true,"_timestamp":1700000000}', None),
    ]


def test_v1_refuses_an_operation_on_someone_it_would_read_as_another(client: TrackClient) -> None:
    # Written by batch as an id, the id reads on v1 as an email address: another person.
    (job,) = V1Adapter(client, 1).operations([Operation(Action.DELETE, person("a@b.com"))])
    assert job.refused is not None and "--transport batch" in job.refused
    (delivery,) = V1Adapter(client, 1).send(job)
    assert delivery.status is Status.FAILED and delivery.reason == job.refused and delivery.http_status is None


def test_batch_packs_operations_under_its_item_and_byte_limits(client: TrackClient) -> None:
    adapter = BatchAdapter(client, 2)
    many = adapter.operations([Operation(Action.SUPPRESS, person(f"p{i}")) for i in range(2500)])
    assert [len(j.updates) for j in many] == [1000, 1000, 500]
    assert all(j.path is None and j.refused is None for j in many)
    first = json.loads(many[0].body)["batch"][0]
    assert first == {"type": "person", "action": "suppress", "identifiers": {"id": "p0"}}
    wide: dict[str, object] = {f"attribute_{i}": "" for i in range(300)}
    large = adapter.operations([Operation(Action.IDENTIFY, person(f"p{i}"), wide, 5) for i in range(200)])
    assert len(large) > 1 and all(len(j.body) < 400_000 for j in large)
    assert sum(len(j.updates) for j in large) == 200
    item = json.loads(large[0].body)["batch"][0]
    assert item["action"] == "identify" and item["timestamp"] == 5 and item["attributes"] == wide


@pytest.mark.parametrize("adapter", [V1Adapter, BatchAdapter])
def test_operations_go_through_the_runs_workers_and_come_back_in_order(
    emulator: Emulator, client: TrackClient, adapter: type[V1Adapter | BatchAdapter]
) -> None:
    put(client, "p1", "p2", "p3")
    transport = adapter(client, 3)
    jobs = transport.operations(
        [
            Operation(Action.SUPPRESS, person("p1")),
            Operation(Action.DELETE, person("p2")),
            Operation(Action.DELETE, person("a@b.com")),
        ]
    )
    with Workers(transport, 3, SYSTEM_CLOCK) as workers:
        answers = workers.run(jobs)
    statuses = [d.status for job in answers for d in job]
    # The last is refused on v1 (it would read the id as an email address), sent as an id on batch.
    last = Status.FAILED if adapter is V1Adapter else Status.SYNCED
    assert statuses == [Status.SYNCED, Status.SYNCED, last]
    assert emulator.people() == {"p3": {"a": 1}}
    assert suppressed(emulator.workspace) == ["p1"]


def test_a_v1_delete_answered_404_counts_as_done_and_other_404s_do_not(emulator: Emulator, client: TrackClient) -> None:
    emulator.add_fault(Fault(status=404, person="p1", endpoint=Endpoint.CUSTOMERS, times=2))
    adapter = V1Adapter(client, 1)
    delete, suppress = adapter.operations(
        [Operation(Action.DELETE, person("p1")), Operation(Action.SUPPRESS, person("p1"))]
    )
    assert adapter.send(delete)[0].status is Status.SYNCED
    (answered,) = adapter.send(suppress)
    assert answered.status is Status.FAILED and answered.http_status == 404


class _Instant:
    """An adapter whose every job is answered at once, so that the workers race the collector."""

    def __init__(self, ready: int) -> None:
        self.ready = ready
        self.sent: list[Job] = []

    def send(self, job: Job | OperationJob) -> list[Delivery]:
        self.sent.append(cast(Job, job))
        return [Delivery(Status.SYNCED, 200)] * len(job.updates)

    def settled(self, job: Job) -> None:
        pass


@pytest.mark.parametrize("seed", range(12))
def test_a_collector_waiting_without_a_timeout_gets_every_answer(seed: int) -> None:
    # Workers wake the collector only once few jobs wait for them: whatever the counts and however
    # the threads interleave, no answer may be left uncollected while the collector waits on.
    rng = random.Random(seed)
    count, ready, total = rng.randint(1, 6), rng.randint(1, 8), rng.randint(1, 3000)
    adapter = _Instant(ready)
    jobs = [Job((), b"%d" % i) for i in range(total)]
    collected: list[Job] = []

    def run() -> None:
        with Workers(cast(Adapter, adapter), count, SYSTEM_CLOCK) as workers:
            waiting = iter(jobs)
            while len(collected) < total:
                while workers.busy < count + ready and (job := next(waiting, None)) is not None:
                    workers.submit(job)
                finished = workers.collect()
                assert finished is not None
                collected.append(finished[0])

    collector = threading.Thread(target=run, daemon=True)
    collector.start()
    collector.join(timeout=60)  # how a lost wake-up fails this test, not a wait for anything
    assert not collector.is_alive(), f"the collector still waits with {total - len(collected)} answers out"
    assert sorted(collected, key=lambda job: int(job.body)) == jobs


class _Held:
    """An adapter whose job ``i`` is answered once the test releases it, ``answers[i]`` if given."""

    def __init__(self, ready: int, count: int, answers: dict[int, Delivery] | None = None) -> None:
        self.ready = ready
        self.started = [threading.Event() for _ in range(count)]
        self.release = [threading.Event() for _ in range(count)]
        self._answers = answers or {}

    def send(self, job: Job | OperationJob) -> list[Delivery]:
        i = int(cast(Job, job).body)
        self.started[i].set()
        self.release[i].wait()
        return [self._answers.get(i, Delivery(Status.SYNCED, 200))]

    def settled(self, job: Job) -> None:
        pass


def _held_jobs(adapter: _Held, workers: Workers) -> list[Job]:
    jobs = [Job((), b"%d" % i) for i in range(len(adapter.started))]
    for job in jobs:
        workers.submit(job)
    return jobs


@pytest.mark.parametrize(
    "refused",
    [
        Delivery(Status.FAILED, 401, "refused", stop=StopReason.CREDENTIALS),
        Delivery(Status.FAILED, None, "cannot connect"),  # enough of these in a row stop the run
    ],
    ids=["401", "no answer"],
)
def test_an_answer_that_may_stop_the_run_wakes_the_collector_while_jobs_still_wait(refused: Delivery) -> None:
    # One worker and eight jobs waiting for it: an ordinary answer would not wake the collector,
    # but one that may stop the run must, before the worker sends what waits (here it cannot: the
    # next job is held until the end of the test).
    adapter = _Held(ready=8, count=9, answers={0: refused})
    collected: list[tuple[Job, list[Delivery]] | None] = []
    with Workers(cast(Adapter, adapter), 1, SYSTEM_CLOCK) as workers:
        jobs = _held_jobs(adapter, workers)
        collector = threading.Thread(target=lambda: collected.append(workers.collect()), daemon=True)
        collector.start()
        adapter.release[0].set()
        collector.join(timeout=30)  # how a missing wake-up fails this test, not a wait for anything
        woken = not collector.is_alive()
        for event in adapter.release:
            event.set()
        collector.join(timeout=30)
        while workers.busy:
            workers.collect()
    assert woken, "the collector was not woken by the answer that stops the run"
    assert collected == [(jobs[0], [refused])]


def test_a_timed_wait_returns_an_answer_that_came_during_it_without_ending_it() -> None:
    # The answer comes while the collector waits, and leaves jobs waiting, so it does not end the
    # wait: the collector still has it when the wait runs its course.
    adapter = _Held(ready=8, count=9)

    class AnswerDuringTheWait(FakeClock):
        def wait(self, event: threading.Event, seconds: float | None) -> bool:
            adapter.release[0].set()
            assert adapter.started[1].wait(timeout=30)  # the worker has put job 0's answer
            return super().wait(event, seconds)

    with Workers(cast(Adapter, adapter), 1, AnswerDuringTheWait()) as workers:
        jobs = _held_jobs(adapter, workers)
        finished = workers.collect(timeout=5)
        for event in adapter.release:
            event.set()
        for _ in jobs[1:]:
            workers.collect()
    assert finished is not None and finished[0] is jobs[0]

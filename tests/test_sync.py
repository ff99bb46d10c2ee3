"""The sync as a library call: concurrency, ordering, stopping, accounting."""

from __future__ import annotations

import importlib
import itertools
import threading
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cio_sync import ConfigError, CredentialsRejected, HttpSettings, RecordOutcome, Status, Stop, sync
from cio_sync.emulator import Emulator
from cio_sync.engine.packer import Job
from cio_sync.engine.workers import Workers
from cio_sync.input.config import FieldMapping, config_from_dict
from cio_sync.input.mapping import ordering_key
from cio_sync.input.runs import CALLERS_RECORDS_A_RUN
from cio_sync.outcome import Delivery
from cio_sync.transport import deadline

from .conftest import (
    API_KEY,
    FAST,
    SITE_ID,
    config_dict,
    make_config,
    one_by_one,
    people_puts,
    unstamped,
    wait_until,
)
from .fakeclock import FakeClock
from .quick import quick_sync

# The module, which the package's sync() function shadows as an attribute.
sync_module = importlib.import_module("cio_sync.engine.sync")


def test_every_record_lands_as_mapped(emulator: Emulator) -> None:
    records = [{"id": i, "name": f"n{i}", "computed_ltv": i * 2, "secret": "x"} for i in range(50)]
    result = sync(make_config(emulator.url), records, http=FAST)
    assert (result.total, result.synced, result.failed, result.invalid) == (50, 50, 0, 0)
    assert result.ok
    assert emulator.people() == {str(i): {"name": f"n{i}", "ltv": i * 2} for i in range(50)}


def test_invalid_records_are_reported_and_the_rest_synced(emulator: Emulator) -> None:
    records: list[object] = [{"id": 1}, "x", {"id": 2.5}, {"name": "no id"}, {"id": 2}, {"id": ""}]
    seen: list[RecordOutcome] = []
    result = sync(make_config(emulator.url), records, http=FAST, on_outcome=seen.append)
    assert (result.synced, result.invalid) == (2, 4)
    assert not result.ok
    assert sorted(emulator.people()) == ["1", "2"]
    invalid = sorted((o.index, o.person_id) for o in seen if o.status is Status.INVALID)
    assert invalid == [(1, None), (2, None), (3, None), (5, None)]
    assert [o.index for o in result.problems] == [1, 2, 3, 5]
    assert all(o.reason for o in result.problems)


def test_absent_keys_keep_their_value_and_null_is_sent(emulator: Emulator) -> None:
    config = make_config(emulator.url)
    sync(config, [{"id": 1, "name": "Ada", "computed_ltv": 5}], http=FAST)
    sync(config, [{"id": 1, "computed_ltv": None}], http=FAST)
    assert emulator.people() == {"1": {"name": "Ada", "ltv": None}}
    assert unstamped(emulator.requests()[-1].body) == {"ltv": None}


def test_never_more_than_parallelism_in_flight_and_it_is_reached(emulator: Emulator) -> None:
    emulator.latency = 0.03
    config = make_config(emulator.url, parallelism=6)
    result = sync(config, ({"id": i} for i in range(60)), http=FAST)
    assert result.synced == 60
    assert emulator.stats()["peak_in_flight"] == 6


def test_records_are_read_lazily(emulator: Emulator) -> None:
    emulator.latency = 0.002
    consumed = 0
    at_first_outcome: list[int] = []

    def records() -> Iterator[object]:
        nonlocal consumed
        for i in range(2 * CALLERS_RECORDS_A_RUN):
            consumed += 1
            yield {"id": i}

    def first(outcome: RecordOutcome) -> None:
        if not at_first_outcome:
            at_first_outcome.append(consumed)

    result = sync(make_config(emulator.url, parallelism=3), records(), http=FAST, on_outcome=first, index=one_by_one())
    assert result.synced == 2 * CALLERS_RECORDS_A_RUN
    # In flight, as many ready, and the run of them read last: runs begin small.
    assert at_first_outcome[0] <= 4 * 3


@pytest.mark.parametrize(("transport", "parallelism"), [("batch", 1), ("batch", 4), ("v1", 2)])
def test_records_out_stay_within_the_requests_in_flight_and_ready(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, transport: str, parallelism: int
) -> None:
    # Large records, a run of them at a time: no more requests are made ahead than the workers
    # take (parallelism, and as many ready: one batch for batch), however many of the run's records
    # there would be room for; and one that a worker idle took although not full.
    emulator.latency = 0.002
    most = 0
    submit = Workers.submit

    def counted(workers: Workers, job: Job) -> None:
        nonlocal most
        submit(workers, job)
        most = max(most, workers.busy)

    monkeypatch.setattr(Workers, "submit", counted)
    records = ({"id": f"p{n}", "name": f"{n:05}" + "x" * 995, "computed_ltv": n} for n in range(600))
    mappings = [{"from": "name", "to": "name"}, *({"from": "name", "to": f"a{k}"} for k in range(27))]
    config = make_config(emulator.url, transport=transport, parallelism=parallelism, mappings=mappings)
    result = sync(config, records, http=FAST)
    assert result.synced == 600
    assert most <= parallelism + (1 if transport == "batch" else parallelism) + 1


def test_one_person_is_updated_in_file_order(emulator: Emulator) -> None:
    emulator.latency = 0.005
    ids = ["a", "b", "A@x.com", "a", "c", "a@X.com", "b", "a", "a", "c", "b", "a"]
    records = [{"id": pid, "name": f"v{n}"} for n, pid in enumerate(ids)]
    result = sync(make_config(emulator.url, parallelism=8), records, http=FAST)
    assert result.synced == len(ids)
    sequential: dict[str, dict[str, object]] = {}
    spelling: dict[str, str] = {}
    for record in records:
        # An email address names one person whatever its case; the person keeps the first spelling.
        pid = str(record["id"])
        key = spelling.setdefault(pid.lower() if "@" in pid else pid, pid)
        sequential.setdefault(key, {})["name"] = record["name"]
    assert emulator.people() == sequential
    by_person: dict[str, list[tuple[float, float, object]]] = defaultdict(list)
    for request in emulator.requests():
        if request.method == "PUT" and request.person_id is not None:
            by_person[ordering_key(request.person_id)].append((request.started_at, request.answered_at, request.body))
    for person, spans in by_person.items():
        for (_, end, _), (start, _, _) in itertools.pairwise(spans):
            assert start >= end, f"two updates of {person} overlapped"
        names = [body["name"] for _, _, body in spans if isinstance(body, dict)]
        assert names == sorted(names, key=lambda v: int(str(v)[1:])), f"{person} updated out of order"


def test_one_person_repeated_many_times_is_written_once() -> None:
    records = [{"id": "same", "name": f"v{n}", f"k{n % 7}": n} for n in range(400)]
    records.insert(200, {"id": "other", "name": "x"})
    with Emulator(SITE_ID, API_KEY) as emulator:
        config = make_config(emulator.url, parallelism=16)
        config = replace(config, mappings=(*config.mappings, *(FieldMapping(f"k{k}", f"k{k}") for k in range(7))))
        result = sync(config, records, http=FAST)
        assert result.synced == 401
        # Each attribute as the last record that set it left it.
        assert emulator.people()["same"] == {"name": "v399", **{f"k{n % 7}": n for n in range(393, 400)}}
        assert emulator.writes("same") == 1


def test_one_person_written_many_times_stays_bounded_and_ordered(emulator: Emulator) -> None:
    records = [{"id": "same", "name": f"v{n}"} for n in range(400)]
    records.insert(200, {"id": "other", "name": "x"})
    result = sync(make_config(emulator.url, parallelism=16), records, http=FAST, index=one_by_one())
    assert result.synced == 401
    assert emulator.people()["same"] == {"name": "v399"}
    assert emulator.writes("same") == 400
    assert emulator.stats()["peak_in_flight"] <= 2


def test_rejected_credentials_stop_before_any_person_is_written(emulator: Emulator) -> None:
    config = make_config(emulator.url, apiKey="wrong")
    with pytest.raises(CredentialsRejected):
        sync(config, [{"id": 1}], http=FAST)
    assert people_puts(emulator) == []


def test_a_region_mismatch_is_refused(emulator: Emulator) -> None:
    document = config_dict(emulator.url, region="eu")
    config = config_from_dict(document, env={})
    mismatched = type(config)(**{**{f: getattr(config, f) for f in config.__slots__}, "custom_base_url": False})
    with pytest.raises(ConfigError, match='workspace is in the "us" region but the configuration says "eu"'):
        sync(mismatched, [{"id": 1}], http=FAST)
    assert people_puts(emulator) == []


@pytest.mark.parametrize("merged", [True, False])
def test_stopping_accounts_for_every_record(emulator: Emulator, merged: bool) -> None:
    emulator.latency = 0.01
    stop = Stop()
    outcomes: list[RecordOutcome] = []

    def watch(outcome: RecordOutcome) -> None:
        outcomes.append(outcome)
        if len(outcomes) == 20:
            stop("interrupted")

    # Each person twice, 150 records apart: merged, every record waits for its person's second.
    records = [{"id": i % 150, "name": str(i)} for i in range(300)]
    index = None if merged else one_by_one()
    config = make_config(emulator.url, parallelism=5)
    result = sync(config, records, http=FAST, on_outcome=watch, stop=stop, index=index)
    assert result.stopped == "interrupted"
    assert result.total == 300
    assert sorted(o.index for o in outcomes) == list(range(300))
    assert result.synced == len(people_puts(emulator)) * (2 if merged else 1)
    assert result.synced + result.not_attempted == 300
    assert 20 <= result.synced <= 30 * (2 if merged else 1)
    synced = {o.index for o in outcomes if o.status is Status.SYNCED}
    if merged:  # a person's two records share their write's outcome
        assert all((i + 150) % 300 in synced for i in synced)


def test_failures_are_counted_with_their_statuses(emulator: Emulator) -> None:
    emulator.add_fault(status=400, person="bad")
    emulator.add_fault(status=503, person="flaky", times=None)
    records = [{"id": "ok"}, {"id": "bad"}, {"id": "flaky"}]
    result = quick_sync(make_config(emulator.url), records, http=FAST)
    assert (result.synced, result.failed) == (1, 2)
    # Answers as received (the credentials check's 200 and each 503 included), resends as made.
    assert result.statuses == {200: 2, 400: 1, 503: 1 + FAST.retries}
    assert result.retries == FAST.retries
    assert result.requests == 3 + 1 + FAST.retries
    reasons = {o.person_id: o.reason for o in result.problems}
    assert reasons == {"bad": "HTTP 400: injected fault", "flaky": "HTTP 503 after 4 attempts: injected fault"}


@pytest.mark.parametrize("transport", ["v1", "batch"])
@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.one_of(
            # Not cio_...: the API drops a request naming a cio_id it does not know.
            st.text(min_size=1, max_size=40).filter(
                lambda s: (
                    not any(0xD800 <= ord(c) <= 0xDFFF for c in s)
                    and len(s.encode()) <= 150
                    and not s.startswith("cio_")
                )
            ),
            st.integers(min_value=-(10**30), max_value=10**30),
        ),
        min_size=1,
        max_size=12,
        unique_by=lambda v: ordering_key(str(v)),
    )
)
def test_any_id_reaches_the_workspace_exactly(transport: str, ids: list[str | int]) -> None:
    with Emulator(SITE_ID, API_KEY) as emulator:
        config = make_config(emulator.url, transport=transport)
        result = sync(config, [{"id": i, "name": "x"} for i in ids], http=FAST)
        assert result.synced == len(ids)
        assert sorted(emulator.people()) == sorted(str(i) for i in ids)


def test_an_api_that_goes_away_mid_run_stops_the_run(emulator: Emulator) -> None:
    def network_dies(outcome: RecordOutcome) -> None:
        if outcome.index == 5:
            emulator.add_fault(drop="before", times=None)

    config = make_config(emulator.url, parallelism=2)
    result = quick_sync(config, ({"id": i} for i in range(300)), http=FAST, on_outcome=network_dies)
    assert result.stopped == "unreachable"
    assert result.failed <= 10 + 2 * 2
    assert result.not_attempted >= 250
    assert result.synced + result.failed + result.not_attempted == 300


@pytest.mark.parametrize("transport", ["v1", "batch"])
def test_a_person_waiting_for_a_later_stamp_holds_back_no_one_else(emulator: Emulator, transport: str) -> None:
    # Y's first answer is lost after the write was applied: Y's next update must be stamped in a
    # later second, and the people after Y are sent while it waits for that second.
    emulator.add_fault(drop="after", person="Y", times=1)
    records = [{"id": "Y", "name": "free"}, {"id": "Y", "name": "pro"}] + [{"id": f"o{i}"} for i in range(20)]
    # Time passes only while nothing is in flight: Y's second cannot begin before the others went.
    stop = Stop()
    clock = FakeClock(only_on=stop.event)
    config = make_config(emulator.url, transport=transport, parallelism=1)
    result = sync(config, records, http=FAST, stop=stop, clock=clock, index=one_by_one())
    assert result.synced == 22
    assert emulator.people()["Y"] == {"name": "pro"}
    if transport == "batch":
        sent = [item for r in emulator.requests() if r.endpoint.value == "batch" for item in r.body["batch"]]
        order = [(item["identifiers"]["id"], item["timestamp"]) for item in sent]
    else:
        order = [(r.person_id, r.body["_timestamp"]) for r in emulator.requests() if r.method == "PUT"]
    y = [n for n, (person, _) in enumerate(order) if person == "Y"]
    assert len(y) == 3, "the lost answer, its resend, and the next record"
    assert order[y[2]][1] > order[y[1]][1], "the next record is stamped a later second than the resend"
    others_before = {person for person, _ in order[: y[2]]} - {"Y"}
    assert len(others_before) >= 2, f"only {sorted(others_before)} went while Y waited: {order}"


def test_a_stop_settles_an_update_waiting_for_a_later_stamp_as_not_attempted(emulator: Emulator) -> None:
    emulator.add_fault(drop="after", person="Y", times=1)
    records = [{"id": "Y", "name": "free"}, {"id": "Y", "name": "pro"}] + [{"id": f"o{i}"} for i in range(20)]
    outcomes: dict[int, RecordOutcome] = {}
    stop = Stop()

    def stop_after_o0(outcome: RecordOutcome) -> None:
        outcomes[outcome.index] = outcome
        if outcome.person_id == "o0":
            stop()

    # Time passes only while nothing is in flight: Y's next update still waits when o0 is done.
    clock = FakeClock(only_on=stop.event)
    config = make_config(emulator.url, parallelism=1)
    result = sync(config, records, http=FAST, on_outcome=stop_after_o0, stop=stop, clock=clock, index=one_by_one())
    assert result.stopped == "stopped"
    assert outcomes[1].status is Status.NOT_ATTEMPTED
    assert emulator.people()["Y"] == {"name": "free"}
    assert result.synced + result.not_attempted == 22


@pytest.mark.parametrize("transport", ["v1", "batch"])
def test_a_write_applied_after_the_timeout_never_overtakes_the_next_one(emulator: Emulator, transport: str) -> None:
    # The first attempt for Y is applied late, after the client gave up on it, a resend
    # succeeded and Y's next record went in the second after. The client's time is fake: it
    # gives up when the test moves its clock past the deadline, and its second passes unwaited.
    endpoint = "batch" if transport == "batch" else "customers"
    if transport == "batch":
        emulator.add_fault(delay=0.5, endpoint="batch", times=1)
    else:
        emulator.add_fault(delay=0.5, person="Y", times=1)

    def first_attempt_held() -> bool:
        stats = emulator.stats()
        return bool(stats["in_flight"] == 1 and stats["endpoints"].get(endpoint))

    http = HttpSettings(read_timeout=5.0, retries=2, backoff_factor=0.0)
    records = [{"id": "Y", "name": "free"}, {"id": "Y", "name": "pro"}]
    stop = Stop()
    # Only the hold for the next second passes time on its own; an answer is awaited as it comes.
    clock = FakeClock(only_on=stop.event)
    config = make_config(emulator.url, transport=transport, parallelism=1)
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(sync, config, records, http=http, stop=stop, clock=clock, index=one_by_one())
        wait_until(lambda: first_attempt_held() or running.done())
        clock.advance(http.read_timeout + 1)
        result = running.result(timeout=30)
    assert result.synced == 2
    wait_until(lambda: emulator.stats()["in_flight"] == 0)
    assert emulator.people()["Y"] == {"name": "pro"}
    # Kept in the order their answers were decided: the late attempt last, after the next record.
    writes = [r for r in emulator.requests() if r.endpoint.value != "region"]
    names = [
        [item["attributes"]["name"] for item in r.body["batch"]] if transport == "batch" else [r.body["name"]]
        for r in writes
    ]
    assert names[-1] == ["free"], f"the late attempt must land after the next record: {names}"
    assert ["pro"] in names


def test_a_stop_with_an_update_waiting_for_a_later_stamp_does_not_spin(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Y's first answer is lost, so Y's next update waits for a later second; then the run stops
    # while Z's request is still in flight (the server holds it past the stop's grace). The
    # waiting update is not sent after a stop: the loop must wait for Z's answer, not poll for
    # it until Z is cut because a second it no longer cares about has begun.
    # The grace, and Z's answer past it, at a tenth of their real length: the same race, sooner.
    monkeypatch.setattr(deadline, "STOP_GRACE", 0.2)
    emulator.add_fault(drop="after", person="Y", times=1)
    emulator.add_fault(delay=0.5, person="Z", times=1)
    stop = Stop()
    empty_collects = 0

    y_settled = threading.Event()

    class CountingWorkers(Workers):
        def collect(self, timeout: float | None = None) -> tuple[Job, list[Delivery]] | None:
            nonlocal empty_collects
            if y_settled.is_set() and not stop.requested:
                # Y's first update is settled (resent: its next one is held for a later second),
                # and Z's request is held by the server: stop there.
                wait_until(lambda: emulator.stats()["in_flight"] >= 1)
                stop()
            finished = super().collect(timeout)
            empty_collects += finished is None
            return finished

    def settled(outcome: RecordOutcome) -> None:
        if outcome.person_id == "Y":
            y_settled.set()

    records = [{"id": "Y", "name": "free"}, {"id": "Y", "name": "pro"}, {"id": "Z", "name": "z"}]
    monkeypatch.setattr(sync_module, "Workers", CountingWorkers)
    config = make_config(emulator.url, parallelism=2)
    result = sync(config, records, http=FAST, stop=stop, index=one_by_one(), on_outcome=settled)
    assert (result.synced, result.failed, result.not_attempted) == (1, 1, 1)
    assert emulator.people()["Y"] == {"name": "free"}
    assert empty_collects <= 2, f"{empty_collects} waits for an answer came back empty"


def test_one_invalid_record_leaves_the_others_routed_a_run_at_a_time(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The person of an invalid record has their later records held back one by one; everyone
    # else's still go a run at a time, as they would with no invalid record at all.
    from cio_sync.engine import routing

    at_once: list[int] = []
    fresh = routing.Routing._fresh

    def counted(self: routing.Routing, works: object, requests: int) -> int | None:
        taken = fresh(self, works, requests)  # type: ignore[arg-type]  # a run of works, passed on
        at_once.append(taken or 0)
        return taken

    monkeypatch.setattr(routing.Routing, "_fresh", counted)
    records: list[dict[str, object]] = [{"id": "p0", "name": "x" * 2000}]
    records += [{"id": f"p{i}", "name": "n"} for i in range(1, 3000)]
    records.append({"id": "p0", "name": "later"})
    config = make_config(emulator.url, parallelism=4, transport="batch", mappings=[{"from": "name", "to": "name"}])
    result = sync(config, records, http=FAST)
    assert (result.invalid, result.synced, result.not_attempted) == (1, 2999, 1)
    assert "p0" not in emulator.people()
    assert sum(at_once) >= 2500  # none at all when one invalid record turned the way off

"""One workspace, one pace: the shared pause after 429 and the rate cap, seen from the server."""

from __future__ import annotations

import signal
import subprocess
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

import pytest

from cio_sync import HttpSettings, Stop, SyncResult, sync
from cio_sync.emulator import Emulator
from cio_sync.transport.pacing import Cancelled, Gate

from .conftest import FAST, Files, Spawn, config_dict, make_config, wait_until
from .fakeclock import FakeClock, SteppedClock
from .quick import quick_sync


@pytest.mark.parametrize("status", [429, 503])
def test_a_refusal_with_retry_after_holds_back_every_worker(emulator: Emulator, status: int) -> None:
    # Real time: on a clock that one worker's wait moves for every worker, a pause that only the
    # refused worker kept would look like one that all of them kept.
    emulator.latency = 0.005
    emulator.add_fault(status=status, retry_after="0.4", person="p20")
    records = [{"id": f"p{i}"} for i in range(120)]
    result = sync(make_config(emulator.url, parallelism=8), records, http=FAST)
    assert result.synced == 120
    puts = [r for r in emulator.requests() if r.method == "PUT"]
    limited = next(r for r in puts if r.status == status)
    paused_from, paused_to = limited.answered_at + 0.1, limited.answered_at + 0.38
    assert [r.person_id for r in puts if paused_from < r.started_at < paused_to] == []
    retried = [r for r in puts if r.person_id == "p20" and r.status == 200]
    assert retried[0].started_at >= limited.answered_at + 0.38
    assert result.retries == 1


def step_through(
    clock: SteppedClock, stop: Stop, running: Future[SyncResult], turn: float, admitted: Callable[[int], bool]
) -> int:
    """Step ``clock`` one rate-cap ``turn`` at a time, calling ``admitted`` with the number of
    turns passed before each step, until it says every request has gone; then wait for the run
    to end. The steps it took. A failed check stops the run, which would otherwise wait for
    steps that never come."""
    steps = 0
    try:
        while not admitted(steps):
            steps += 1
            assert steps < 1000, "the requests never all went"
            # A hair over a turn: the next slot is then never a rounding error away from a step.
            clock.advance(turn * 1.0001)
        running.result(timeout=60)
    except BaseException:
        stop()
        while not running.done():  # and time goes on, for any wait that a stop does not cut
            clock.advance(1.0)
            wait([running], timeout=0.05)
        raise
    return steps


def received(emu: Emulator) -> int:
    """The requests the emulator has received so far: the credentials check, then the writes."""
    return int(emu.stats()["requests"])


def test_the_rate_cap_spaces_requests_for_all_workers(emulator: Emulator) -> None:
    # On a clock the test steps one turn of the cap (1/40 s) at a time, with ten workers waiting
    # side by side as they would in real time: each turn lets exactly one request through,
    # whichever worker asks (the credentials check, then the writes). How far apart the gate sets
    # its turns: test_the_rate_cap_spaces_turns_on_the_clock.
    clock, stop = SteppedClock(), Stop()
    config = make_config(emulator.url, parallelism=10, rateLimit=40)

    def admitted(turns: int) -> bool:
        wait_until(lambda: received(emulator) >= min(turns + 1, 41) or running.done())
        assert received(emulator) == min(turns + 1, 41), f"{received(emulator)} requests after {turns} turns"
        return received(emulator) == 41

    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(sync, config, ({"id": i} for i in range(40)), http=PATIENT, clock=clock, stop=stop)
        steps = step_through(clock, stop, running, 1 / 40, admitted)
        assert running.result().synced == 40
    assert steps == 40


# Deadlines far beyond the fake seconds a run passes: an answer is never late on the fake clock.
PATIENT = HttpSettings(connect_timeout=2.0, read_timeout=600.0, retries=3, backoff_factor=0.0)


def one_clock() -> tuple[FakeClock, Stop]:
    """A fake clock for a run and the emulator alike (give it to both): the emulator's limit
    refills as fast as the run's pauses pass, and none is waited for. Only the run's waits on its
    stop pass time, its pauses; a wait for an answer returns when the answer comes."""
    stop = Stop()
    return FakeClock(monotonic=0.0, only_on=stop.event), stop


def test_capped_below_the_emulators_limit_nothing_is_refused() -> None:
    # The run's cap and the emulator's refills on one clock, stepped a turn of the cap at a time
    # with ten workers waiting side by side, as they would for real (on a FakeClock their waits
    # would add up, and the turns and refills no longer line up). The cap below the limit.
    clock, stop = SteppedClock(), Stop()
    with Emulator("s", "k", rate_limit=50, burst=10, clock=clock) as emu:
        config = make_config(emu.url, parallelism=10, rateLimit=35, siteId="s", apiKey="k")

        def admitted(turns: int) -> bool:
            wait_until(lambda: received(emu) >= min(turns + 1, 61) or running.done())
            assert received(emu) == min(turns + 1, 61), f"{received(emu)} requests after {turns} turns"
            return received(emu) == 61

        with ThreadPoolExecutor(1) as pool:
            records = ({"id": i} for i in range(60))
            running = pool.submit(sync, config, records, http=PATIENT, clock=clock, stop=stop)
            step_through(clock, stop, running, 1 / 35, admitted)
            assert running.result().synced == 60
        assert emu.stats()["statuses"].get("429", 0) == 0


def test_the_emulator_enforces_its_rate_limit_with_retry_after() -> None:
    clock, stop = one_clock()
    with Emulator("s", "k", rate_limit=20, burst=2, clock=clock) as emu:
        config = make_config(emu.url, parallelism=10, siteId="s", apiKey="k")
        result = sync(config, ({"id": i} for i in range(12)), http=PATIENT, clock=clock, stop=stop)
        assert result.synced == 12
        limited = [r for r in emu.requests() if r.status == 429]
        assert limited
        assert result.retries >= len(limited)
    # The emulator's Retry-After (whole seconds) was waited out, on the fake clock.
    assert clock.monotonic() >= 1.0


def test_a_429_storm_delays_records_but_loses_none() -> None:
    # Ten workers against a workspace that takes ten requests a second: every record lands.
    clock, stop = one_clock()
    with Emulator("s", "k", rate_limit=10, burst=2, clock=clock) as emu:
        config = make_config(emu.url, parallelism=10, siteId="s", apiKey="k")
        result = sync(config, ({"id": i} for i in range(30)), http=PATIENT, clock=clock, stop=stop)
        assert result.synced == 30
        assert emu.stats()["statuses"]["429"] >= 1
    # Thirty requests at ten a second, two at once: at least 2.8 seconds, if only fake ones.
    assert clock.monotonic() >= 2.8


def test_a_person_refused_for_rate_more_often_than_the_retries_still_lands(emulator: Emulator) -> None:
    # 429s have a budget of their own: they say "later", not "this request is wrong".
    emulator.add_fault(status=429, person="7", times=FAST.retries + 3, retry_after="0.01")
    result = quick_sync(make_config(emulator.url, parallelism=10), ({"id": i} for i in range(30)), http=FAST)
    assert result.synced == 30
    assert [r.status for r in emulator.requests() if r.person_id == "7"] == [429] * (FAST.retries + 3) + [200]


def test_a_stop_wakes_workers_waiting_out_a_pause() -> None:
    stop = threading.Event()
    gate = Gate(stop=stop)
    gate.throttled(60)
    failures: list[BaseException] = []

    def wait() -> None:
        try:
            gate.wait_turn()
        except Cancelled as e:
            failures.append(e)

    waiter = threading.Thread(target=wait)
    waiter.start()
    stop.set()
    waiter.join(timeout=5)
    assert not waiter.is_alive()
    assert len(failures) == 1


def test_the_gate_learns_the_workspace_rate() -> None:
    clock = FakeClock(monotonic=0.0)
    stop = threading.Event()
    gate = Gate(stop=stop, clock=clock)
    assert gate.rate is None
    for _ in range(10):
        gate.succeeded()
    clock.advance_to(0.01)
    gate.throttled(1.0)
    # Ten accepted before the first refusal, over at least one pause: start at 10/s.
    assert gate.rate == 10
    gate.throttled(1.0)
    assert gate.rate == 10, "refusals of requests already in flight are one signal"

    def constrained_turn() -> None:
        gate.wait_turn()
        stop.set()
        with pytest.raises(Cancelled):
            gate.wait_turn()
        stop.clear()

    clock.advance_to(1.5)
    constrained_turn()
    clock.advance_to(2.1)
    gate.wait_turn()
    assert gate.rate == 20, "slow start doubles the rate after a period without refusals"
    clock.advance_to(2.2)
    gate.succeeded()
    gate.throttled(1.0)
    assert gate.rate == 10, "an overshoot goes back to the last rate that was not refused"
    clock.advance_to(5.0)
    gate.throttled(1.0)
    assert gate.rate == 10, "a refusal with nothing accepted since the last one says nothing of the rate"
    gate.succeeded()
    gate.throttled(1.0)
    assert gate.rate == pytest.approx(9.7)


def test_refusals_that_come_whatever_the_pace_take_the_rate_no_lower_than_half_its_best() -> None:
    # A gateway refuses a share of the requests whatever their pace: each refusal cuts the
    # learned rate and holds its growth back, and the refusals keep coming as the rate falls.
    clock = FakeClock(monotonic=0.0)
    gate = Gate(clock=clock)
    now = 0.0

    def accept(count: int, seconds: float) -> None:
        nonlocal now
        for i in range(count):
            clock.advance_to(now + (i + 1) * seconds / count)
            gate.succeeded()
        now += seconds

    accept(3000, 20.0)  # 150 a second accepted, none refused
    for _ in range(300):  # then for five minutes, a refusal every second, 2% of what gets through
        accept(int(gate.rate or 150), 1.0)
        gate.throttled(0.3)
    assert gate.rate is not None and 75 <= gate.rate < 150


def test_a_limit_lowered_mid_run_is_learned_below_half_the_best_and_not_left_again() -> None:
    clock = FakeClock(monotonic=0.0)
    gate = Gate(clock=clock)
    now = 0.0

    def second(limit: int, pace: float, refusals: int = 0) -> None:
        # One second at ``pace``: the workspace takes ``limit`` and refuses the rest for its rate.
        nonlocal now
        taken = min(limit, int(pace))
        for i in range(taken):
            clock.advance_to(now + (i + 1) / max(taken, 1))
            gate.succeeded()
        for _ in range(max(refusals, int(pace) - limit)):
            gate.throttled(0.3)
        now += 1.0

    for _ in range(20):
        second(150, 150)  # the best: 150 a second, nothing refused
    second(150, 300, 1)  # a first refusal: the rate is learned
    for _ in range(300):  # the workspace now takes 30 a second; beyond that it refuses
        second(30, gate.rate or 150)
    assert gate.rate is not None and gate.rate <= 35
    learned = gate.rate
    for _ in range(60):  # then refusals grow rare, one a second: they never raise the rate
        second(1000, gate.rate, refusals=1)
        assert gate.rate <= learned


def test_refusals_before_anything_was_accepted_teach_no_rate() -> None:
    clock = FakeClock(monotonic=0.0)
    gate = Gate(clock=clock)
    for second in range(50):
        clock.advance_to(second * 0.5)
        gate.throttled(0.1)
    assert gate.rate is None, "a workspace refusing everything is waited out, not paced to the floor"
    # The burst is over (its last pause ended at 24.6): the first rate is measured from then.
    for _ in range(200):
        gate.succeeded()
    clock.advance_to(26.6)
    gate.throttled(0.1)
    assert gate.rate == pytest.approx(100)


def test_a_burst_of_429s_at_the_start_leaves_the_run_at_full_speed(emulator: Emulator) -> None:
    # Every worker's first request and its first resend are refused; then the workspace takes
    # all. Once the refusals are over the workers must send side by side again, not one at a
    # time at a rate learned from nothing accepted.
    workers = 10
    # Long enough that workers sending side by side overlap even on a busy machine.
    emulator.latency = 0.1
    emulator.add_fault(status=429, retry_after="0.05", endpoint="customers", times=2 * workers)
    records = [{"id": f"p{i}"} for i in range(60)]
    result = sync(make_config(emulator.url, parallelism=workers), records, http=FAST)
    assert (result.synced, result.failed) == (60, 0)
    puts = [r for r in emulator.requests() if r.method == "PUT"]
    assert Counter(r.status for r in puts)[429] == 2 * workers
    accepted = [r for r in puts if r.status == 200]
    overlapping = max(sum(1 for o in accepted if o.started_at <= r.started_at < o.answered_at) for r in accepted)
    assert overlapping >= workers // 2


def test_an_idle_limit_is_not_raised() -> None:
    clock = FakeClock(monotonic=0.0)
    gate = Gate(clock=clock)
    gate.succeeded()
    gate.throttled(1.0)
    clock.advance_to(10.0)
    gate.wait_turn()
    assert gate.rate == 1.0


def test_the_users_cap_always_applies() -> None:
    clock = FakeClock(monotonic=0.0)
    gate = Gate(rate=5, clock=clock)
    assert gate.rate == 5
    for _ in range(100):
        gate.succeeded()
    gate.throttled(1.0)
    assert gate.rate == 5


def test_a_second_ctrl_c_exits_at_once(emulator: Emulator, files: Files, spawn_cli: Spawn) -> None:
    # Long enough that the process is gone before any person's request is answered.
    emulator.add_fault(delay=2.0, endpoint="customers", times=None)
    data = files.data([{"id": i} for i in range(50)])
    args = ["--config", files.config(config_dict(emulator.url, parallelism=4)), "--data", data]
    proc = spawn_cli(args, stdout=subprocess.DEVNULL)
    assert proc.stderr is not None
    assert "syncing 50 records" in proc.stderr.readline()
    wait_until(lambda: emulator.stats()["in_flight"] == 4)
    proc.send_signal(signal.SIGINT)
    assert "interrupted: letting requests in flight finish" in proc.stderr.readline()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=4) == 130
    assert emulator.stats()["in_flight"] == 4


def test_a_person_refused_with_429_forever_fails_in_the_end(emulator: Emulator) -> None:
    emulator.add_fault(status=429, retry_after="0", person="stuck", times=None)
    http = HttpSettings(retries=1, rate_limited_retries=1, backoff_factor=0)
    result = quick_sync(make_config(emulator.url), [{"id": "stuck"}, {"id": "fine"}], http=http)
    assert (result.synced, result.failed) == (1, 1)
    (problem,) = result.problems
    assert problem.reason == "HTTP 429 after 3 attempts: injected fault"


def test_the_rate_cap_spaces_turns_on_the_clock() -> None:
    clock = FakeClock(monotonic=0.0)
    gate = Gate(rate=40, clock=clock)
    for _ in range(41):
        gate.wait_turn()
    # Forty intervals of 1/40 s between 41 turns, waited on the clock, not in real time.
    assert clock.monotonic() == pytest.approx(1.0)


def test_a_pause_after_a_refusal_holds_every_turn_until_it_ends() -> None:
    clock = FakeClock(monotonic=0.0)
    gate = Gate(clock=clock)
    gate.throttled(42.5)
    gate.wait_turn()
    assert clock.monotonic() == pytest.approx(42.5)
    gate.wait_turn()
    assert clock.monotonic() == pytest.approx(42.5), "the pause is over: the next turn is at once"


def test_a_sleep_is_waited_on_the_clock_and_a_stop_cuts_it() -> None:
    clock = FakeClock(monotonic=0.0)
    stop = threading.Event()
    gate = Gate(stop=stop, clock=clock)
    gate.sleep(12.0)
    assert clock.monotonic() == pytest.approx(12.0)
    stop.set()
    with pytest.raises(Cancelled):
        gate.sleep(60.0)
    assert clock.monotonic() == pytest.approx(12.0)


def test_a_stall_is_noticed_on_the_clock_during_a_long_pause() -> None:
    clock = FakeClock(monotonic=0.0)
    stalls: list[float] = []
    gate = Gate(clock=clock, patience=100.0, on_stall=lambda: stalls.append(clock.monotonic()))
    gate.throttled(300.0)
    gate.wait_turn()
    # Looked at in slices of at most a second: noticed within a second of the patience running out.
    assert len(stalls) == 1 and 100.0 < stalls[0] <= 101.0

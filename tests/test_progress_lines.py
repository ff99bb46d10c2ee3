"""Progress lines where there is no terminal: on a timer, in text and JSON alike, driven by a fake
clock here (no test waits for the interval) and seen once in a real run, its interval shortened."""

from __future__ import annotations

import io
import json
import threading

import pytest

from cio_sync.clock import SYSTEM_CLOCK
from cio_sync.emulator import Emulator
from cio_sync.engine.tally import Tally
from cio_sync.errors import ExitCode
from cio_sync.outcome import RecordOutcome, Status, StopReason
from cio_sync.outputs import console as console_module
from cio_sync.outputs.console import JSON_PROGRESS_INTERVAL, JsonConsole, TextConsole
from cio_sync.outputs.progress import PROGRESS_INTERVAL, Snapshot, Ticker, progress_line

from .conftest import Files, config_dict, run_cli
from .fakeclock import FakeClock

PROGRESS = "cio-sync: progress: "


def outcome(index: int, status: Status = Status.SYNCED) -> RecordOutcome:
    return RecordOutcome(index, status, str(index), None if status is Status.SYNCED else "why")


def progress(stream: io.StringIO) -> list[str]:
    return [line for line in stream.getvalue().splitlines() if line.startswith(PROGRESS)]


def test_text_progress_every_interval_without_a_terminal() -> None:
    clock = FakeClock()
    stream = io.StringIO()  # not a terminal
    console = TextConsole(stream=stream, clock=clock, timer=False)
    console.started("data.json", 50_000, "http://127.0.0.1:1", 4)
    console.outcome(outcome(0))
    assert progress(stream) == []  # not before the interval
    clock.advance(PROGRESS_INTERVAL)
    for index, status in enumerate([Status.SYNCED, Status.FAILED, Status.INVALID, Status.INVALID], start=1):
        console.outcome(outcome(index, status))
    expected = "progress: 2 of 50,000 records (0%) at 0 records/s; 0 failed, 0 invalid so far"
    assert progress(stream) == [f"cio-sync: {expected}"]
    clock.advance(PROGRESS_INTERVAL / 2)
    console.outcome(outcome(5))
    assert len(progress(stream)) == 1
    clock.advance(PROGRESS_INTERVAL / 2)
    console.outcome(outcome(6))
    assert progress(stream)[-1] == f"{PROGRESS}7 of 50,000 records (0%) at 0 records/s; 1 failed, 2 invalid so far"


def test_a_line_comes_when_no_record_finishes() -> None:
    clock = FakeClock()
    said: list[Snapshot] = []
    ticker = Ticker(said.append, PROGRESS_INTERVAL, clock)
    ticker.start(3, thread=False)
    ticker.tick()
    assert said == []
    clock.advance(PROGRESS_INTERVAL)
    ticker.tick()  # what the timer's thread does: no outcome came
    ticker.tick()  # and not twice for one interval
    assert said == [Snapshot(0, 3, 0, 0, 0.0)]
    for index in range(3):
        ticker.add(outcome(index))
    clock.advance(2 * PROGRESS_INTERVAL)
    ticker.tick()
    assert said[-1] == Snapshot(3, 3, 0, 0, 3 / (3 * PROGRESS_INTERVAL))
    ticker.stop()
    clock.advance(PROGRESS_INTERVAL)
    ticker.tick()
    assert len(said) == 2


def test_the_line_reads_well() -> None:
    line = progress_line(Snapshot(12_000, 50_000, 3, 5, 1234.4))
    assert line == "progress: 12,000 of 50,000 records (24%) at 1,234 records/s; 3 failed, 5 invalid so far"
    assert (
        progress_line(Snapshot(0, 0, 0, 0, 0.0))
        == "progress: 0 of 0 records at 0 records/s; 0 failed, 0 invalid so far"
    )


def test_quiet_and_a_stop_show_no_progress() -> None:
    clock = FakeClock()
    quiet_stream, stream = io.StringIO(), io.StringIO()
    quiet = TextConsole(quiet=True, stream=quiet_stream, clock=clock, timer=False)
    console = TextConsole(stream=stream, clock=clock, timer=False)
    for each in (quiet, console):
        each.started("data.json", 10, "http://127.0.0.1:1", 1)
    console.stopping(StopReason.TERMINATED)
    clock.advance(PROGRESS_INTERVAL)
    for each in (quiet, console):
        each.outcome(outcome(0))
    assert quiet_stream.getvalue() == ""
    assert progress(stream) == []


def test_json_progress_events_on_the_clock() -> None:
    clock = FakeClock()
    stream = io.StringIO()
    console = JsonConsole(stream=stream, clock=clock, timer=False)
    console.started("data.json", 4, "http://127.0.0.1:1", 1)
    console.outcome(outcome(0, Status.INVALID))
    clock.advance(JSON_PROGRESS_INTERVAL)
    console.outcome(outcome(1, Status.FAILED))
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    (event,) = [e for e in events if e["event"] == "progress"]
    assert {k: event[k] for k in ("done", "total", "failed", "invalid")} == {
        "done": 2,
        "total": 4,
        "failed": 1,
        "invalid": 1,
    }
    assert event["records_per_second"] == round(2 / JSON_PROGRESS_INTERVAL, 1)


def test_the_timer_thread_is_a_daemon_that_ends_with_the_run() -> None:
    console = TextConsole(stream=io.StringIO(), clock=SYSTEM_CLOCK)
    console.started("data.json", 1, "http://127.0.0.1:1", 1)
    (timer,) = [t for t in threading.enumerate() if t.name == "cio-sync-progress"]
    assert timer.daemon
    tally = Tally()
    tally.add(outcome(0))
    console.finished(tally.result(0.1, None, None, requests=1, statuses={200: 1}, retries=0), ExitCode.OK)
    timer.join(timeout=5)
    assert not timer.is_alive()


def test_a_slow_run_in_a_log_shows_progress(emulator: Emulator, files: Files, monkeypatch: pytest.MonkeyPatch) -> None:
    # The real clock and the timer's own thread, at a twentieth of a second rather than ten.
    monkeypatch.setattr(console_module, "PROGRESS_INTERVAL", 0.05)
    # Both answers take longer than the interval: no record finishes before a line is due.
    emulator.add_fault(delay=0.3, person="1", times=1)
    emulator.add_fault(delay=0.3, person="2", times=1)
    config = files.config(config_dict(emulator.url, parallelism=2))
    run = run_cli(["--config", config, "--data", files.data([{"id": 1}, {"id": 2}])])
    assert run.code == 0, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith(PROGRESS)]
    assert lines, run.stderr
    assert all(" of 2 records " in line for line in lines)

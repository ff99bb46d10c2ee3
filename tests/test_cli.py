"""The cio-sync command end to end, in-process and as a real process."""

from __future__ import annotations

import functools
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import cio_sync.cli.command
import cio_sync.outputs.console
from cio_sync import ExitCode, __version__, sync
from cio_sync.emulator import Emulator

from .conftest import (
    API_KEY,
    CLI,
    SITE_ID,
    Files,
    Spawn,
    cli_env,
    config_dict,
    finish,
    people_puts,
    run_cli,
    run_process,
    wait_until,
)
from .fakeclock import Skipped, SteppedClock
from .quick import child_env, quicken

DATA = [
    {"id": 1, "name": "Ada", "computed_ltv": 10.5, "ignored": True},
    {"id": "a/b", "name": "Slash"},
    {"id": "x?y#z", "name": None},
]
EXPECTED = {"1": {"name": "Ada", "ltv": 10.5}, "a/b": {"name": "Slash"}, "x?y#z": {"name": None}}


@pytest.mark.parametrize("style", [("--config", "--data"), ("-config", "-data")])
def test_both_flag_styles_sync_everything(emulator: Emulator, files: Files, style: tuple[str, str]) -> None:
    run = run_cli([style[0], files.config(config_dict(emulator.url)), style[1], files.data(DATA)])
    assert run.code == 0, run.stderr
    assert emulator.people() == EXPECTED
    assert run.stdout == ""
    assert f"syncing 3 records from {files.root / 'data.json'} to {emulator.url} (4 at a time)" in run.stderr
    assert "3 records: 3 synced, 0 failed, 0 invalid in " in run.stderr
    assert "records/s)" in run.stderr


def test_data_from_stdin(emulator: Emulator, files: Files) -> None:
    run = run_cli(["--config", files.config(config_dict(emulator.url)), "--data", "-"], input=json.dumps(DATA))
    assert run.code == 0, run.stderr
    assert "from <stdin>" in run.stderr
    assert emulator.people() == EXPECTED


def test_python_dash_m_is_the_same_command_and_a_sync_may_be_named(emulator: Emulator, files: Files) -> None:
    # One process for both: "sync" is routed by the entry point itself, before any Typer app.
    args = ["sync", "-config", files.config(config_dict(emulator.url)), "-data", "-"]
    run = run_process(args, input=json.dumps(DATA).encode())
    assert run.code == 0, run.stderr
    assert emulator.people() == EXPECTED
    assert "3 records: 3 synced" in run.stderr


def test_version() -> None:
    run = run_cli(["--version"])
    assert run.code == 0
    assert run.stdout.strip() == f"cio-sync {__version__}"


def test_help_shows_every_option_and_examples() -> None:
    run = run_cli(["--help"])
    assert run.code == 0
    for option in ("--config", "-config", "--data", "-data", "--base-url", "--retries", "--timeout", "--quiet"):
        assert option in run.stdout
    assert "Examples:" in run.stdout
    codes = " ".join(run.stdout.split("Exit codes:", 1)[1].split())
    missing = [int(code) for code in ExitCode if f" {int(code)} " not in f" {codes}"]
    assert missing == []


def test_help_examples_are_whole_commands_on_a_narrow_terminal() -> None:
    from cio_sync.cli.command import EXAMPLES

    commands = [line.strip() for line in EXAMPLES.splitlines() if line.strip().startswith(("cio-sync", "export-"))]
    assert len(commands) >= 5
    run = run_cli(["--help"], env={"COLUMNS": "60"})
    shown = [line.strip() for line in run.stdout.splitlines()]
    assert all(command in shown for command in commands), run.stdout


def test_credentials_from_the_environment(emulator: Emulator, files: Files) -> None:
    config = files.config(config_dict(emulator.url, siteId=None, apiKey=None))
    run = run_cli(
        ["--config", config, "--data", files.data(DATA)], env={"CIO_SITE_ID": SITE_ID, "CIO_API_KEY": API_KEY}
    )
    assert run.code == 0, run.stderr
    assert len(emulator.people()) == 3


def test_base_url_option_overrides_the_file(emulator: Emulator, files: Files) -> None:
    config = files.config(config_dict("https://unused.example"))
    run = run_cli(["--config", config, "--data", files.data(DATA), "--base-url", emulator.url])
    assert run.code == 0, run.stderr
    assert len(emulator.people()) == 3


def test_invalid_records_exit_1_and_are_listed(emulator: Emulator, files: Files) -> None:
    data = [{"id": 1}, [1], {"id": 5.0}, {"name": "x"}, {"id": True}, {"id": 2}]
    run = run_cli(["--config", files.config(config_dict(emulator.url)), "--data", files.data(data)])
    assert run.code == 1
    assert sorted(emulator.people()) == ["1", "2"]
    lines = run.stderr.splitlines()
    assert "cio-sync: record 1: invalid: not a JSON object (got an array)" in lines
    assert any(line.startswith('cio-sync: record 2: invalid: "id" must be a string or an integer') for line in lines)
    assert 'cio-sync: record 3: invalid: no "id" key for the person id' in lines
    assert any(line.startswith("cio-sync: record 4: invalid:") for line in lines)
    assert "6 records: 2 synced, 0 failed, 4 invalid" in run.stderr


def test_failed_records_exit_1_with_status_and_message(emulator: Emulator, files: Files) -> None:
    emulator.add_fault(status=400, person="a/b")
    run = run_cli(["--config", files.config(config_dict(emulator.url)), "--data", files.data(DATA)])
    assert run.code == 1
    assert 'cio-sync: record 1 (id "a/b"): failed: HTTP 400: injected fault' in run.stderr
    assert "3 records: 2 synced, 1 failed, 0 invalid" in run.stderr


def test_the_problem_list_is_a_few_examples_then_the_causes(emulator: Emulator, files: Files) -> None:
    data = [{"id": ""} for _ in range(35)]
    run = run_cli(["--config", files.config(config_dict(emulator.url)), "--data", files.data(data)])
    assert run.code == 1
    assert run.stderr.count(": invalid:") == 5
    assert 'cio-sync: 35 records: "id" is an empty string, first at record 0' in run.stderr.splitlines()


def test_retries_option(emulator: Emulator, files: Files) -> None:
    emulator.add_fault(status=503, times=None, person="1")
    args = ["--config", files.config(config_dict(emulator.url)), "--data", files.data(DATA), "--retries", "0"]
    run = run_cli(args)
    assert run.code == 1
    assert "failed: HTTP 503: injected fault" in run.stderr
    assert people_puts(emulator).count("1") == 1


def test_rejected_credentials_exit_3_before_any_write(emulator: Emulator, files: Files) -> None:
    run = run_cli(["--config", files.config(config_dict(emulator.url, apiKey="nope")), "--data", files.data(DATA)])
    assert run.code == 3
    assert "cio-sync: error: the workspace refused the credentials (HTTP 401)" in run.stderr
    assert people_puts(emulator) == []
    assert "nope" not in run.stderr


def test_a_401_mid_run_exits_3_and_stops(emulator: Emulator, files: Files) -> None:
    emulator.add_fault(status=401, times=None, endpoint="customers")
    data = [{"id": i} for i in range(300)]
    report = files.root / "report.json"
    args = ["--config", files.config(config_dict(emulator.url, parallelism=4)), "--data", files.data(data)]
    run = run_cli([*args, "--report", str(report)])
    assert run.code == 3
    assert "refused the credentials" in run.stderr
    assert len(people_puts(emulator)) <= 8
    assert "not attempted" in run.stderr
    document = json.loads(report.read_text())
    counts = document["counts"]
    assert document["stopped"] == "credentials"
    assert counts["failed"] >= 1 and counts["not_attempted"] >= 290
    assert sum(counts.values()) == document["total"] == 300


def test_an_unreachable_api_exits_4_and_sends_nothing(files: Files) -> None:
    with Emulator() as gone:
        url = gone.url
    args = ["--config", files.config(config_dict(url)), "--data", files.data(DATA), "--retries", "1"]
    run = run_cli(args)
    assert run.code == 4
    assert f"cio-sync: error: cannot reach the Track API at {url}: cannot connect" in run.stderr


def test_quiet_prints_nothing_on_success(emulator: Emulator, files: Files) -> None:
    run = run_cli(["--config", files.config(config_dict(emulator.url)), "--data", files.data(DATA), "-q"])
    assert run.code == 0
    assert run.stdout == run.stderr == ""


def test_quiet_still_reports_problems(emulator: Emulator, files: Files) -> None:
    run = run_cli(["--config", files.config(config_dict(emulator.url)), "--data", files.data([{"id": 1}, {}]), "-q"])
    assert run.code == 1
    assert "record 1: invalid" in run.stderr
    assert "2 records: 1 synced, 0 failed, 1 invalid" in run.stderr


def test_an_empty_array_is_success_and_sends_nothing(emulator: Emulator, files: Files) -> None:
    run = run_cli(["--config", files.config(config_dict(emulator.url)), "--data", files.data([])])
    assert run.code == 0
    assert "0 records: 0 synced" in run.stderr
    assert emulator.requests() == []


def test_a_second_run_changes_nothing(emulator: Emulator, files: Files) -> None:
    args = ["--config", files.config(config_dict(emulator.url)), "--data", files.data(DATA)]
    assert run_cli(args).code == 0
    before = emulator.people()
    assert run_cli(args).code == 0
    assert emulator.people() == before == EXPECTED


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_cleanly_and_a_rerun_completes(
    emulator: Emulator, files: Files, spawn_cli: Spawn, signum: int, code: int
) -> None:
    emulator.latency = 0.02
    data = [{"id": i, "name": f"n{i}"} for i in range(600)]
    args = ["--config", files.config(config_dict(emulator.url, parallelism=4)), "--data", files.data(data)]
    proc = spawn_cli(args)
    wait_until(lambda: len(emulator.people()) >= 40)
    proc.send_signal(signum)
    run = finish(proc)
    text = run.stderr
    assert run.code == code, text
    assert "a re-run with the same files completes the sync" in text
    assert "not attempted" in text
    synced_before = len(emulator.people())
    assert 40 <= synced_before < 600
    assert f"600 records: {synced_before:,} synced, 0 failed, 0 invalid, {600 - synced_before:,} not attempted" in text
    emulator.latency = 0
    rerun = run_cli(args)
    assert rerun.code == 0, rerun.stderr
    assert emulator.people() == {str(i): {"name": f"n{i}"} for i in range(600)}


def test_a_second_sigterm_quits_at_once_and_the_first_is_named(
    emulator: Emulator, files: Files, spawn_cli: Spawn
) -> None:
    # Only the writes hang: the credentials check before them answers at once.
    emulator.add_fault(delay=5, endpoint="customers", times=None)
    report, failed = files.root / "report.json", files.root / "failed.json"
    args = ["--config", files.config(config_dict(emulator.url, parallelism=2)), "--data", files.data(DATA)]
    proc = spawn_cli([*args, "--report", str(report), "--failed", str(failed)])
    wait_until(lambda: emulator.stats()["in_flight"] == 2)
    temporary = sorted(p.name for p in files.root.glob(".*.tmp"))
    assert [name.split(".")[1] for name in temporary] == ["failed", "report"]
    proc.send_signal(signal.SIGTERM)
    assert proc.stderr is not None
    lines = [proc.stderr.readline(), proc.stderr.readline()]
    assert "cio-sync: SIGTERM received: letting requests in flight finish (send it again to quit at once)\n" in lines
    assert not any("Ctrl-C" in line for line in lines)
    proc.send_signal(signal.SIGTERM)
    run = finish(proc)
    assert run.code == 143
    assert run.stderr == ""  # no summary: the requests in flight were not waited for
    assert not report.exists() and not failed.exists()
    assert list(files.root.glob(".*.tmp")) == []  # nor their temporary files


def test_timeout_option_resends_a_slow_answer(emulator: Emulator, files: Files) -> None:
    emulator.add_fault(delay=0.8, person="1")
    args = ["--config", files.config(config_dict(emulator.url)), "--data", files.data(DATA), "--timeout", "0.3"]
    run = run_cli(args)
    assert run.code == 0, run.stderr
    assert "1 resends" in run.stderr
    wait_until(lambda: emulator.stats()["in_flight"] == 0)  # the abandoned first attempt
    assert people_puts(emulator).count("1") == 2


def test_a_rerun_right_after_a_run_that_waited_out_a_retry_after_lands(emulator: Emulator, files: Files) -> None:
    # The first run waits out a Retry-After of 3 s before its last people; the second, started at
    # once, changes one of them. Its writes must be stamped later than the first run's, or the
    # workspace ignores them as older (here the wait is skipped, and the second run must still
    # stamp after every second the first one skipped past).
    emulator.add_fault(status=503, retry_after="3", person="p5")
    config = files.config(config_dict(emulator.url, parallelism=1))
    first = [{"id": f"p{i}", "name": "first"} for i in range(10)]
    assert run_cli(["--config", config, "--data", files.data(first)]).code == 0
    second = run_cli(["--config", config, "--data", files.data([{"id": "p9", "name": "second"}])])
    assert second.code == 0, second.stderr
    assert emulator.people()["p9"] == {"name": "second"}


def test_a_pause_on_one_worker_does_not_cut_a_request_in_flight_on_another(emulator: Emulator, files: Files) -> None:
    # "busy" is refused with Retry-After: 2 while "slow" takes 0.3 s of a 1 s deadline: its answer
    # comes in time, and it is sent once (the pause is skipped here: it must not count against
    # the request in flight meanwhile).
    emulator.add_fault(status=503, retry_after="2", person="busy")
    emulator.add_fault(delay=0.3, person="slow")
    config = files.config(config_dict(emulator.url, parallelism=2))
    data = files.data([{"id": "slow"}, {"id": "busy"}])
    run = run_cli(["--config", config, "--data", data, "--timeout", "1", "--retries", "1"])
    assert run.code == 0, run.stderr
    wait_until(lambda: emulator.stats()["in_flight"] == 0)  # an attempt cut would still be counted
    assert sorted(map(str, people_puts(emulator))) == ["busy", "busy", "slow"]


def test_a_process_started_quick_skips_its_pauses_and_stamps_after_the_runs_around_it(
    emulator: Emulator, files: Files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The model test starts processes between its in-process runs, all on quick clocks. Each run
    # here skips a Retry-After of 30 s; each writes a person the run before it wrote, which the
    # workspace takes only if it is stamped later: after every second skipped before it, in this
    # process or in the other.
    skipped = Skipped(tmp_path / "skipped")
    quicken(monkeypatch.setattr, skipped)
    config = files.config(config_dict(emulator.url, parallelism=1))
    emulator.add_fault(status=503, retry_after="30", person="a", times=1)
    assert run_cli(["--config", config, "--data", files.data([{"id": "a", "name": "first"}])]).code == 0
    emulator.add_fault(status=503, retry_after="30", person="b", times=1)
    command = [*CLI, "--config", config, "--data", files.data([{"id": "a", "name": "second"}, {"id": "b"}])]
    # Far less than the pause: only a process that skips it ends in time.
    started = subprocess.run(command, env=cli_env(child_env(skipped)), capture_output=True, timeout=20)
    assert started.returncode == 0, started.stderr
    skipped.catch_up()
    assert skipped.seconds > 55  # both pauses (each a little under 30 s once the refusal is read)
    assert emulator.people()["a"] == {"name": "second"}
    assert run_cli(["--config", config, "--data", files.data([{"id": "b", "name": "third"}])]).code == 0
    assert emulator.people()["b"] == {"name": "third"}


@pytest.mark.parametrize("endpoint", ["customers", "region"])
def test_a_retry_after_dated_past_any_year_is_backed_off_not_an_internal_error(
    emulator: Emulator, files: Files, endpoint: str
) -> None:
    emulator.add_fault(status=429, retry_after="Mon, 1 Jan 99999999999999999999 00:00:00 GMT", endpoint=endpoint)
    run = run_cli(["--config", files.config(config_dict(emulator.url)), "--data", files.data(DATA)])
    assert run.code == 0, run.stderr
    assert "internal error" not in run.stderr
    assert emulator.people().keys() == EXPECTED.keys()


def test_timeout_option_with_no_resends_fails_the_record(emulator: Emulator, files: Files) -> None:
    emulator.add_fault(delay=0.8, person="1")
    args = ["--config", files.config(config_dict(emulator.url)), "--data", files.data(DATA)]
    run = run_cli([*args, "--timeout", "0.3", "--retries", "0"])
    assert run.code == 1
    assert 'record 0 (id "1"): failed: timed out waiting for an answer' in run.stderr


def test_rate_limit_option_paces_every_worker(
    emulator: Emulator, files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The run on a clock this test steps one turn of --rate-limit 20 (1/20 s) at a time, eight
    # workers waiting side by side: each turn lets one request through, whichever worker asks.
    clock = SteppedClock()
    monkeypatch.setattr(cio_sync.cli.command, "sync", functools.partial(sync, clock=clock))
    data = [{"id": i} for i in range(21)]
    args = ["--config", files.config(config_dict(emulator.url, parallelism=8)), "--data", files.data(data)]
    ended = threading.Event()
    seen: list[tuple[int, int]] = []

    def step() -> None:
        while not ended.is_set():
            # The credentials check, then the writes: the one request each turn lets through.
            wait_until(lambda: emulator.stats()["requests"] >= min(len(seen) + 1, 22) or ended.is_set())
            seen.append((len(seen), emulator.stats()["requests"]))
            if seen[-1][1] >= 22:
                return  # all gone: the run ends without more time
            clock.advance(1 / 20 * 1.0001)  # a hair over a turn: never a rounding error short

    stepper = threading.Thread(target=step)
    stepper.start()
    try:
        run = run_cli([*args, "--rate-limit", "20"])
    finally:
        ended.set()
        stepper.join()
    assert run.code == 0, run.stderr
    assert len(emulator.people()) == 21
    assert len(seen) == 22, "twenty-one turns of the cap go by before the last write"
    assert all(received == turns + 1 for turns, received in seen), seen


def test_json_logs_show_a_stop(emulator: Emulator, files: Files, spawn_cli: Spawn) -> None:
    emulator.latency = 0.02
    data = files.data([{"id": i} for i in range(500)])
    args = ["--config", files.config(config_dict(emulator.url, parallelism=2)), "--data", data, "--log-format", "json"]
    proc = spawn_cli(args)
    wait_until(lambda: len(emulator.people()) >= 10)
    proc.send_signal(signal.SIGTERM)
    run = finish(proc)
    assert run.code == 143
    events = [json.loads(line) for line in run.stderr.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "summary"
    assert {"event": "stopping", "reason": "terminated"}.items() <= events[kinds.index("stopping")].items()
    assert events[-1]["stopped"] == "terminated"
    assert events[-1]["synced"] + events[-1]["not_attempted"] == 500


def test_an_api_that_stops_answering_stops_the_run(emulator: Emulator, files: Files) -> None:
    emulator.add_fault(drop="before", times=None, endpoint="customers")
    data = files.data([{"id": i} for i in range(100)])
    run = run_cli(["--config", files.config(config_dict(emulator.url)), "--data", data, "--retries", "0"])
    assert run.code == 1
    assert "error: the Track API stopped answering; stopped starting requests" in run.stderr
    assert "not attempted" in run.stderr
    # Why first, before the records that all failed the same way.
    lines = run.stderr.splitlines()
    why = next(i for i, line in enumerate(lines) if "the Track API stopped answering" in line)
    assert why < next(i for i, line in enumerate(lines) if ": failed: " in line)
    assert len(people_puts(emulator)) <= 10 + 2 * 4


def test_full_without_state_is_refused(emulator: Emulator, files: Files) -> None:
    args = ["--config", files.config(config_dict(emulator.url)), "--data", files.data(DATA), "--full"]
    run = run_cli(args)
    assert run.code == 2
    assert "cio-sync: error: --full needs --state" in run.stderr
    assert emulator.requests() == []


def test_one_record_is_one_record(emulator: Emulator, files: Files) -> None:
    args = ["--config", files.config(config_dict(emulator.url)), "--data", files.data([{"id": 1}])]
    run = run_cli(args)
    assert run.code == 0
    assert "syncing 1 record from " in run.stderr
    assert "1 record: 1 synced" in run.stderr
    dry = run_cli([*args, "--dry-run"])
    assert "dry run: checking 1 record from " in dry.stderr
    assert "dry run: 1 record: 1 valid, 0 invalid" in dry.stderr


def test_a_quiet_dry_run_still_shows_invalid_records_on_prefixed_lines(emulator: Emulator, files: Files) -> None:
    data = files.data([{"id": 1}, {"id": 1.5}, "x"])
    args = ["--config", files.config(config_dict(emulator.url)), "--data", data, "--dry-run"]
    for extra in ([], ["-q"]):
        run = run_cli([*args, *extra])
        assert run.code == 1
        problems = [line for line in run.stderr.splitlines() if "invalid" in line]
        assert problems[-3:] == [
            'cio-sync: record 1: invalid: "id" must be a string or an integer, got the number 1.5 '
            "(a float id would name another person)",
            "cio-sync: record 2: invalid: not a JSON object (got a string)",
            "cio-sync: dry run: 3 records: 1 valid, 2 invalid; 1 person to write; nothing sent",
        ]
        # Every line is cio-sync's; only a sample request's own lines are indented under it.
        assert all(line.startswith(("cio-sync: ", "  ")) for line in run.stderr.splitlines())
    clean = ["--config", files.config(config_dict(emulator.url)), "--data", files.data([{"id": 1}], "clean.json")]
    quiet = run_cli([*clean, "--dry-run", "-q"])
    assert (quiet.code, quiet.stderr) == (0, "")
    assert emulator.requests() == []


def test_a_json_dry_run_ends_with_a_summary_event(
    emulator: Emulator, files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cio_sync.outputs.console, "JSON_PROGRESS_INTERVAL", 0.0)  # a run's: an event per record
    data = files.data([{"id": 1}, {"id": 1.5}, {"id": 3}])
    args = ["--config", files.config(config_dict(emulator.url)), "--data", data, "--dry-run", "--log-format", "json"]
    run = run_cli(args)
    assert run.code == 1
    events = [json.loads(line) for line in run.stderr.splitlines()]
    assert [e["event"] for e in events if e["event"] == "record"] == ["record"]
    # Only invalid records reach the console in a dry run: no count of them says how far it is.
    assert [e for e in events if e["event"] == "progress"] == []
    summary = events[-1]
    assert summary["event"] == "summary"
    assert {k: summary[k] for k in ("dry_run", "exit_code", "total", "valid", "invalid")} == {
        "dry_run": True,
        "exit_code": 1,
        "total": 3,
        "valid": 2,
        "invalid": 1,
    }
    assert emulator.requests() == []


def test_a_bad_base_url_option_is_blamed_on_the_option(emulator: Emulator, files: Files) -> None:
    config = files.config(config_dict(emulator.url))
    run = run_cli(["--config", config, "--data", files.data(DATA), "--base-url", "ftp://example.com"])
    assert run.code == 2
    assert (
        run.stderr
        == "cio-sync: error: --base-url must be an absolute http:// or https:// URL, got 'ftp://example.com'\n"
    )
    assert emulator.requests() == []


def test_a_bug_is_one_line_exit_70_with_the_report_and_no_stale_failed_file(
    emulator: Emulator, files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(cio_sync.cli.command, "sync", broken)
    failed, report = files.root / "failed.json", files.root / "report.json"
    failed.write_text('[{"id": "left by an earlier run"}]')
    args = ["--config", files.config(config_dict(emulator.url)), "--data", files.data(DATA)]
    run = run_cli([*args, "--failed", str(failed), "--report", str(report)])
    assert run.code == 70
    assert run.stderr.splitlines()[-1] == "cio-sync: error: internal error: RuntimeError: a bug (please report this)"
    assert not failed.exists()
    document = json.loads(report.read_text())
    assert (document["exit_code"], document["error"]) == (70, "internal error: RuntimeError: a bug")


def test_help_names_the_other_commands() -> None:
    run = run_cli(["--help"])
    assert "cio-sync emulator serve" in run.stdout
    assert "cio-sync emulator show URL" in run.stdout
    assert "cio-sync emulator fault URL SPEC..." in run.stdout


def handles(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler of its own for ``signum`` (its SigCgt mask, Linux)."""
    with open(f"/proc/{pid}/status") as status:
        mask = next(line.split()[1] for line in status if line.startswith("SigCgt:"))
    return bool(int(mask, 16) >> (signum - 1) & 1)


def started_or_ended(proc: subprocess.Popen[str]) -> bool:
    """Whether the command's first lines have run (SIGTERM is its own to handle), or it ended."""
    return proc.poll() is not None or handles(proc.pid, signal.SIGTERM)


@pytest.mark.parametrize(
    ("signum", "code", "what"), [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")]
)
def test_a_signal_in_the_first_moments_ends_with_its_code_and_no_traceback(
    files: Files, spawn_cli: Spawn, signum: int, code: int, what: str
) -> None:
    """From the command's first line on: while it imports its libraries (a few tenths of a second),
    parses its options, reads its configuration, and waits on standard input for the data."""
    args = ["--config", files.config(config_dict("http://127.0.0.1:9")), "--data", "-"]
    for moment in range(10):
        proc = spawn_cli(args, stdin=subprocess.PIPE)
        # SIGTERM is handled only once the command's own first lines have run: Python's own startup
        # (before any of the program runs) cannot be reached by any handler the program installs.
        wait_until(functools.partial(started_or_ended, proc))
        time.sleep(moment * 0.04)  # the moment under test, not a wait for anything
        proc.send_signal(signum)
        run = finish(proc)
        assert run.code == code, (moment, run.stderr)
        assert run.stderr in (f"cio-sync: {what}\n", f"cio-sync: error: {what} before anything was sent\n"), moment


def test_the_entry_point_installs_its_handlers_before_any_heavy_import() -> None:
    # The time before the handlers are in place is the window in which a signal would end in a
    # traceback: it must not include the libraries that take tenths of a second to import.
    probe = (
        "import sys, signal; from cio_sync.cli import main; "
        "print(sorted(m for m in ('typer', 'click', 'rich', 'requests', 'urllib3', 'jsonschema') "
        "if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert (loaded.returncode, loaded.stdout) == (0, "[]\n"), loaded.stderr

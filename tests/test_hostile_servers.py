"""Servers that answer slowly, endlessly or hugely: every request ends within its deadline, memory
stays bounded, and the run ends with a documented exit code."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cio_sync import HttpSettings, RecordOutcome, sync
from cio_sync.emulator import Emulator

from .conftest import CLI, Files, cli_env, config_dict, make_config, run_cli
from .hostile import Behaviour, answer, drip_body, drip_status_line, endless_chunked, hang_up, hostile, huge_body

DATA = [{"id": 1, "name": "Ada"}]


TIMED_OUT = (
    'record 0 (id "1"): failed: timed out waiting for an answer (no complete answer within 0.5 s) '
    "(it may have been applied)"
)


@pytest.mark.parametrize(
    ("behaviour", "attempts", "message"),
    [
        # Cut while reading the status line: urllib3 resends, as after any read timeout.
        (drip_status_line(0.05), 2, TIMED_OUT),
        # Cut while reading the body, after urllib3 handed the answer over: not resent.
        (drip_body(0.05), 1, TIMED_OUT),
        # A 500 whose body never ends: drained up to the deadline before the resend, then read
        # up to the cap: the record fails with the status.
        (endless_chunked(), 2, 'record 0 (id "1"): failed: HTTP 500 after 2 attempts: xxxx'),
    ],
    ids=["status line one byte at a time", "body one byte at a time", "endless chunked body"],
)
def test_an_answer_that_never_completes_ends_within_its_deadline(
    files: Files, behaviour: Behaviour, attempts: int, message: str
) -> None:
    with hostile(behaviour) as server:
        config = files.config(config_dict(server.url))
        run = run_cli(["--config", config, "--data", files.data(DATA), "--timeout", "0.5", "--retries", "1"])
        sent = [r for r in server.requests() if r.startswith(b"PUT ")]
    assert run.code == 1, run.stderr
    assert message in run.stderr
    assert len(sent) == attempts


def test_the_credentials_check_has_the_same_deadline(files: Files) -> None:
    with hostile(drip_status_line(0.05), honest_check=False) as server:
        config = files.config(config_dict(server.url))
        run = run_cli(["--config", config, "--data", files.data(DATA), "--timeout", "0.5", "--retries", "0"])
    assert run.code == 4, run.stderr
    assert "cannot reach the Track API" in run.stderr
    assert "timed out waiting for an answer" in run.stderr
    assert "may have been applied" not in run.stderr  # a check writes nothing


def test_a_huge_error_body_is_not_read_whole(files: Files) -> None:
    with hostile(huge_body(300_000_000)) as server:
        config = files.config(config_dict(server.url))
        out = files.root / "peak"
        # Measured from a small launcher: the child's own peak, none of this test process's.
        args = ["--config", config, "--data", files.data(DATA), "--retries", "0"]
        command = [sys.executable, "-m", "tests.peak", str(out), *CLI, *args]
        run = subprocess.run(command, capture_output=True, text=True, env=cli_env())
    assert run.returncode == 1, run.stderr
    assert 'record 0 (id "1"): failed: HTTP 400: yyyy' in run.stderr
    # ru_maxrss is in kilobytes on Linux: the 300 MB answer never came near memory.
    assert json.loads(out.read_text())["max_rss_kb"] < 150_000


def test_a_workspace_that_refuses_everything_stops_the_run_after_give_up_after(files: Files) -> None:
    refuse = answer(b"429 Too Many Requests", b'{"meta": {"error": "slow down"}}', b"Retry-After: 0.05\r\n")
    report = files.root / "report.json"
    data = [{"id": i} for i in range(30)]
    with hostile(refuse) as server:
        config = files.config(config_dict(server.url, parallelism=2))
        args = ["--config", config, "--data", files.data(data), "--retries", "20", "--give-up-after", "1"]
        run = run_cli([*args, "--report", str(report)])
    assert run.code == 1, run.stderr
    assert "error: no request made progress for --give-up-after seconds" in run.stderr
    document = json.loads(report.read_text())
    assert document["stopped"] == "no_progress"
    assert document["counts"]["synced"] == 0
    assert document["counts"]["failed"] + document["counts"]["not_attempted"] == 30


def test_a_record_is_not_resent_past_its_resend_window(files: Files) -> None:
    busy = answer(b"503 Service Unavailable", b"{}", b"Retry-After: 0.05\r\n")
    settings = HttpSettings(retries=20, backoff_factor=0.0, resend_window=0.3)
    outcomes: list[RecordOutcome] = []
    with hostile(busy) as server:
        result = sync(make_config(server.url), [{"id": 1}], http=settings, on_outcome=outcomes.append)
        attempts = len([r for r in server.requests() if r.startswith(b"PUT ")])
    assert result.failed == 1
    assert 2 <= attempts < 21
    assert outcomes[0].reason == f"HTTP 503 after {attempts} attempts: {{}}"


def test_answers_requests_and_resends_are_counted_as_they_happen(emulator: Emulator, files: Files) -> None:
    report = files.root / "report.json"
    data = files.data([{"id": i, "name": "x"} for i in range(50)])
    config = files.config(config_dict(emulator.url, parallelism=1, transport="batch"))
    run = run_cli(["--config", config, "--data", data, "--report", str(report)])
    assert run.code == 0, run.stderr
    document = json.loads(report.read_text())
    # The credentials check and one batch: two answers, not one per record.
    assert (document["http_statuses"], document["requests"], document["retries"]) == ({"200": 2}, 2, 0)
    assert document["counts"]["synced"] == 50


def test_a_request_sent_once_and_never_answered_counts_no_resend(files: Files) -> None:
    report = files.root / "report.json"
    with hostile(hang_up()) as server:
        config = files.config(config_dict(server.url))
        run = run_cli(["--config", config, "--data", files.data(DATA), "--retries", "0", "--report", str(report)])
    assert run.code == 1, run.stderr
    document = json.loads(report.read_text())
    assert (document["http_statuses"], document["requests"], document["retries"]) == ({"200": 1}, 2, 0)

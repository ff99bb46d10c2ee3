"""Servers that answer slowly, endlessly or hugely: every request ends within its deadline, memory
stays bounded, and the run ends with a documented exit code."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
from typing import Any
from urllib.parse import quote

import pytest

import cio_sync.cli.command
from cio_sync import HttpSettings, RecordOutcome, Stop, SyncResult, sync
from cio_sync.emulator import Emulator
from cio_sync.outcome import NOT_SENT, Delivery, Status
from cio_sync.redact import MASK
from cio_sync.transport.client import TrackClient
from cio_sync.transport.pacing import Gate

from .conftest import (
    API_KEY,
    CLI,
    FAST,
    SITE_ID,
    Files,
    Spawn,
    assert_no_secret,
    cli_env,
    config_dict,
    make_config,
    run_cli,
    wait_until,
)
from .fakeclock import FakeClock
from .hostile import (
    REGION_ANSWER,
    Behaviour,
    Unanswered,
    answer,
    drip_body,
    drip_status_line,
    echo_credentials,
    endless_chunked,
    hang_up,
    hostile,
    huge_body,
    in_turn,
    interim,
    read_request,
    unanswered,
)
from .quick import quick_sync

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


def test_a_workspace_that_refuses_everything_stops_the_run_after_give_up_after(
    files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    refuse = answer(b"429 Too Many Requests", b'{"meta": {"error": "slow down"}}', b"Retry-After: 0.05\r\n")
    report = files.root / "report.json"
    data = [{"id": i} for i in range(30)]
    clocks: list[FakeClock] = []

    def on_a_fake_clock(*args: Any, stop: Stop, **kwargs: Any) -> SyncResult:
        # The run's pauses pass fake time (a wait on its stop); an answer is awaited as it comes.
        clocks.append(FakeClock(only_on=stop.event))
        return sync(*args, stop=stop, clock=clocks[-1], **kwargs)

    monkeypatch.setattr(cio_sync.cli.command, "sync", on_a_fake_clock)
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
    # The second of --give-up-after went by on the run's clock, in its pauses of 0.05 s.
    (clock,) = clocks
    assert 1.0 < clock.waited < 2.0


def test_a_record_is_not_resent_past_its_resend_window(files: Files) -> None:
    busy = answer(b"503 Service Unavailable", b"{}", b"Retry-After: 0.05\r\n")
    settings = HttpSettings(retries=20, backoff_factor=0.0, resend_window=0.3)
    outcomes: list[RecordOutcome] = []
    with hostile(busy) as server:
        result = quick_sync(make_config(server.url), [{"id": 1}], http=settings, on_outcome=outcomes.append)
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


def track(url: str, settings: HttpSettings = FAST, stop: threading.Event | None = None) -> TrackClient:
    return TrackClient(make_config(url), settings, Gate(stop=stop), 1, stop=stop)


EARLY_HINTS = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n"
NO_RESENDS = HttpSettings(retries=0, backoff_factor=0)


def test_an_early_hint_is_not_the_answer_the_status_after_it_is() -> None:
    # 103 then a 500: the 500 is the answer to this request, not to the next one.
    failing = interim(EARLY_HINTS, answer(b"500 Internal Server Error", b'{"meta": {"error": "boom"}}'))
    with hostile(in_turn(failing, answer())) as server:
        client = track(server.url, NO_RESENDS)
        first = client.put_person("p1", b"{}")
        second = client.put_person("p2", b"{}")
        traffic = client.traffic
        client.close()
    assert first == Delivery(Status.FAILED, 500, "HTTP 500: boom", 0)
    assert second == Delivery(Status.SYNCED, 200, None, 0)
    assert dict(traffic.answers) == {500: 1, 200: 1}


@pytest.mark.parametrize(
    "preludes",
    [
        EARLY_HINTS,
        b"HTTP/1.1 102 Processing\r\n\r\n" + EARLY_HINTS + EARLY_HINTS,
        b"HTTP/1.1 100 Continue\r\n\r\n" + EARLY_HINTS + b"HTTP/1.1 199 Whatever\r\nX-A: 1\r\nX-B: 2\r\n\r\n",
        EARLY_HINTS * 20,
        EARLY_HINTS * 21,
    ],
    ids=["one 103", "102 and two 103", "100, 103 and 199", "twenty 103", "twenty-one 103"],
)
def test_interim_answers_are_skipped_whatever_their_number(preludes: bytes) -> None:
    with hostile(interim(preludes, answer(b"200 OK", b"{}", b"X-Final: yes\r\n"))) as server:
        client = track(server.url, NO_RESENDS)
        deliveries = [client.put_person(f"p{i}", b"{}") for i in range(3)]
        client.close()
    assert deliveries == [Delivery(Status.SYNCED, 200, None, 0)] * 3


def test_a_batch_answer_after_an_early_hint_is_read_as_the_batchs() -> None:
    partial = answer(b"207 Multi-Status", b'{"errors": [{"batch_index": 1, "reason": "invalid", "field": "email"}]}')
    with hostile(in_turn(interim(EARLY_HINTS, partial), answer())) as server:
        client = track(server.url, NO_RESENDS)
        batch = client.post_batch(b'{"batch": []}', 2)
        after = client.post_batch(b'{"batch": []}', 2)
        client.close()
    assert [d.status for d in batch] == [Status.SYNCED, Status.FAILED]
    assert batch[1].reason == "HTTP 207: invalid: email"
    assert after == [Delivery(Status.SYNCED, 200, None, 0)] * 2


def test_switching_protocols_is_no_answer_to_a_write() -> None:
    switch = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"

    def upgrade(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
        conn.sendall(switch + b"\x81\x05hello")

    with hostile(upgrade) as server:
        client = track(server.url, NO_RESENDS)
        delivery = client.put_person("p1", b"{}")
        client.close()
    assert delivery.status is Status.FAILED
    assert delivery.http_status is None
    assert delivery.reason == "the server switched protocols (HTTP 101) instead of answering (it may have been applied)"


@pytest.mark.parametrize(
    "template",
    [
        b'{"meta": {"error": "key %s is not valid for site ' + SITE_ID.encode() + b'"}}',
        b"<html>rejected: %s / " + API_KEY.encode() + b"</html>",
        b'{"errors": [{"message": "' + quote(API_KEY).encode() + b' %s"}]}',
        # Quoted across the 300th character, where the message is cut short.
        b"rejected: " + b"x" * 250 + b" %s",
        b'{"detail": "' + b"x" * 250 + b' %s"}',
        # Behind a long run of spaces, which squeezed to one brings it back to the cut.
        b"rejected:" + b" " * 8180 + b"%s",
        b'{"errors": [{"message": "' + b" " * 8180 + b'%s"}]}',
    ],
    ids=[
        "json meta error",
        "plain text",
        "percent-encoded key",
        "plain text at the cut",
        "json at the cut",
        "plain text behind spaces",
        "json behind spaces",
    ],
)
def test_credentials_quoted_by_the_server_are_masked(template: bytes) -> None:
    with hostile(echo_credentials(template=template)) as server:
        client = track(server.url, NO_RESENDS)
        delivery = client.put_person("p1", b"{}")
        client.close()
    assert delivery.status is Status.FAILED and delivery.http_status == 400
    assert delivery.reason is not None and MASK in delivery.reason
    assert_no_secret(delivery.reason)
    assert SITE_ID not in delivery.reason


def test_a_batch_items_error_is_quoted_in_300_characters_at_most() -> None:
    body = b'{"errors": [{"batch_index": 0, "reason": "' + b"y" * 1_000_000 + b'"}]}'
    with hostile(answer(b"207 Multi-Status", body)) as server:
        client = track(server.url, NO_RESENDS)
        first, second = client.post_batch(b'{"batch": []}', 2)
        client.close()
    assert first.status is Status.FAILED and first.reason is not None and len(first.reason) <= 320
    assert second.status is Status.SYNCED


def test_credentials_quoted_in_batch_item_errors_are_masked() -> None:
    body = b'{"errors": [{"batch_index": 0, "reason": "%s", "message": "' + API_KEY.encode() + b'"}]}'
    with hostile(echo_credentials(b"207 Multi-Status", body)) as server:
        client = track(server.url, NO_RESENDS)
        first, second = client.post_batch(b'{"batch": []}', 2)
        client.close()
    assert (first.status, second.status) == (Status.FAILED, Status.SYNCED)
    assert first.reason is not None and MASK in first.reason
    assert_no_secret(first.reason)


def test_a_stop_cuts_a_connection_that_is_still_being_opened() -> None:
    stop = threading.Event()
    # A connect timeout far longer than the test may take: only the stop can end this connect.
    settings = HttpSettings(connect_timeout=60, retries=0)
    deliveries: list[Delivery] = []
    with unanswered() as server:
        client = track(server.url, settings, stop)
        sender = threading.Thread(target=lambda: deliveries.append(client.put_person("p1", b"{}")))
        sender.start()
        wait_until(server.connecting)
        stop.set()
        sender.join(timeout=10)
        assert not sender.is_alive(), "the connect outlived the stop"
        client.close()
    # Nothing was sent: the person was not attempted, and a next run sends it.
    assert deliveries == [NOT_SENT]
    assert client.traffic.sent == 0


def test_sigterm_while_connecting_exits_within_the_stop_grace(files: Files, spawn_cli: Spawn) -> None:
    server = Unanswered()
    try:
        config = files.config(config_dict(server.url, parallelism=1))
        proc = spawn_cli(["--config", config, "--data", files.data(DATA)], stdout=subprocess.DEVNULL)
        # The credentials check is answered, on a connection closed after it; then the backlog
        # is full, and the run's first PUT waits for a handshake that never completes.
        server.listener.settimeout(30)
        conn, _ = server.listener.accept()
        with conn:
            request, _ = read_request(conn, b"")
            assert request is not None and request.startswith(b"GET /api/v1/accounts/region")
            server.fill()
            conn.sendall(REGION_ANSWER.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1))
        wait_until(server.connecting)
        proc.send_signal(signal.SIGTERM)
        # Before the stop cut connects, this took the whole 10 s connect timeout.
        code = proc.wait(timeout=6)
    finally:
        server.close()
    assert code == 143
    assert proc.stderr is not None
    assert_no_secret(proc.stderr.read())

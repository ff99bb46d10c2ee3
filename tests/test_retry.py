"""The seams between cio-sync and urllib3, requests and http.client: each hook the transport
relies on, checked against the versions installed (a change in their internals fails here first).

urllib3's Retry: PacedRetry overrides ``new``, ``increment``, ``sleep`` and ``get_retry_after``
(all public). Private hooks, each also named in a comment beside its use:
``http.client.HTTPResponse._read_status`` (interim answers) and
``urllib3.connection.HTTPConnection._new_conn`` (a stop cuts a connect). Public but undocumented:
``http.client.HTTPConnection.response_class`` and ``PoolManager.pool_classes_by_scheme``.
"""

from __future__ import annotations

import base64
import http.client
import io
import threading

import pytest
import urllib3
from urllib3.response import HTTPResponse
from urllib3.util.retry import Retry

from cio_sync.emulator import Emulator
from cio_sync.outcome import Delivery, Status
from cio_sync.transport.client import HttpSettings, TrackClient, _LeanAdapter
from cio_sync.transport.deadline import (
    ConnectCut,
    FinalResponse,
    SwitchedProtocols,
    Watchdog,
    WatchedHTTPConnection,
    WatchedHTTPConnectionPool,
    WatchedHTTPSConnectionPool,
    attempt,
)
from cio_sync.transport.pacing import Cancelled, Gate
from cio_sync.transport.retry import PacedRetry, backoff

from .conftest import API_KEY, SITE_ID, make_config, wait_until
from .fakeclock import FakeClock
from .hostile import answer as hostile_answer
from .hostile import drip_body, hostile, interim, unanswered


def answer(status: int, retry_after: str | None = None) -> HTTPResponse:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return HTTPResponse(body=b"", headers=headers, status=status, preload_content=False)


def paced(gate: Gate, status: int = 2, rate_limited: int = 0, retry_after_cap: float = 300.0) -> PacedRetry:
    return PacedRetry(
        total=None,
        status=status,
        status_forcelist={429, 500},
        backoff_factor=0,
        gate=gate,
        rate_limited=rate_limited,
        retry_after_cap=retry_after_cap,
    )


def test_increment_carries_the_gate_and_budgets_into_the_next_retry() -> None:
    gate = Gate()
    retry = paced(gate, rate_limited=3, retry_after_cap=7.5)
    following = retry.increment("PUT", "/x", response=answer(500))
    assert isinstance(following, PacedRetry)
    assert (following.gate, following.rate_limited, following.retry_after_cap) == (gate, 3, 7.5)
    assert following.status == 1
    assert len(following.history) == 1


def test_a_429_spends_its_own_budget_first() -> None:
    retry = paced(Gate(), rate_limited=1)
    spared = retry.increment("PUT", "/x", response=answer(429))
    assert (spared.status, spared.rate_limited) == (2, 0)
    counted = spared.increment("PUT", "/x", response=answer(429))
    assert (counted.status, counted.rate_limited) == (1, 0)


def test_a_429_pauses_everyone_and_a_500_only_its_own_request() -> None:
    shared = Gate()
    shared.succeeded()  # a 429 after an accepted request is news about the rate
    paced(shared).sleep(answer(429, retry_after="0"))
    assert shared.rate is not None  # throttled: the gate now paces every worker
    alone = Gate()
    paced(alone).sleep(answer(500))
    assert alone.rate is None


# A date of a year beyond any date's (the first overflows a C long, the second Python's dates).
HUGE_YEARS = ["Mon, 1 Jan 99999999999999999999 00:00:00 GMT", "Fri, 31 Dec 99999 23:59:59 GMT"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0.25", 0.25), ("9999", 1.5), ("soon", None), ("-1", None), *((y, None) for y in HUGE_YEARS)],
)
def test_retry_after_is_read_leniently_and_capped(value: str, expected: float | None) -> None:
    assert paced(Gate(), retry_after_cap=1.5).get_retry_after(answer(429, retry_after=value)) == expected


def test_backoff_grows_and_stays_under_its_cap() -> None:
    assert backoff(0, 30, 3) == 0.0
    assert 0.5 <= backoff(1.0, 30, 1) <= 1.0
    assert 2.0 <= backoff(1.0, 30, 3) <= 4.0
    assert 15.0 <= backoff(1.0, 30, 10) <= 30.0


def test_urllib3_drives_the_overrides_over_a_real_socket() -> None:
    with Emulator(SITE_ID, API_KEY) as emulator:
        emulator.add_fault(status=429, retry_after="0", times=2)
        gate = Gate()
        retry = paced(gate, status=0, rate_limited=2)
        token = base64.b64encode(f"{SITE_ID}:{API_KEY}".encode()).decode()
        with urllib3.PoolManager(retries=retry) as pool:
            response = pool.request(
                "PUT",
                emulator.url + "/api/v1/customers/p1",
                body=b'{"name": "Ada"}',
                headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
            )
        assert response.status == 200  # two 429s resent on their own budget, with no status budget at all
        assert [r.status for r in emulator.requests()] == [429, 429, 200]
        assert response.retries is not None and isinstance(response.retries, PacedRetry)
        assert response.retries.gate is gate
        assert gate.resends == 2  # both resends waited their turn at the gate


def test_status_is_the_budget_increment_spends_on_a_status_answer() -> None:
    # PacedRetry spares a 429 by handing increment a status budget one higher: that holds while
    # increment spends exactly one of ``status`` per answer in the forcelist.
    retry = Retry(total=None, status=3, status_forcelist={500})
    assert retry.increment("PUT", "/x", response=answer(500)).status == 2


def test_a_429_pause_is_waited_on_the_gates_clock() -> None:
    clock = FakeClock()
    gate = Gate(clock=clock)
    paced(gate).sleep(answer(429, retry_after="120"))
    assert clock.waited == 120
    assert gate.resends == 1


def test_no_resend_starts_after_the_resend_window_by_the_clock() -> None:
    # Each 503 asks for 10 s: resends at 10 and 20 s after the first failure, none at 30 s.
    clock = FakeClock()
    busy = hostile_answer(b"503 Service Unavailable", b"{}", b"Retry-After: 10\r\n")
    settings = HttpSettings(retries=20, backoff_factor=0.0, resend_window=25)
    with hostile(busy) as server:
        client = TrackClient(make_config(server.url), settings, Gate(clock=clock), 1, clock=clock)
        delivery = client.put_person("p1", b"{}")
        client.close()
        attempts = len([r for r in server.requests() if r.startswith(b"PUT ")])
    assert attempts == 4
    assert delivery == Delivery(Status.FAILED, 503, "HTTP 503 after 4 attempts: {}", 3)
    assert clock.waited == 30


def test_an_attempt_is_cut_when_the_clock_passes_its_deadline() -> None:
    clock = FakeClock()
    settings = HttpSettings(read_timeout=30, retries=0)
    deliveries: list[Delivery] = []
    with hostile(drip_body(0.05)) as server:
        client = TrackClient(make_config(server.url), settings, Gate(clock=clock), 1, clock=clock)
        sender = threading.Thread(target=lambda: deliveries.append(client.put_person("p1", b"{}")))
        sender.start()
        wait_until(lambda: any(r.startswith(b"PUT ") for r in server.requests()))
        clock.advance(31)
        sender.join(timeout=10)
        assert not sender.is_alive()
        client.close()
    (delivery,) = deliveries
    assert delivery.reason == (
        "timed out waiting for an answer (no complete answer within 30 s) (it may have been applied)"
    )


class _Canned:
    """What http.client reads an answer from: a socket whose stream is ``data``."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def makefile(self, mode: str) -> io.BytesIO:
        return io.BytesIO(self.data)


def test_read_status_is_the_hook_that_skips_interim_answers() -> None:
    # Private: http.client reads each status line through HTTPResponse._read_status, and begin()
    # skips a 100's headers. FinalResponse relies on both.
    assert callable(getattr(http.client.HTTPResponse, "_read_status", None))
    stream = (
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
        b"HTTP/1.1 102 Processing\r\n\r\n"
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\nX-Final: yes\r\n\r\n{}"
    )
    response = FinalResponse(_Canned(stream), method="PUT")  # type: ignore[arg-type]  # a socket's makefile is all it uses
    response.begin()
    assert (response.status, response.getheader("X-Final"), response.getheader("Link")) == (404, "yes", None)
    assert response.read() == b"{}"
    switched = FinalResponse(_Canned(b"HTTP/1.1 101 Switching Protocols\r\n\r\n"), method="PUT")  # type: ignore[arg-type]  # as above
    with pytest.raises(SwitchedProtocols):
        switched.begin()


def test_response_class_is_what_the_connections_build_answers_from() -> None:
    # Public but undocumented: http.client builds its answer from the connection's class attribute.
    early = interim(b"HTTP/1.1 103 Early Hints\r\n\r\n", hostile_answer(b"200 OK", b"{}"))
    with hostile(early) as server:
        connection = WatchedHTTPConnection("127.0.0.1", server.port, timeout=10)
        connection.request("PUT", "/api/v1/customers/p1", body=b"{}")
        response = connection.getresponse()
        connection.close()
    assert response.status == 200


def test_new_conn_is_the_hook_a_stop_cuts_a_connect_through() -> None:
    # Private: urllib3's HTTPConnection.connect opens its socket through _new_conn.
    stop = threading.Event()
    stop.set()
    watchdog = Watchdog(30, stop)
    raised: list[BaseException] = []

    def connect(port: int) -> None:
        with attempt(watchdog):
            try:
                WatchedHTTPConnection("127.0.0.1", port, timeout=60).connect()
            except Cancelled as e:
                raised.append(e)

    with unanswered() as server:
        connecting = threading.Thread(target=connect, args=(server.port,))
        connecting.start()
        connecting.join(timeout=10)
        assert not connecting.is_alive(), "the connect was not cut"
    watchdog.close()
    assert len(raised) == 1 and isinstance(raised[0], ConnectCut)


def test_pool_classes_by_scheme_is_where_the_pool_manager_takes_its_pools_from() -> None:
    adapter = _LeanAdapter()
    assert isinstance(adapter.poolmanager.connection_from_url("http://127.0.0.1:9"), WatchedHTTPConnectionPool)
    assert isinstance(adapter.poolmanager.connection_from_url("https://127.0.0.1:9"), WatchedHTTPSConnectionPool)
    proxied = adapter.proxy_manager_for("http://127.0.0.1:8")
    assert isinstance(proxied.connection_from_url("https://example.test"), WatchedHTTPSConnectionPool)
    adapter.close()

"""The HTTP client against a real server on loopback: retries, Retry-After, classification."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from requests.adapters import HTTPAdapter

from cio_sync import __version__
from cio_sync.emulator import Emulator
from cio_sync.errors import ApiUnreachable, CredentialsRejected
from cio_sync.input.mapping import path_segment
from cio_sync.outcome import Delivery, Status, StopReason
from cio_sync.transport.client import HttpSettings, TrackClient, _LeanAdapter, _prepared
from cio_sync.transport.pacing import Gate
from cio_sync.transport.retry import parse_retry_after

from .conftest import API_KEY, FAST, SITE_ID, make_config
from .fakeclock import FakeClock


@pytest.fixture
def client(emulator: Emulator) -> Iterator[TrackClient]:
    track = TrackClient(make_config(emulator.url), FAST, Gate(), pool_size=4)
    yield track
    track.close()


def put(client: TrackClient, person_id: str = "p1", body: object = None) -> Delivery:
    return client.put_person(person_id, json.dumps(body or {"name": "Ada"}).encode())


def test_a_put_lands_with_auth_user_agent_and_json(emulator: Emulator, client: TrackClient) -> None:
    delivery = put(client)
    assert delivery == Delivery(Status.SYNCED, 200, None, 0)
    assert emulator.people() == {"p1": {"name": "Ada"}}
    (request,) = emulator.requests()
    assert request.method == "PUT"
    assert request.target == "/api/v1/customers/p1"
    expected = "Basic " + base64.b64encode(f"{SITE_ID}:{API_KEY}".encode()).decode()
    assert request.authorization == expected


def test_headers_are_the_ones_we_promise(emulator: Emulator) -> None:
    import http.server
    import threading

    seen: dict[str, str] = {}

    class Capture(http.server.BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            seen.update(self.headers.items())
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Capture)
    thread = threading.Thread(target=server.handle_request)
    thread.start()
    track = TrackClient(make_config(f"http://127.0.0.1:{server.server_address[1]}"), FAST, Gate(), 1)
    assert put(track).status is Status.SYNCED
    thread.join()
    server.server_close()
    assert seen["User-Agent"] == f"cio-sync/{__version__}"
    assert seen["Content-Type"] == "application/json"
    assert seen["Content-Length"] == str(len(b'{"name": "Ada"}'))


def test_a_5xx_is_resent_until_it_succeeds(emulator: Emulator, client: TrackClient) -> None:
    emulator.add_fault(status=500, times=2)
    delivery = put(client)
    assert delivery.status is Status.SYNCED
    assert delivery.retries == 2
    assert [r.status for r in emulator.requests()] == [500, 500, 200]


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_statuses_are_resent(emulator: Emulator, client: TrackClient, status: int) -> None:
    emulator.add_fault(status=status)
    assert put(client).status is Status.SYNCED
    assert [r.status for r in emulator.requests()] == [status, 200]


def test_a_dropped_connection_is_resent(emulator: Emulator, client: TrackClient) -> None:
    emulator.add_fault(drop="before")
    delivery = put(client)
    assert delivery.status is Status.SYNCED
    assert emulator.people() == {"p1": {"name": "Ada"}}
    assert len(emulator.requests()) == 2


def test_a_lost_answer_is_resent_and_the_result_is_the_same(emulator: Emulator, client: TrackClient) -> None:
    emulator.add_fault(drop="after")
    assert put(client).status is Status.SYNCED
    assert emulator.people() == {"p1": {"name": "Ada"}}
    assert emulator.writes("p1") == 2


def test_a_read_timeout_is_resent(emulator: Emulator) -> None:
    settings = HttpSettings(connect_timeout=1, read_timeout=0.3, retries=2, backoff_factor=0)
    track = TrackClient(make_config(emulator.url), settings, Gate(), 1)
    emulator.add_fault(delay=1.0)
    delivery = put(track)
    track.close()
    assert delivery.status is Status.SYNCED
    assert delivery.retries == 1


def test_429_waits_for_retry_after(emulator: Emulator) -> None:
    # The wait is the clock's: a fake one runs it at once, and says how long it was.
    clock = FakeClock()
    track = TrackClient(make_config(emulator.url), FAST, Gate(clock=clock), 1, clock=clock)
    emulator.add_fault(status=429, retry_after="30")
    delivery = put(track)
    track.close()
    assert delivery.status is Status.SYNCED
    assert [r.status for r in emulator.requests()] == [429, 200]
    assert clock.waited == 30


@pytest.mark.parametrize("value", ["soon", "-3", "0.05", "NaN", "inf", "", "Wed, 99 Foo 2099", "1e999"])
def test_a_malformed_retry_after_never_fails_the_request(emulator: Emulator, client: TrackClient, value: str) -> None:
    emulator.add_fault(status=429, retry_after=value)
    assert put(client).status is Status.SYNCED
    assert [r.status for r in emulator.requests()] == [429, 200]


def test_a_retry_after_date_is_honoured(emulator: Emulator) -> None:
    # An HTTP date is read against the clock's wall time: 90 s after the fake clock's now.
    clock = FakeClock()
    track = TrackClient(make_config(emulator.url), FAST, Gate(clock=clock), 1, clock=clock)
    emulator.add_fault(status=503, retry_after=formatdate(clock.wall() + 90, usegmt=True))
    delivery = put(track)
    track.close()
    assert delivery.status is Status.SYNCED
    assert [r.status for r in emulator.requests()] == [503, 200]
    assert clock.waited == 90


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("3", 3.0), (" 7 ", 7.0), ("1.5", 1.5), ("0", 0.0), ("9999", 120.0), ("-1", None), ("x", None), ("nan", None)],
)
def test_parse_retry_after(value: str, seconds: float | None) -> None:
    assert parse_retry_after(value, cap=120) == seconds


def test_parse_retry_after_dates() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after(formatdate(now + 30, usegmt=True), cap=120, now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after(formatdate(now - 30, usegmt=True), cap=120, now=now) == 0.0


@pytest.mark.parametrize("status", [400, 404, 413, 422])
def test_permanent_errors_are_not_resent(emulator: Emulator, client: TrackClient, status: int) -> None:
    emulator.add_fault(status=status, retry_after="1")
    delivery = put(client)
    assert delivery.status is Status.FAILED
    assert delivery.http_status == status
    assert delivery.reason == f"HTTP {status}: injected fault"
    assert len(emulator.requests()) == 1


def test_the_workspace_message_is_reported(emulator: Emulator, client: TrackClient) -> None:
    delivery = put(client, body={"x": "y" * 1001})
    assert delivery.status is Status.FAILED
    assert delivery.reason == "HTTP 400: value for attribute 'x' cannot be longer than 1000 bytes"


def test_exhausted_retries_report_the_last_status(emulator: Emulator, client: TrackClient) -> None:
    emulator.add_fault(status=503, times=None)
    delivery = put(client)
    assert delivery.status is Status.FAILED
    assert delivery.http_status == 503
    assert delivery.reason == "HTTP 503 after 4 attempts: injected fault"
    assert len(emulator.requests()) == 4


def test_exhausted_connection_retries_say_what_happened(emulator: Emulator, client: TrackClient) -> None:
    emulator.add_fault(drop="before", times=None)
    delivery = put(client)
    assert delivery.status is Status.FAILED
    assert delivery.http_status is None
    assert delivery.reason is not None and delivery.reason.startswith("the connection was dropped")
    assert delivery.reason.endswith("(it may have been applied)")
    assert len(emulator.requests()) == 4


def test_nothing_listening_is_a_failure_not_a_crash() -> None:
    with Emulator() as gone:
        url = gone.url
    track = TrackClient(make_config(url), FAST, Gate(), 1)
    delivery = put(track)
    assert delivery.status is Status.FAILED
    assert delivery.reason is not None and delivery.reason.startswith("cannot connect")


@pytest.mark.parametrize("status", [401, 403])
def test_auth_refusals_are_flagged(emulator: Emulator, client: TrackClient, status: int) -> None:
    emulator.add_fault(status=status)
    delivery = put(client)
    assert delivery.stop is StopReason.CREDENTIALS
    assert len(emulator.requests()) == 1


def test_wrong_credentials_get_401_from_the_emulator(emulator: Emulator) -> None:
    track = TrackClient(make_config(emulator.url, apiKey="wrong"), FAST, Gate(), 1)
    assert put(track).stop is StopReason.CREDENTIALS


def test_credentials_check_returns_the_region(emulator: Emulator, client: TrackClient) -> None:
    assert client.check_credentials() == "us"
    (request,) = emulator.requests()
    assert (request.method, request.target) == ("GET", "/api/v1/accounts/region")


def test_credentials_check_raises_on_401(emulator: Emulator) -> None:
    track = TrackClient(make_config(emulator.url, apiKey="wrong"), FAST, Gate(), 1)
    with pytest.raises(CredentialsRejected, match="refused the credentials"):
        track.check_credentials()


def test_credentials_check_tolerates_an_endpoint_it_does_not_know(emulator: Emulator, client: TrackClient) -> None:
    emulator.add_fault(status=404, endpoint="region")
    assert client.check_credentials() is None


def test_credentials_check_raises_when_unreachable() -> None:
    with Emulator() as gone:
        url = gone.url
    track = TrackClient(make_config(url), FAST, Gate(), 1)
    with pytest.raises(ApiUnreachable, match="cannot reach the Track API"):
        track.check_credentials()


def test_a_ca_bundle_that_is_not_there_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-bundle.pem"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(missing))
    track = TrackClient(make_config("https://127.0.0.1:9"), FAST, Gate(), 1)
    with pytest.raises(ApiUnreachable) as caught:
        track.check_credentials()
    assert str(caught.value).endswith(f"Could not find a suitable TLS CA certificate bundle, invalid path: {missing}")
    track.close()


def test_ids_reach_the_server_exactly(emulator: Emulator, client: TrackClient) -> None:
    from cio_sync.input.mapping import path_segment

    ids = ["a/b", "x?y#z", "a b", "ü", "%41", ".", "..", "cio_x", "a@B.com", "+1"]
    for person_id in ids:
        assert client.put_person(path_segment(person_id), b'{"n":1}').status is Status.SYNCED
    assert [r.person_id for r in emulator.requests()] == ids


def test_the_pool_is_sized_for_the_workers(emulator: Emulator) -> None:
    from concurrent.futures import ThreadPoolExecutor

    emulator.latency = 0.05
    track = TrackClient(make_config(emulator.url), FAST, Gate(), pool_size=8)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: put(track, f"p{i}").status, range(32)))
    track.close()
    assert results == [Status.SYNCED] * 32
    assert emulator.stats()["peak_in_flight"] == 8


@given(
    st.lists(st.text(), min_size=1, max_size=3),
    st.sampled_from(["", "/prefix", "/a%20b/c"]),
    st.sampled_from(
        [("PUT", b'{"a": 1}'), ("POST", b"[]"), ("PUT", b""), ("DELETE", None), ("POST", None), ("GET", None)]
    ),
)
def test_a_request_is_what_requests_own_steps_make_of_it(
    ids: list[str], prefix: str, call: tuple[str, bytes | None]
) -> None:
    # The client sets what PreparedRequest's prepare_* steps would, and the adapter sends the
    # path that requests would send: for every id, under any base path, with a body or without.
    method, body = call
    url = "http://127.0.0.1:9" + prefix + "/api/v1/customers/" + "/".join(path_segment(i) for i in ids)
    headers = {"Authorization": "Basic eDp5", "User-Agent": "cio-sync/test", "Content-Type": "application/json"}
    checked = requests.PreparedRequest()
    checked.prepare_headers(headers)
    ours = _prepared(method, url, checked.headers, body)
    theirs = requests.PreparedRequest()
    theirs.prepare_method(method)
    theirs.url = url
    theirs.prepare_headers(headers)
    theirs.prepare_body(body, None)
    assert (ours.method, ours.url, dict(ours.headers), ours.body) == (
        theirs.method,
        theirs.url,
        dict(theirs.headers),
        theirs.body,
    )
    assert _LeanAdapter().request_url(ours, {}) == HTTPAdapter().request_url(theirs, {})


@pytest.mark.parametrize(
    ("url", "proxies"),
    [
        ("http://127.0.0.1:9/api/v1/customers/a?b=c#d", {}),
        ("http://127.0.0.1:9", {}),
        ("http://127.0.0.1:9/a\tb\n/api/v1/customers/a", {}),
        ("https://example.test/api/v1/customers/a", {"https": "http://127.0.0.1:8"}),
    ],
)
def test_a_url_the_client_never_sends_gets_requests_own_path(url: str, proxies: dict[str, str]) -> None:
    request = requests.PreparedRequest()
    request.prepare_method("PUT")
    request.url = url  # as the client sets it
    assert _LeanAdapter().request_url(request, proxies) == HTTPAdapter().request_url(request, proxies)


def test_requests_with_the_same_origin_and_settings_share_a_pool_and_others_do_not() -> None:
    def request(url: str) -> requests.PreparedRequest:
        prepared = requests.PreparedRequest()
        prepared.prepare(method="PUT", url=url)
        return prepared

    def pool(url: str, verify: bool = True, proxies: dict[str, str] | None = None) -> object:
        return adapter.get_connection_with_tls_context(request(url), verify, proxies)

    def requests_own(url: str, verify: bool = True, proxies: dict[str, str] | None = None) -> object:
        return HTTPAdapter.get_connection_with_tls_context(adapter, request(url), verify, proxies)

    adapter = _LeanAdapter()
    first = pool("https://127.0.0.1:9/api/v1/customers/a")
    assert pool("https://127.0.0.1:9/api/v2/batch") is first is requests_own("https://127.0.0.1:9/x")
    # Each differs from the request before it in one thing only.
    assert pool("https://127.0.0.1:9/a", verify=False) is not first
    assert pool("https://127.0.0.1:9/a") is first
    assert pool("https://127.0.0.1:10/api/v2/batch") is not first
    assert pool("https://127.0.0.1:9/a") is first
    proxy = {"https": "http://127.0.0.1:8"}
    proxied = pool("https://127.0.0.1:9/a", proxies=proxy)
    assert proxied is not first
    assert (
        proxied is pool("https://127.0.0.1:9/b", proxies=proxy) is requests_own("https://127.0.0.1:9/c", proxies=proxy)
    )
    assert pool("https://127.0.0.1:9/api/v1/customers/a") is requests_own("https://127.0.0.1:9/x")
    adapter.close()
    # Closing closes every pool: the next request gets a fresh one, as requests would give it.
    fresh = pool("https://127.0.0.1:9/api/v1/customers/a")
    assert fresh is not first and fresh is requests_own("https://127.0.0.1:9/x")
    adapter.close()

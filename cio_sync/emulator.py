"""A local stand-in for the Track API, for the tests and the demo: people, faults and counters.

It speaks ``PUT /api/v1/customers/{id}``, ``POST /api/v2/batch`` (with 207 partial failures) and
``GET /api/v1/accounts/region`` with HTTP Basic auth and the API's size limits, merges attributes
as the real API does, and can be told to misbehave: latency, error statuses, 429 with
``Retry-After``, dropped connections and a rate limit. It listens on loopback only. Besides the
API it answers ``/_emulator/people``, ``/_emulator/stats``, ``/_emulator/faults`` (POST) and
``/_emulator/reset`` (POST), so a separate process (the demo, a benchmark) can read and steer it.
"""

from __future__ import annotations

import base64
import json
import math
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote

import typer

from .config import MAX_ATTRIBUTES
from .mapping import MAX_BATCH_BYTES, MAX_ID_BYTES, MAX_ITEM_BYTES, MAX_VALUE_BYTES

PEOPLE_PREFIX = "/api/v1/customers/"
REGION_PATH = "/api/v1/accounts/region"
BATCH_PATH = "/api/v2/batch"
MAX_NAME_BYTES = 150
UNAUTHORIZED = "Unauthorized request. Make sure that you provided the right credentials."


@dataclass
class Fault:
    """A way for the emulator to misbehave, for ``times`` matching requests (None: forever)."""

    # Answer with this status instead of handling the request.
    status: int | None = None
    # The Retry-After header sent with that status, verbatim (malformed values included).
    retry_after: str | None = None
    # Close the connection without answering.
    drop: bool = False
    # Apply the update before misbehaving: the answer is lost, not the write.
    apply: bool = False
    # Wait this long before answering.
    delay: float = 0.0
    # Only requests for this person id (decoded), or only this kind: "customers", "region",
    # "batch", "any"; or "item": refuse this person's items inside batches (a 207 error).
    person_id: str | None = None
    endpoint: str = "customers"
    times: int | None = 1


@dataclass(frozen=True)
class ReceivedRequest:
    """One API request as the emulator saw it."""

    method: str
    target: str
    person_id: str | None
    body: Any
    status: int
    # When the request arrived and when its answer was decided (time.monotonic()).
    started_at: float
    answered_at: float
    authorization: str | None = field(default=None, repr=False)


class Emulator:
    """The emulated workspace and its HTTP server. Use as a context manager, or start()/stop()."""

    def __init__(
        self,
        site_id: str = "demo-site",
        api_key: str = "demo-key",
        *,
        region: str = "us",
        latency: float = 0.0,
        rate_limit: float | None = None,
        burst: float | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        keep_requests: bool = True,
    ) -> None:
        self.region = region
        self.latency = latency
        self.keep_requests = keep_requests
        self._auth = "Basic " + base64.b64encode(f"{site_id}:{api_key}".encode()).decode()
        self._lock = threading.Lock()
        self._people: dict[str, dict[str, Any]] = {}
        self._faults: list[Fault] = []
        self._requests: list[ReceivedRequest] = []
        self._statuses: Counter[int] = Counter()
        self._writes: Counter[str] = Counter()
        self._total = 0
        self._in_flight = 0
        self._peak = 0
        self._rate = rate_limit
        self._burst = burst if burst is not None else (max(1.0, rate_limit / 10) if rate_limit else 0.0)
        self._tokens = self._burst
        self._refilled = time.monotonic()
        self._server = _Server((host, port), _Handler)
        self._server.emulator = self
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL to give cio-sync (``--base-url``)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Emulator:
        """Serve in a background thread."""
        # A short poll keeps stop() quick; the accept loop itself does not spin.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="emulator", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted, then close the listening socket."""
        try:
            self._server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            self._server.server_close()

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_fault(self, fault: Fault | None = None, **fields: Any) -> None:
        """Queue a fault (or build one from keyword fields); faults apply in the order added."""
        with self._lock:
            self._faults.append(fault if fault is not None else Fault(**fields))

    def people(self) -> dict[str, dict[str, Any]]:
        """A copy of every person: id -> attributes."""
        with self._lock:
            return {pid: dict(attrs) for pid, attrs in self._people.items()}

    def requests(self) -> list[ReceivedRequest]:
        """Every API request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def stats(self) -> dict[str, Any]:
        """Counters: requests, statuses answered, peak requests in flight, writes per person."""
        with self._lock:
            return {
                "requests": self._total,
                "statuses": {str(k): v for k, v in sorted(self._statuses.items())},
                "in_flight": self._in_flight,
                "peak_in_flight": self._peak,
                "people": len(self._people),
                "writes": sum(self._writes.values()),
            }

    def writes(self, person_id: str) -> int:
        """How many accepted updates ``person_id`` has had."""
        with self._lock:
            return self._writes[person_id]

    def reset(self) -> None:
        """Forget people, faults, requests and counters."""
        with self._lock:
            self._people.clear()
            self._faults.clear()
            self._requests.clear()
            self._statuses.clear()
            self._writes.clear()
            self._total = 0
            self._peak = self._in_flight

    # -- request handling (called on the server's connection threads) ------------------------

    def handle(self, handler: _Handler) -> None:
        """Answer one request (called on the server's connection threads)."""
        target = handler.path
        path = target.split("?", 1)[0]
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        if path.startswith("/_emulator/"):
            self._admin(handler, path, raw)
            return
        endpoint = {REGION_PATH: "region", BATCH_PATH: "batch"}.get(path, "other")
        if path.startswith(PEOPLE_PREFIX):
            endpoint = "customers"
        segment = path[len(PEOPLE_PREFIX) :] if endpoint == "customers" else None
        person_id = _decode(segment) if segment is not None else None
        started = time.monotonic()
        with self._lock:
            self._total += 1
            self._in_flight += 1
            self._peak = max(self._peak, self._in_flight)
            fault = self._take_fault(endpoint, person_id)
        try:
            status, body, headers = self._decide(handler, fault, endpoint, segment, person_id, raw)
        finally:
            # Counted and logged before the answer goes out, so a client that has its answer can
            # rely on the counters.
            with self._lock:
                self._in_flight -= 1
        self._record(handler, target, person_id, raw, status, started)
        if status < 0:
            handler.close_connection = True
        else:
            self._answer(handler, status, body, headers)

    def _decide(
        self,
        handler: _Handler,
        fault: Fault | None,
        endpoint: str,
        segment: str | None,
        person_id: str | None,
        raw: bytes,
    ) -> tuple[int, Any, dict[str, str]]:
        """The status, body and headers to answer with; status -1 drops the connection."""
        delay = self.latency + (fault.delay if fault else 0.0)
        if delay:
            time.sleep(delay)
        if fault and fault.apply:
            self._route(handler.command, endpoint, segment, person_id, raw)
        if fault and fault.drop:
            return -1, None, {}
        if fault and fault.status is not None:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            return fault.status, _error("injected fault"), headers
        retry_after = self._over_rate()
        if retry_after is not None:
            return 429, _error("rate limit exceeded"), {"Retry-After": str(retry_after)}
        if handler.headers.get("Authorization") != self._auth:
            return 401, _error(UNAUTHORIZED), {}
        status, body = self._route(handler.command, endpoint, segment, person_id, raw)
        return status, body, {}

    def _record(
        self, handler: _Handler, target: str, person_id: str | None, raw: bytes, status: int, started: float
    ) -> None:
        with self._lock:
            self._statuses[status] += 1
            if self.keep_requests:
                self._requests.append(
                    ReceivedRequest(
                        handler.command,
                        target,
                        person_id,
                        _parse(raw),
                        status,
                        started,
                        time.monotonic(),
                        handler.headers.get("Authorization"),
                    )
                )

    def _take_fault(self, endpoint: str, person_id: str | None) -> Fault | None:
        for i, fault in enumerate(self._faults):
            if fault.endpoint not in (endpoint, "any"):
                continue
            if fault.person_id is not None and fault.person_id != person_id:
                continue
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    del self._faults[i]
            return fault
        return None

    def _over_rate(self) -> int | None:
        if not self._rate:
            return None
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self._burst, self._tokens + (now - self._refilled) * self._rate)
            self._refilled = now
            if self._tokens >= 1:
                self._tokens -= 1
                return None
            return max(1, math.ceil((1 - self._tokens) / self._rate))

    def _route(
        self, method: str, endpoint: str, segment: str | None, person_id: str | None, raw: bytes
    ) -> tuple[int, Any]:
        if endpoint == "region" and method == "GET":
            return 200, {"url": self.url, "region": self.region, "environment_id": 1}
        if endpoint == "customers" and method == "PUT" and segment is not None and "/" not in segment:
            return self._identify(person_id, raw)
        if endpoint == "batch" and method == "POST":
            return self._batch(raw)
        return 404, _error("not found")

    def _batch(self, raw: bytes) -> tuple[int, Any]:
        if len(raw) > MAX_BATCH_BYTES:
            return 400, _error(f"batch requests cannot be larger than {MAX_BATCH_BYTES} bytes")
        document = _parse(raw)
        items = document.get("batch") if isinstance(document, dict) else None
        if not isinstance(items, list):
            return 400, {"errors": [{"reason": "invalid", "field": "batch", "message": "batch must be an array"}]}
        errors = []
        for index, item in enumerate(items):
            key, problem = self._batch_item(item)
            if problem is None and key is not None:
                with self._lock:
                    refused = self._take_fault("item", key) is not None
                problem = "injected fault" if refused else None
            if problem is not None:
                errors.append({"batch_index": index, "reason": "invalid", "field": "item", "message": problem})
                continue
            assert key is not None and isinstance(item, dict)
            status, body = self._identify(key, json.dumps(item["attributes"]).encode())
            if status != 200:
                errors.append({"batch_index": index, "reason": "invalid", "field": "attributes", "message": body})
        return (207, {"errors": errors}) if errors else (200, {})

    @staticmethod
    def _batch_item(item: Any) -> tuple[str | None, str | None]:
        """The person key an identify item names (as its v1 path id would), or what is wrong."""
        if not isinstance(item, dict) or item.get("type") != "person" or item.get("action") != "identify":
            return None, "only person identify items are supported"
        if len(json.dumps(item).encode()) > MAX_ITEM_BYTES:
            return None, f"items cannot be larger than {MAX_ITEM_BYTES} bytes"
        ids = item.get("identifiers")
        if not isinstance(ids, dict) or len(ids) != 1 or not isinstance(item.get("attributes"), dict):
            return None, "an item needs exactly one identifier and an attributes object"
        ((kind, value),) = ids.items()
        if kind not in ("id", "email", "cio_id") or not isinstance(value, str) or not value:
            return None, "identifiers must be one non-empty id, email or cio_id"
        return ("cio_" + value if kind == "cio_id" else value), None

    def _identify(self, person_id: str | None, raw: bytes) -> tuple[int, Any]:
        if person_id is None:
            return 400, _error("the id in the path is not valid percent-encoded UTF-8")
        if not person_id:
            return 400, _error("id attribute ... cannot be an empty string")
        if len(person_id.encode()) > MAX_ID_BYTES:
            return 400, _error(f"id cannot be longer than {MAX_ID_BYTES} bytes")
        attributes = _parse(raw)
        if not isinstance(attributes, dict):
            return 400, _error("the request body must be a JSON object")
        if len(attributes) > MAX_ATTRIBUTES:
            return 400, _error(f"cannot identify more than {MAX_ATTRIBUTES} attributes in one request")
        for name, value in attributes.items():
            if len(name.encode()) > MAX_NAME_BYTES:
                return 400, _error(f"attribute name cannot be longer than {MAX_NAME_BYTES} bytes")
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
            if len(text.encode()) > MAX_VALUE_BYTES:
                return 400, _error(f"value for attribute '{name}' cannot be longer than {MAX_VALUE_BYTES} bytes")
        with self._lock:
            self._people.setdefault(person_id, {}).update(attributes)
            self._writes[person_id] += 1
        return 200, {}

    def _admin(self, handler: _Handler, path: str, raw: bytes) -> None:
        if path == "/_emulator/people" and handler.command == "GET":
            self._answer(handler, 200, self.people())
        elif path == "/_emulator/stats" and handler.command == "GET":
            self._answer(handler, 200, self.stats())
        elif path == "/_emulator/faults" and handler.command == "POST":
            try:
                self.add_fault(Fault(**json.loads(raw)))
            except (ValueError, TypeError) as e:
                self._answer(handler, 400, _error(str(e)))
                return
            self._answer(handler, 200, {})
        elif path == "/_emulator/reset" and handler.command == "POST":
            self.reset()
            self._answer(handler, 200, {})
        else:
            self._answer(handler, 404, _error("not found"))

    @staticmethod
    def _answer(handler: _Handler, status: int, body: Any, headers: dict[str, str] | None = None) -> int:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)
        return status


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Idle keep-alive connections must not hold up shutdown.
    block_on_close = False
    request_queue_size = 1024
    emulator: Emulator

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away mid-answer (killed, or gave up waiting) is not an emulator error.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    # An idle keep-alive connection is closed after this long.
    timeout = 60
    # Buffer the answer and send it in one segment: headers and body written separately would
    # meet Nagle's algorithm and the client's delayed ACK, adding 40 ms to every request.
    wbufsize = -1
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self.server.emulator.handle(self)

    do_PUT = do_POST = do_DELETE = do_GET  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Silent: tests and the demo read the counters instead."""


def _decode(segment: str) -> str | None:
    try:
        return unquote(segment, errors="strict")
    except UnicodeDecodeError:
        return None


def _parse(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def _error(message: str) -> dict[str, Any]:
    return {"meta": {"error": message}}


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, help="The local Track API emulator.")


@app.callback(invoke_without_command=True)
def serve(
    context: typer.Context,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1; 0 picks a free one.")] = 0,
    port_file: Annotated[Path | None, typer.Option(help="Write the chosen port here once listening.")] = None,
    site_id: Annotated[str, typer.Option(help="The site id it accepts.")] = "demo-site",
    api_key: Annotated[str, typer.Option(help="The API key it accepts.")] = "demo-key",
    region: Annotated[str, typer.Option(help="What GET /api/v1/accounts/region answers.")] = "us",
    latency: Annotated[float, typer.Option(help="Seconds added to every API request.")] = 0.0,
    rate_limit: Annotated[float | None, typer.Option(help="Requests per second before 429.")] = None,
    burst: Annotated[float | None, typer.Option(help="Requests allowed at once above the rate.")] = None,
    keep_requests: Annotated[bool, typer.Option(help="Keep a log of every request.")] = False,
) -> None:
    """Serve the emulated Track API on 127.0.0.1 until interrupted (or run the show command)."""
    if context.invoked_subcommand is not None:
        return
    emulator = Emulator(
        site_id,
        api_key,
        region=region,
        latency=latency,
        rate_limit=rate_limit,
        burst=burst,
        port=port,
        keep_requests=keep_requests,
    )
    if port_file is not None:
        port_file.write_text(emulator.url.rsplit(":", 1)[1])
    typer.echo(f"Track API emulator listening on {emulator.url}", err=True)
    emulator.serve_forever()


@app.command()
def show(url: Annotated[str, typer.Argument(help="The emulator's base URL.")]) -> None:
    """Print every person the emulator holds, and its counters."""
    import requests

    people = requests.get(url + "/_emulator/people", timeout=10).json()
    stats = requests.get(url + "/_emulator/stats", timeout=10).json()
    for line in render_people(people):
        typer.echo(line)
    typer.echo(f"\n{len(people)} people; {stats['requests']} API requests, answered {stats['statuses']}")


def render_people(people: dict[str, dict[str, Any]]) -> Iterator[str]:
    """One line per person: the id, then the attributes as JSON."""
    for person_id in sorted(people):
        yield f"{person_id:>12}  {json.dumps(people[person_id], ensure_ascii=False, sort_keys=True)}"


def main() -> None:
    """Entry point for ``python -m cio_sync.emulator``."""
    app()


if __name__ == "__main__":
    main()

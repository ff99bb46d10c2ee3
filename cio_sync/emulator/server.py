"""The emulator's HTTP server: the Track API's operations on loopback, faults, counters and admin paths.

Besides the API it answers ``GET /_emulator/people``, ``GET /_emulator/stats``,
``GET|POST|DELETE /_emulator/faults`` and ``POST /_emulator/reset``, so that another process (the
demo, ``make bench``, ``python -m cio_sync.emulator show``) can read and steer it.
"""

from __future__ import annotations

import base64
import json
import math
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from . import rules
from .faults import Drop, Fault, FaultBook, Matched, Odd207
from .rules import Choices, Endpoint, Identifier, Problem
from .workspace import Outcome, Person, Workspace

JSON = "application/json"


@dataclass(frozen=True)
class ReceivedRequest:
    """One API request as the emulator saw it, and what it answered."""

    method: str
    target: str
    endpoint: Endpoint
    # The v1 path's identifier, percent-decoded (None for other endpoints, or undecodable).
    person_id: str | None
    # The body parsed as JSON (its text when it is not JSON; None when empty).
    body: Any
    # The status answered; None when the connection was dropped without an answer.
    status: int | None
    # When the request arrived and when its answer was decided (time.monotonic()).
    started_at: float
    answered_at: float
    raw: bytes = field(default=b"", repr=False)
    content_type: str | None = field(default=None, repr=False)
    authorization: str | None = field(default=None, repr=False)
    # The answer's body and Content-Type as sent (None when dropped).
    answer: bytes | None = field(default=None, repr=False)
    answer_type: str | None = field(default=None, repr=False)
    # The fault that shaped the answer, if one did.
    fault: Fault | None = None


@dataclass(frozen=True)
class _Answer:
    status: int | None
    body: bytes = b""
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()
    drip: float | None = None


def _json(status: int, document: Any, headers: tuple[tuple[str, str], ...] = ()) -> _Answer:
    return _Answer(status, json.dumps(document, ensure_ascii=False).encode("utf-8"), JSON, headers)


class Emulator:
    """The emulated workspace and its HTTP server. Use as a context manager, or start()/stop().

    ``choices`` settles what the spec leaves open (see :class:`~cio_sync.emulator.rules.Choices`);
    ``latency`` delays every API request; ``rate_limit`` (requests per second, with ``burst``)
    answers 429 with ``Retry-After`` above it; ``faults`` are queued at once (see :class:`Fault`).
    """

    def __init__(
        self,
        site_id: str = "demo-site",
        api_key: str = "demo-key",
        *,
        region: str = "us",
        environment_id: int = 1,
        choices: Choices | None = None,
        latency: float = 0.0,
        rate_limit: float | None = None,
        burst: float | None = None,
        faults: Sequence[Fault] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        keep_requests: bool = True,
    ) -> None:
        if region not in rules.REGION_URLS:
            raise ValueError(f"region must be one of {', '.join(rules.REGION_URLS)}, not {region!r}")
        self.region = region
        self.environment_id = environment_id
        self.latency = latency
        self.keep_requests = keep_requests
        self.workspace = Workspace(choices)
        self.faults = FaultBook(self._same_person)
        for fault in faults:
            self.faults.add(fault)
        self._auth = "Basic " + base64.b64encode(f"{site_id}:{api_key}".encode()).decode()
        self._lock = threading.Lock()
        self._requests: list[ReceivedRequest] = []
        self._statuses: Counter[int] = Counter()
        self._endpoints: Counter[str] = Counter()
        self._total = 0
        self._dropped = 0
        self._in_flight = 0
        self._peak = 0
        self._rate = rate_limit
        self._burst = burst if burst is not None else (max(1.0, rate_limit / 10) if rate_limit else 0.0)
        self._tokens = self._burst
        self._refilled = time.monotonic()
        # Binding happens here, so a port in use fails at construction with OSError.
        self._server = _Server((host, port), _Handler)
        self._server.emulator = self
        self._thread: threading.Thread | None = None

    @property
    def choices(self) -> Choices:
        """What the emulator does where the spec is silent."""
        return self.workspace.choices

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

    # -- steering and reading ---------------------------------------------------------------

    def add_fault(self, fault: Fault | str | None = None, **fields: Any) -> Fault:
        """Queue a fault: a :class:`Fault`, its command-line text, or its fields as keywords."""
        if isinstance(fault, str):
            fault = Fault.parse(fault)
        queued = fault if fault is not None else Fault(**fields)
        self.faults.add(queued)
        return queued

    def add_person(
        self,
        *,
        id: str | None = None,  # noqa: A002 -- the API's own name for the identifier
        email: str | None = None,
        cio_id: str | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> Person:
        """Put a person in the workspace as if created earlier (for update-only runs, cio_id paths)."""
        return self.workspace.add(id=id, email=email, cio_id=cio_id, attributes=attributes)

    def people(self) -> dict[str, dict[str, Any]]:
        """Every person's attributes, by id (else email, else ``cio_<cio_id>``)."""
        return self.workspace.people()

    def person(self, identifier: str) -> Person | None:
        """The person a v1 path value names (``42``, ``Ada@example.com``, ``cio_1f``), or None."""
        return self.workspace.find(rules.path_identifier(identifier, self.choices))

    def writes(self, identifier: str) -> int:
        """How many identify calls changed the person ``identifier`` names."""
        person = self.person(identifier)
        return person.writes if person else 0

    def requests(self) -> list[ReceivedRequest]:
        """Every API request received so far, in arrival order (when ``keep_requests``)."""
        with self._lock:
            return list(self._requests)

    def stats(self) -> dict[str, Any]:
        """Counters: requests received (in all and by endpoint), answers by status, dropped
        connections, requests in flight now and at the peak, people, and accepted writes."""
        people, writes = self.workspace.counts()
        with self._lock:
            return {
                "requests": self._total,
                "endpoints": dict(sorted(self._endpoints.items())),
                "statuses": {str(k): v for k, v in sorted(self._statuses.items())},
                "dropped": self._dropped,
                "in_flight": self._in_flight,
                "peak_in_flight": self._peak,
                "people": people,
                "writes": writes,
            }

    def reset(self) -> None:
        """Forget people, faults, requests and counters."""
        self.workspace.clear()
        self.faults.clear()
        with self._lock:
            self._requests.clear()
            self._statuses.clear()
            self._endpoints.clear()
            self._total = 0
            self._dropped = 0
            self._peak = self._in_flight

    # -- request handling (on the server's connection threads) ------------------------------

    def handle(self, handler: _Handler) -> None:
        """Answer one request."""
        target = handler.path
        path = target.split("?", 1)[0]
        raw = _read_body(handler)
        if raw is None:
            # The client went away mid-request (killed, say), or framed it so that its end cannot
            # be found: a request that never fully arrived is not applied, and the connection ends.
            handler.close_connection = True
            return
        if path.startswith("/_emulator/"):
            self._send(handler, self._admin(handler.command, path, raw))
            return
        started = time.monotonic()
        endpoint = _endpoint(path)
        person_id = _decode(path[len(rules.PEOPLE_PREFIX) :]) if endpoint is Endpoint.CUSTOMERS else None
        document, is_json = _parse(raw)
        with self._lock:
            self._total += 1
            self._endpoints[endpoint.value] += 1
            self._in_flight += 1
            self._peak = max(self._peak, self._in_flight)
        try:
            matched = self.faults.take(endpoint, self._people_named(endpoint, person_id, document))
            answer = self._decide(handler, matched, endpoint, path, person_id, raw, document if is_json else _NOT_JSON)
        finally:
            # Counted and logged before the answer goes out, so a client that has its answer can
            # rely on the counters.
            with self._lock:
                self._in_flight -= 1
        self._record(handler, target, endpoint, person_id, raw, document, answer, started, matched)
        self._send(handler, answer)

    def _decide(
        self,
        handler: _Handler,
        matched: Matched | None,
        endpoint: Endpoint,
        path: str,
        person_id: str | None,
        raw: bytes,
        document: Any,
    ) -> _Answer:
        fault = matched.fault if matched else None
        delay = self.latency + (fault.delay if fault and fault.delay else 0.0)
        if delay:
            time.sleep(delay)
        if fault is not None and fault.status is not None:
            retry_after = fault.retry_after_header(time.time())
            headers = (("Retry-After", retry_after),) if retry_after is not None else ()
            return _json(fault.status, rules.error_body(endpoint, Problem("fault", "injected fault")), headers)
        if fault is not None and fault.drop is Drop.BEFORE:
            return _Answer(None)
        retry_after_seconds = self._over_rate()
        if retry_after_seconds is not None:
            problem = Problem("rate", "rate limit exceeded")
            return _json(429, rules.error_body(endpoint, problem), (("Retry-After", str(retry_after_seconds)),))
        if handler.headers.get("Authorization") != self._auth:
            return _json(401, rules.error_body(endpoint, Problem("authorization", rules.UNAUTHORIZED)))
        odd = fault.odd_207 if fault else None
        answer = self._route(handler.command, endpoint, path, person_id, raw, document, matched if odd else None)
        if fault is not None and fault.drop is Drop.AFTER:
            return _Answer(None)
        if fault is not None and fault.drip:
            return _Answer(answer.status, answer.body, answer.content_type, answer.headers, fault.drip)
        return answer

    def _route(
        self,
        method: str,
        endpoint: Endpoint,
        path: str,
        person_id: str | None,
        raw: bytes,
        document: Any,
        odd: Matched | None,
    ) -> _Answer:
        if endpoint is Endpoint.REGION and method == "GET":
            return _json(200, rules.region_answer(self.region, self.environment_id))
        if endpoint is Endpoint.CUSTOMERS and method == "PUT" and "/" not in path[len(rules.PEOPLE_PREFIX) :]:
            return self._identify(person_id, document)
        if endpoint is Endpoint.BATCH and method == "POST":
            return self._batch(raw, document, odd)
        return _json(404, rules.error_body(endpoint, Problem("path", f"no such operation: {method} {path}")))

    def _identify(self, person_id: str | None, body: Any) -> _Answer:
        """identify: PUT /api/v1/customers/{identifier}."""

        def refuse(problem: Problem) -> _Answer:
            return _json(400, rules.error_body(Endpoint.CUSTOMERS, problem))

        if person_id is None:
            return refuse(Problem("identifier", "the identifier is not valid percent-encoded UTF-8"))
        problem = rules.check_id(person_id)
        if problem is not None:
            return refuse(problem)
        if not isinstance(body, dict):
            return refuse(Problem("body", "the request body must be a JSON object"))
        problem = rules.check_attributes(body, self.choices, v1=True)
        if problem is not None:
            return refuse(problem)
        outcome = self.workspace.identify(rules.path_identifier(person_id, self.choices), body)
        if outcome is Outcome.TOO_MANY_ATTRIBUTES:
            return refuse(Problem("attributes", rules.PERSON_ATTRIBUTES))
        return _json(200, rules.success())

    def _batch(self, raw: bytes, document: Any, odd: Matched | None) -> _Answer:
        """batch: POST /api/v2/batch, person identify items."""

        def refuse(problem: Problem) -> _Answer:
            return _json(400, rules.error_body(Endpoint.BATCH, problem))

        # batch.description: the request "must be smaller than 500kb": measured as it arrived.
        if len(raw) > rules.MAX_BATCH_BYTES:
            return refuse(Problem("batch", f"batch requests must be smaller than {rules.MAX_BATCH_BYTES + 1} bytes"))
        items = document.get("batch") if isinstance(document, dict) else None
        if not isinstance(items, list):
            return refuse(Problem("batch", "the body must be a JSON object whose batch is an array"))
        errors: list[dict[str, Any]] = []
        odd_index: int | None = None
        for index, item in enumerate(items):
            checked = self._item(item)
            if isinstance(checked, Problem):
                errors.append(rules.item_error(index, checked))
                continue
            who, attributes, timestamp = checked
            if odd is not None and odd_index is None and (odd.person is None or odd.person == who.as_path()):
                odd_index = index
                continue
            if self.faults.take_item(who.as_path()) is not None:
                errors.append(rules.item_error(index, Problem("identifiers", "injected fault")))
                continue
            if self.workspace.identify(who, attributes, timestamp) is Outcome.TOO_MANY_ATTRIBUTES:
                errors.append(rules.item_error(index, Problem("attributes", rules.PERSON_ATTRIBUTES)))
        if odd is not None:
            assert odd.fault.odd_207 is not None
            return _odd_207(odd.fault.odd_207, odd_index if odd_index is not None else 0)
        return _json(207, rules.partial_failure(errors)) if errors else _json(200, rules.success())

    def _item(self, item: Any) -> tuple[Identifier, dict[str, Any], int | None] | Problem:
        """A batch item's person, attributes and timestamp, or why it is refused."""
        if not isinstance(item, dict):
            return Problem("item", "an item must be a JSON object")
        size = rules.compact_size(item)
        if size > rules.MAX_ITEM_BYTES:
            return Problem("item", f"items cannot be larger than {rules.MAX_ITEM_BYTES} bytes; this one is {size}")
        # The batch schema allows many types and actions; the emulator models people's identify only.
        if item.get("type") != "person":
            return Problem("type", "the emulator accepts person items only")
        if item.get("action") != "identify":
            return Problem("action", "the emulator accepts the identify action only")
        who = rules.item_identifier(item.get("identifiers"), self.choices)
        if isinstance(who, Problem):
            return who
        problem = rules.check_id(who.value)
        if problem is not None:
            return Problem("identifiers", problem.message)
        attributes = item.get("attributes", {})
        problem = rules.check_attributes(attributes, self.choices, v1=False)
        if problem is not None:
            return problem
        timestamp = item.get("timestamp")
        return who, attributes, timestamp if type(timestamp) is int else None

    def _people_named(self, endpoint: Endpoint, person_id: str | None, document: Any) -> list[str]:
        """The people a request names, as v1 path values, for faults scoped to a person."""
        if endpoint is Endpoint.CUSTOMERS:
            return [person_id] if person_id is not None else []
        if endpoint is Endpoint.BATCH and isinstance(document, dict) and isinstance(document.get("batch"), list):
            named = []
            for item in document["batch"]:
                who = rules.item_identifier(item.get("identifiers"), self.choices) if isinstance(item, dict) else None
                if isinstance(who, Identifier):
                    named.append(who.as_path())
            return named
        return []

    def _same_person(self, a: str, b: str) -> bool:
        return rules.path_identifier(a, self.choices).key == rules.path_identifier(b, self.choices).key

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

    def _record(
        self,
        handler: _Handler,
        target: str,
        endpoint: Endpoint,
        person_id: str | None,
        raw: bytes,
        document: Any,
        answer: _Answer,
        started: float,
        matched: Matched | None,
    ) -> None:
        with self._lock:
            if answer.status is None:
                self._dropped += 1
            else:
                self._statuses[answer.status] += 1
            if self.keep_requests:
                self._requests.append(
                    ReceivedRequest(
                        handler.command,
                        target,
                        endpoint,
                        person_id,
                        document,
                        answer.status,
                        started,
                        time.monotonic(),
                        raw,
                        handler.headers.get("Content-Type"),
                        handler.headers.get("Authorization"),
                        answer.body if answer.status is not None else None,
                        answer.content_type if answer.status is not None else None,
                        matched.fault if matched else None,
                    )
                )

    def _admin(self, method: str, path: str, raw: bytes) -> _Answer:
        if path == "/_emulator/people" and method == "GET":
            return _json(200, [_profile(p) for p in self.workspace.profiles()])
        if path == "/_emulator/stats" and method == "GET":
            return _json(200, self.stats())
        if path == "/_emulator/faults" and method == "GET":
            return _json(200, [f.to_json() for f in self.faults.pending()])
        if path == "/_emulator/faults" and method == "DELETE":
            self.faults.clear()
            return _json(200, {})
        if path == "/_emulator/faults" and method == "POST":
            try:
                document = json.loads(raw)
                for entry in document if isinstance(document, list) else [document]:
                    self.add_fault(Fault.from_json(entry))
            except (ValueError, TypeError) as e:
                return _json(400, {"error": str(e)})
            return _json(200, {})
        if path == "/_emulator/reset" and method == "POST":
            self.reset()
            return _json(200, {})
        return _json(404, {"error": f"no such emulator path: {method} {path}"})

    @staticmethod
    def _send(handler: _Handler, answer: _Answer) -> None:
        if answer.status is None:
            handler.close_connection = True
            return
        handler.send_response(answer.status)
        handler.send_header("Content-Type", answer.content_type)
        handler.send_header("Content-Length", str(len(answer.body)))
        for name, value in answer.headers:
            handler.send_header(name, value)
        handler.end_headers()
        if answer.drip is None:
            handler.wfile.write(answer.body)
            return
        handler.wfile.flush()
        for i in range(len(answer.body)):
            time.sleep(answer.drip)
            handler.wfile.write(answer.body[i : i + 1])
            handler.wfile.flush()


def _odd_207(shape: Odd207, index: int) -> _Answer:
    problem = Problem("identifiers", "injected fault")
    if shape is Odd207.NOT_JSON:
        return _Answer(207, b"Multi-Status: some items were refused", "text/plain")
    entry = rules.item_error(index, problem)
    if shape is Odd207.NO_INDEX:
        del entry["batch_index"]
    else:
        entry["batch_index"] = str(index)
    return _json(207, rules.partial_failure([entry]))


def _profile(person: Person) -> dict[str, Any]:
    return {"cio_id": person.cio_id, "id": person.id, "email": person.email, "attributes": person.attributes}


def _endpoint(path: str) -> Endpoint:
    if path == rules.REGION_PATH:
        return Endpoint.REGION
    if path == rules.BATCH_PATH:
        return Endpoint.BATCH
    if path.startswith(rules.PEOPLE_PREFIX):
        return Endpoint.CUSTOMERS
    return Endpoint.OTHER


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Idle keep-alive connections must not hold up shutdown.
    block_on_close = False
    request_queue_size = 1024
    emulator: Emulator

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One line on standard error, never a traceback; the client's connection is closed."""
        error = sys.exc_info()[1]
        # A client that went away mid-answer (killed, or gave up waiting) is not an emulator error.
        if not isinstance(error, (ConnectionError, TimeoutError)):
            print(f"Track API emulator: a request from {client_address[0]} failed: {error!r}", file=sys.stderr)


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
        """Every method goes to the emulator, which answers 404 to what the API does not serve."""
        self.server.emulator.handle(self)

    do_PUT = do_POST = do_DELETE = do_GET  # noqa: N815 -- http.server dispatches on these names

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 -- the base class's signature
        """Silent: tests and the demo read the counters instead."""


def _read_body(handler: BaseHTTPRequestHandler) -> bytes | None:
    """The request's body, by Content-Length or chunked; None when it cannot be read whole."""
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        body = b""
        while True:
            size_line = handler.rfile.readline(1024).split(b";", 1)[0].strip()
            if not size_line or any(c not in b"0123456789abcdefABCDEF" for c in size_line):
                return None
            size = int(size_line, 16)
            chunk = handler.rfile.read(size + 2) if size else b""
            if size == 0:
                handler.rfile.readline(1024)  # the empty line that ends the trailers
                return body
            if len(chunk) < size + 2:
                return None
            body += chunk[:size]
    text = handler.headers.get("Content-Length") or "0"
    if not text.isdigit():
        return None
    length = int(text)
    raw = handler.rfile.read(length) if length else b""
    return raw if len(raw) == length else None


def _decode(segment: str) -> str | None:
    try:
        return unquote(segment, errors="strict")
    except UnicodeDecodeError:
        return None


# Stands for a body that is not JSON, where the operations look at the body.
_NOT_JSON = object()


def _parse(raw: bytes) -> tuple[Any, bool]:
    """The body as JSON and True; else its text (None when empty) and False."""
    if not raw:
        return None, False
    try:
        return json.loads(raw), True
    except ValueError:
        return raw.decode("utf-8", "replace"), False

"""The emulator's HTTP plumbing: a threaded server on loopback, request bodies in, answers out.

It knows nothing of the Track API: every request goes to the function the server was given.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

JSON = "application/json"


@dataclass(frozen=True)
class Answer:
    """What to send back. No status: close the connection without answering. ``drip``: send the
    body one byte every this many seconds."""

    status: int | None
    body: bytes = b""
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()
    drip: float | None = None
    # Informational 103 answers sent before this one.
    interim: int = 0


def json_answer(status: int, document: Any, headers: tuple[tuple[str, str], ...] = ()) -> Answer:
    """An answer whose body is ``document`` as UTF-8 JSON."""
    return Answer(status, json.dumps(document, ensure_ascii=False).encode("utf-8"), JSON, headers)


class Server(ThreadingHTTPServer):
    """A server that hands every request, whatever its method, to ``respond``."""

    daemon_threads = True
    # Idle keep-alive connections must not hold up shutdown.
    block_on_close = False
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], respond: Callable[[Handler], None]) -> None:
        # Binding happens here, so a port in use fails at construction with OSError.
        super().__init__(address, Handler)
        self.respond = respond

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One line on standard error, never a traceback; the client's connection is closed."""
        error = sys.exc_info()[1]
        # A client that went away mid-answer (killed, or gave up waiting) is not an emulator error.
        if not isinstance(error, (ConnectionError, TimeoutError)):
            print(f"Track API emulator: a request from {client_address[0]} failed: {error!r}", file=sys.stderr)


class Handler(BaseHTTPRequestHandler):
    """One connection: HTTP/1.1 keep-alive, each request passed to the server's ``respond``."""

    protocol_version = "HTTP/1.1"
    server: Server
    # An idle keep-alive connection is closed after this long.
    timeout = 60
    # Buffer the answer and send it in one segment: headers and body written separately would
    # meet Nagle's algorithm and the client's delayed ACK, adding 40 ms to every request.
    wbufsize = -1
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        """Every method goes to the emulator, which answers 404 to what the API does not serve."""
        self.server.respond(self)

    do_PUT = do_POST = do_DELETE = do_PATCH = do_GET  # noqa: N815 -- http.server dispatches on these names

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 -- the base class's signature
        """Silent: tests and the demo read the counters instead."""


# Far above any body the API takes (a batch is at most 500 KB), far below what a read could not
# hold: a larger length is not read at all.
_LARGEST_BODY = 64 << 20


def read_body(handler: BaseHTTPRequestHandler) -> bytes | None:
    """The request's body, by Content-Length or chunked; None when it cannot be read whole."""
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        body = b""
        while True:
            size_line = handler.rfile.readline(1024).split(b";", 1)[0].strip()
            if not size_line or any(c not in b"0123456789abcdefABCDEF" for c in size_line):
                return None
            size = int(size_line, 16)
            if len(body) + size > _LARGEST_BODY:
                return None
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
    if length > _LARGEST_BODY:
        return None
    raw = handler.rfile.read(length) if length else b""
    return raw if len(raw) == length else None


def send(handler: BaseHTTPRequestHandler, answer: Answer) -> None:
    """Write ``answer`` on the handler's connection, or close it when the answer has no status."""
    if answer.status is None:
        handler.close_connection = True
        return
    for _ in range(answer.interim):
        handler.wfile.write(b"HTTP/1.1 103 Early Hints\r\nLink: </people.css>; rel=preload\r\n\r\n")
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

"""A fast stand-in for the Track API's batch endpoint, for the benchmark (it is never the
bottleneck) and for tests that count batches by the hundred thousand records.

The emulator applies every item of a batch to its workspace, which for a million people costs more
CPU than the client being measured (on a 2-core machine the two share the cores). This server
reads each body, answers at once, and counts; it enforces a rate as the workspace would (429 with
``Retry-After``), so what a run costs in requests and refusals can be read off it.

    python -m tests.bench_server PORT_FILE [--rate 100]

It writes its port to PORT_FILE once it listens. ``GET /_stats`` returns the counters:
``requests`` (every request), ``batches`` (accepted batches), ``statuses``, ``items`` (commas
counted, not parsed: an estimate), ``largest`` (the largest body, in bytes) and ``sizes`` (each
accepted body's, in bytes, in the order they came).
"""

from __future__ import annotations

import argparse
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cio_sync.emulator.clock import REAL_TIME
from cio_sync.emulator.ratelimit import RateLimit


class Stats:
    """What the server was sent, counted under one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.statuses: Counter[int] = Counter()
        self.items = 0
        self.largest = 0
        self.sizes: list[int] = []

    def count(self, status: int, body: bytes) -> None:
        """One answer given, to a request carrying ``body``."""
        with self._lock:
            self.statuses[status] += 1
            self.largest = max(self.largest, len(body))
            if status == 200 and body:
                # Every item begins so; a count of the pattern is enough here.
                self.items += body.count(b'{"type"')
                self.sizes.append(len(body))

    def document(self) -> dict[str, Any]:
        """The counters as JSON."""
        with self._lock:
            return {
                "requests": sum(self.statuses.values()),
                "batches": self.statuses[200],
                "statuses": {str(k): v for k, v in self.statuses.items()},
                "items": self.items,
                "largest": self.largest,
                "sizes": self.sizes,
            }


class Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive; the region check, the batch endpoint and the counters."""

    protocol_version = "HTTP/1.1"
    server: Server
    # One segment per answer: headers and body apart would meet Nagle and delayed ACKs.
    wbufsize = -1
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        """The region (the credentials check), or the counters."""
        if self.path == "/_stats":
            self._answer(200, json.dumps(self.server.stats.document()).encode())
        else:
            self._answer(200, b'{"region":"us"}')

    def do_POST(self) -> None:
        """A batch: read whole, then accepted, or refused for the rate."""
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        wait = self.server.bucket.retry_after() or self.server.refusal(body)
        if wait is None:
            self.server.stats.count(200, body)
            self._answer(200, b"{}")
        else:
            self.server.stats.count(429, body)
            self._answer(429, b'{"meta":{"error":"rate limited"}}', (("Retry-After", str(wait)),))

    def _answer(self, status: int, body: bytes, headers: tuple[tuple[str, str], ...] = ()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the counters say what happened."""


class Server(ThreadingHTTPServer):
    """The threaded server, with its bucket and counters."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 256

    def __init__(self, rate: float | None, refuse: int = 0) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.bucket = RateLimit(rate, None, REAL_TIME)
        self.stats = Stats()
        # The first ``refuse`` batches are answered 429 whatever the rate, with Retry-After: 1.
        self._refusals = refuse
        self._lock = threading.Lock()

    def refusal(self, body: bytes) -> int | None:
        """1 (the seconds to wait) while batches are still to be refused, else None (``body``, the
        batch, is for a server that decides by it)."""
        with self._lock:
            if self._refusals <= 0:
                return None
            self._refusals -= 1
            return 1

    @property
    def url(self) -> str:
        """Where it listens."""
        return f"http://127.0.0.1:{self.server_address[1]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("port_file", type=Path)
    parser.add_argument("--rate", type=float, default=None, help="requests a second the server allows")
    args = parser.parse_args()
    server = Server(args.rate)
    args.port_file.write_text(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()

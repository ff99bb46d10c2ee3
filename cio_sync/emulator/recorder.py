"""What the emulator received: each API request with its answer, and the counters over them."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .faults import Fault
from .rules import Endpoint


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
    # When the request arrived and when its answer was decided (the emulator clock's monotonic time).
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


class Recorder:
    """The requests received, in the order they were answered (when ``keep_requests``), and
    counters over them, safe to use from the server's threads."""

    def __init__(self, keep_requests: bool) -> None:
        self.keep_requests = keep_requests
        self._lock = threading.Lock()
        self._requests: list[ReceivedRequest] = []
        self._statuses: Counter[int] = Counter()
        self._endpoints: Counter[str] = Counter()
        self._total = 0
        self._dropped = 0
        self._in_flight = 0
        self._peak = 0

    @contextmanager
    def in_flight(self, endpoint: Endpoint) -> Iterator[None]:
        """Count a request to ``endpoint`` as received, and as in flight while the block runs."""
        with self._lock:
            self._total += 1
            self._endpoints[endpoint.value] += 1
            self._in_flight += 1
            self._peak = max(self._peak, self._in_flight)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1

    def record(self, request: ReceivedRequest) -> None:
        """Count the answer to ``request`` (or its dropped connection), and keep it if asked to."""
        with self._lock:
            if request.status is None:
                self._dropped += 1
            else:
                self._statuses[request.status] += 1
            if self.keep_requests:
                self._requests.append(request)

    def requests(self) -> list[ReceivedRequest]:
        """Every request kept so far, in the order they were answered."""
        with self._lock:
            return list(self._requests)

    def counters(self) -> dict[str, Any]:
        """Requests received (in all and by endpoint), answers by status, dropped connections, and
        requests in flight now and at the peak."""
        with self._lock:
            return {
                "requests": self._total,
                "endpoints": dict(sorted(self._endpoints.items())),
                "statuses": {str(k): v for k, v in sorted(self._statuses.items())},
                "dropped": self._dropped,
                "in_flight": self._in_flight,
                "peak_in_flight": self._peak,
            }

    def clear(self) -> None:
        """Forget the requests and counters; requests still in flight stay counted as such."""
        with self._lock:
            self._requests.clear()
            self._statuses.clear()
            self._endpoints.clear()
            self._total = 0
            self._dropped = 0
            self._peak = self._in_flight

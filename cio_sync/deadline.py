"""A deadline on every attempt of a request, from connecting to the last byte of the answer.

A socket timeout only bounds each wait for a byte: a server that sends one byte a second, or a
body that never ends, holds a request forever. Here every attempt registers its connection with
one watchdog thread, which shuts the socket down when the attempt outlives its deadline (or
soon after the run is asked to stop): the read blocked on it returns at once, and the attempt
fails as a timeout. urllib3 builds connections from its pool classes, so the adapter installs
pool classes whose connections register themselves (:func:`watched_pools`).
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

# After a stop is asked for, requests in flight get this long to finish before they are cut.
STOP_GRACE = 2.0
# How often the watchdog looks at the clock while attempts are under way.
_TICK = 0.1


class _Watch:
    """One attempt: its connection, its deadline, and whether the watchdog cut it."""

    __slots__ = ("connection", "deadline", "fired")

    def __init__(self, connection: HTTPConnection, deadline: float) -> None:
        self.connection = connection
        self.deadline = deadline
        self.fired = False


class Traffic:
    """What went over the wire, counted where it happens: requests sent (resends included) and
    answers received, by status (the ones urllib3 resent after included)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sent = 0
        self.answers: Counter[int] = Counter()

    def add_request(self) -> None:
        with self._lock:
            self.sent += 1

    def add_answer(self, status: int) -> None:
        with self._lock:
            self.answers[status] += 1


class Watchdog:
    """Cuts every attempt that outlives ``limit`` seconds, and every one ``STOP_GRACE`` seconds
    after ``stop`` is set. One thread, started on first use; :meth:`close` ends it."""

    def __init__(self, limit: float, stop: threading.Event) -> None:
        self.limit = limit
        self.traffic = Traffic()
        self._stop = stop
        self._watches: set[_Watch] = set()
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def watch(self, connection: HTTPConnection) -> _Watch:
        """Start the clock on an attempt over ``connection``."""
        item = _Watch(connection, time.monotonic() + self.limit)
        with self._lock:
            self._watches.add(item)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="cio-sync-deadlines", daemon=True)
                self._thread.start()
            self._lock.notify()
        return item

    def release(self, item: _Watch) -> None:
        """The attempt is over (its answer read, or given up)."""
        with self._lock:
            self._watches.discard(item)

    def close(self) -> None:
        """Stop the watchdog thread."""
        with self._lock:
            self._closed = True
            self._lock.notify()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        with self._lock:
            while not self._closed:
                now = time.monotonic()
                stopping = self._stop.is_set()
                for item in list(self._watches):
                    if stopping:
                        item.deadline = min(item.deadline, now + STOP_GRACE)
                    if item.deadline <= now:
                        self._watches.discard(item)
                        item.fired = True
                        _cut(item.connection)
                self._lock.wait(_TICK if self._watches else None)


def _cut(connection: HTTPConnection) -> None:
    """Shut the socket down: a read blocked on it returns at once, in whichever thread."""
    sock = connection.sock
    if sock is not None:
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


# The attempt under way in this thread, set by :func:`attempt` around a request.
_current = threading.local()


class Attempt:
    """The attempts of one request made from this thread, each watched by ``watchdog``."""

    def __init__(self, watchdog: Watchdog) -> None:
        self.watchdog = watchdog
        self.watch: _Watch | None = None
        # True when the watchdog cut one of this request's attempts.
        self.cut = False

    def begin(self, connection: HTTPConnection) -> None:
        """A new attempt starts over ``connection``: the previous one, if any, is over."""
        self.end()
        self.watchdog.traffic.add_request()
        self.watch = self.watchdog.watch(connection)

    @property
    def last_cut(self) -> bool:
        """True when the watchdog cut the attempt under way (whatever its answer seemed to be)."""
        return self.watch is not None and self.watch.fired

    def end(self) -> None:
        """The current attempt is over."""
        if self.watch is not None:
            self.watchdog.release(self.watch)
            self.cut = self.cut or self.watch.fired
            self.watch = None


@contextmanager
def attempt(watchdog: Watchdog) -> Iterator[Attempt]:
    """Watch every attempt made from this thread in the ``with`` block."""
    current = Attempt(watchdog)
    _current.attempt = current
    try:
        yield current
    finally:
        _current.attempt = None
        current.end()


class _Watched:
    """Mixed into urllib3's connections: each request on one starts a watched attempt."""

    def request(self, *args: Any, **kwargs: Any) -> None:
        current: Attempt | None = getattr(_current, "attempt", None)
        if current is not None:
            assert isinstance(self, HTTPConnection)
            if self.sock is None:
                # Connected first, under the connect timeout, so the deadline covers the answer.
                self.connect()
            current.begin(self)
        super().request(*args, **kwargs)  # type: ignore[misc]  # the urllib3 connection's own

    def getresponse(self) -> Any:
        response = super().getresponse()  # type: ignore[misc]  # the urllib3 connection's own
        current: Attempt | None = getattr(_current, "attempt", None)
        if current is not None:
            current.watchdog.traffic.add_answer(response.status)
        return response


class WatchedHTTPConnection(_Watched, HTTPConnection):
    """An HTTP connection whose every request is watched."""


class WatchedHTTPSConnection(_Watched, HTTPSConnection):
    """An HTTPS connection whose every request is watched."""


class WatchedHTTPConnectionPool(HTTPConnectionPool):
    """A pool of watched HTTP connections."""

    ConnectionCls = WatchedHTTPConnection


class WatchedHTTPSConnectionPool(HTTPSConnectionPool):
    """A pool of watched HTTPS connections."""

    ConnectionCls = WatchedHTTPSConnection


def watched_pools() -> dict[str, type[HTTPConnectionPool]]:
    """Pool classes for a urllib3 PoolManager (or ProxyManager) whose connections are watched."""
    return {"http": WatchedHTTPConnectionPool, "https": WatchedHTTPSConnectionPool}

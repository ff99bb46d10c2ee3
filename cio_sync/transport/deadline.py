"""A deadline on every attempt of a request, from connecting to the last byte of the answer.

A socket timeout only bounds each wait for a byte: a server that sends one byte a second, or a
body that never ends, holds a request forever. Here every attempt registers its socket with one
watchdog thread, which shuts the socket down when the attempt outlives its deadline (or soon
after the run is asked to stop): the read blocked on it returns at once, and the attempt fails
as a timeout. A connection still being opened is registered too, from before its handshake
begins, and is cut as soon as the run is asked to stop: nothing has been sent over it. urllib3
builds connections from its pool classes, so the adapter installs pool classes whose
connections register themselves (:func:`watched_pools`).

The same connections read past interim answers (``1xx``) to the final one: Python's
``http.client`` skips ``100 Continue`` only, and would take a ``103 Early Hints`` for the answer.
"""

from __future__ import annotations

import http.client
import math
import socket
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import allowed_gai_family

from ..clock import SYSTEM_CLOCK, Clock
from .pacing import Cancelled

# After a stop is asked for, requests in flight get this long to finish before they are cut.
# Connections still being opened are cut at the next tick.
STOP_GRACE = 2.0
# How often the watchdog looks at the clock, for as long as the run lasts: deadlines and a stop's
# cuts take effect within a tick.
_TICK = 0.1


class _Watch:
    """One attempt (or one connection being opened): its socket, its deadline, and whether the
    watchdog cut it."""

    __slots__ = ("connecting", "deadline", "fired", "target")

    def __init__(self, target: HTTPConnection | socket.socket, deadline: float, connecting: bool) -> None:
        self.target = target
        self.deadline = deadline
        self.connecting = connecting
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
    """Cuts every attempt that outlives ``limit`` seconds, every one ``STOP_GRACE`` seconds after
    ``stop`` is set, and every connection still being opened when ``stop`` is set. Deadlines are
    read from ``clock``. One thread, started on first use; :meth:`close` ends it."""

    def __init__(self, limit: float, stop: threading.Event, clock: Clock = SYSTEM_CLOCK) -> None:
        self.limit = limit
        self.traffic = Traffic()
        self._stop = stop
        self._clock = clock
        self._watches: set[_Watch] = set()
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def watch(self, target: HTTPConnection | socket.socket, connecting: bool = False) -> _Watch:
        """Start the clock on an attempt over ``target``: a connection, or a socket being connected."""
        # A connect is bounded by its own timeout; only a stop cuts it short.
        deadline = math.inf if connecting else self._clock.monotonic() + self.limit
        item = _Watch(target, deadline, connecting)
        with self._lock:
            self._watches.add(item)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="cio-sync-deadlines", daemon=True)
                self._thread.start()
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
                now = self._clock.monotonic()
                stopping = self._stop.is_set()
                for item in list(self._watches):
                    if stopping:
                        item.deadline = min(item.deadline, now if item.connecting else now + STOP_GRACE)
                    if item.deadline <= now:
                        item.fired = True
                        _cut(item.target)
                        # A connect cut before it began is not aborted (a socket not yet
                        # connecting has nothing to shut down): cut it again at every tick
                        # until the connecting thread lets go of it.
                        if not item.connecting:
                            self._watches.discard(item)
                # Every tick, watched or not, rather than woken for each attempt: that was a
                # wake-up and two context switches a request (500 a second on v1), and an
                # attempt begun meanwhile is looked at within a tick all the same.
                self._lock.wait(_TICK)


def _cut(target: HTTPConnection | socket.socket) -> None:
    """Shut the socket down: a read blocked on it returns at once, in whichever thread, and so
    does a connect (Linux aborts a handshake under way on shutdown and wakes its waiter)."""
    sock = target if isinstance(target, socket.socket) else target.sock
    if sock is not None:
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class ConnectCut(Cancelled):
    """A stop cut a connection while it was being opened: nothing went over it."""


# The attempt under way in this thread, set by :func:`attempt` around a request.
_current = threading.local()


class Attempt:
    """The attempts of one request made from this thread, each watched by ``watchdog``."""

    def __init__(self, watchdog: Watchdog) -> None:
        self.watchdog = watchdog
        self.watch: _Watch | None = None
        self._opening: _Watch | None = None
        # True when the watchdog cut one of this request's attempts.
        self.cut = False
        # Attempts sent (or begun being sent) so far.
        self.sent = 0

    def opening(self, sock: socket.socket) -> None:
        """``sock`` is about to connect: a stop cuts it until :meth:`opened`."""
        self._opening = self.watchdog.watch(sock, connecting=True)

    def opened(self) -> None:
        """The connection is open (or failed to open); raise :class:`Cancelled` when a stop cut it."""
        watch, self._opening = self._opening, None
        if watch is not None:
            self.watchdog.release(watch)
            if watch.fired:
                raise ConnectCut("the run stopped while a connection was being opened")

    def begin(self, connection: HTTPConnection) -> None:
        """A new attempt starts over ``connection``: the previous one, if any, is over."""
        self.end()
        self.sent += 1
        self.watchdog.traffic.add_request()
        self.watch = self.watchdog.watch(connection)

    @property
    def last_cut(self) -> bool:
        """True when the watchdog cut the attempt under way (whatever its answer seemed to be)."""
        return self.watch is not None and self.watch.fired

    def end(self) -> None:
        """The current attempt is over."""
        if self._opening is not None:
            self.watchdog.release(self._opening)
            self._opening = None
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


class SwitchedProtocols(http.client.HTTPException):
    """The server answered ``101 Switching Protocols``: no answer to the request will come."""

    def __init__(self) -> None:
        super().__init__("the server switched protocols (HTTP 101) instead of answering")


class FinalResponse(http.client.HTTPResponse):
    """An ``http.client`` response that reads past every interim (1xx) answer to the final one.

    ``HTTPResponse.begin`` skips the status line and headers of ``100 Continue`` and takes any
    other status for the answer. A ``103 Early Hints`` (or ``102 Processing``) would then be read
    as the answer, and the real one left on the connection for the next request to read.
    """

    def _read_status(self) -> tuple[str, int, str]:
        # Private hook, on purpose: ``_read_status`` reads one status line, and ``begin`` (public,
        # but reimplementing it would copy all of its header handling) loops past a 100 and its
        # headers. Handing it any other interim status as a 100 makes it skip those as well.
        # http.client offers no public way to see an interim answer; tests/test_retry.py checks
        # this hook on the installed Python.
        version, status, reason = super()._read_status()  # type: ignore[misc]  # private, not in the stubs
        if status == http.client.SWITCHING_PROTOCOLS:
            # A PUT or POST is not upgraded: what follows on the connection is not HTTP, and
            # urllib3 closes a connection whose answer raised.
            self.close()
            raise SwitchedProtocols
        if 100 <= status < 200:
            return version, http.client.CONTINUE, reason
        return version, status, reason


class _Watched:
    """Mixed into urllib3's connections: a stop cuts a connection being opened, each request
    starts a watched attempt, and answers are read past interim ones."""

    # http.client (and urllib3's proxy tunnel) builds each response from this class attribute:
    # public, though the Python docs do not list it; tests/test_retry.py checks it is still used.
    response_class: type[http.client.HTTPResponse] = FinalResponse

    def _new_conn(self) -> socket.socket:
        # Private hook, on purpose: urllib3 opens the socket inside ``_new_conn`` and hands it
        # over only once connected, so a stop could not cut a handshake that never completes (a
        # full listen backlog holds it for the whole connect timeout). This one registers the
        # socket with the watchdog before connecting, and raises urllib3's own exceptions
        # exactly as its ``_new_conn`` does. tests/test_retry.py checks the hook is still called.
        current: Attempt | None = getattr(_current, "attempt", None)
        if current is None:
            return super()._new_conn()  # type: ignore[misc, no-any-return]  # the urllib3 connection's own
        assert isinstance(self, HTTPConnection)
        try:
            sock = _open(self, current)
        except socket.gaierror as e:
            raise NameResolutionError(self.host, self, e) from e
        except TimeoutError as e:
            message = f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
            raise ConnectTimeoutError(self, message) from e
        except OSError as e:
            raise NewConnectionError(self, f"Failed to establish a new connection: {e}") from e
        sys.audit("http.client.connect", self, self.host, self.port)
        return sock

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


def _open(connection: HTTPConnection, current: Attempt) -> socket.socket:
    """A socket connected to ``connection``'s host, cut by a stop from before its handshake begins.

    What urllib3's ``create_connection`` does (every address in turn, socket options, the
    connect timeout, the source address), plus the registration. The TLS handshake that may
    follow is bounded by the connect timeout alone: wrapping detaches the socket watched here.
    """
    host = connection.host.strip("[]")
    error: OSError | None = None
    for family, kind, proto, _, address in socket.getaddrinfo(
        host, connection.port, allowed_gai_family(), socket.SOCK_STREAM
    ):
        sock = socket.socket(family, kind, proto)
        try:
            for option in connection.socket_options or ():
                sock.setsockopt(*option)
            timeout = connection.timeout
            if timeout is None or isinstance(timeout, (int, float)):  # else urllib3's "default" token
                sock.settimeout(timeout)
            if connection.source_address:
                sock.bind(connection.source_address)
            current.opening(sock)
            try:
                sock.connect(address)
            finally:
                current.opened()  # raises Cancelled when a stop cut the handshake
        except OSError as e:
            error = e
            sock.close()
        except BaseException:
            sock.close()
            raise
        else:
            return sock
    raise error if error is not None else OSError("getaddrinfo returns an empty list")


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


class WatchedAdapter(HTTPAdapter):
    """A requests adapter whose connections, direct or through a proxy, are watched for their
    deadline and read past interim answers: the extension points requests documents for
    subclasses of HTTPAdapter."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """The PoolManager, building watched connections."""
        super().init_poolmanager(*args, **kwargs)
        # ``pool_classes_by_scheme`` is a public attribute of urllib3's PoolManager, read each
        # time it builds a pool; tests/test_retry.py checks that it still is.
        self.poolmanager.pool_classes_by_scheme = watched_pools()

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        """The ProxyManager for ``proxy``, building watched connections."""
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = watched_pools()
        return manager

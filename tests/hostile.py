"""Small hostile HTTP servers on 127.0.0.1, written with raw sockets so they can misbehave freely.

Each :class:`HostileServer` accepts connections on port 0, reads every request (head and body),
records the raw bytes it received, and answers with one of the behaviours below. Everything stops
when the server is closed, so a test never leaves a thread dripping bytes behind it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

# What a behaviour gets: the connection, the raw request it answers, and the server's stop event
# (set when the test is over: every loop must end when it is). True: keep the connection open.
Behaviour = Callable[[socket.socket, bytes, threading.Event], "bool | None"]

REGION_ANSWER = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{"region":"us"}'


class HostileServer:
    """An HTTP server on loopback that answers every request with ``behaviour``.

    With ``honest_check`` the credentials check (``GET /api/v1/accounts/region``) gets a normal
    answer, so that the run goes on to the requests under test.
    """

    def __init__(self, behaviour: Behaviour, honest_check: bool = True) -> None:
        self.behaviour = behaviour
        self.honest_check = honest_check
        self.received: list[bytes] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._threads: list[threading.Thread] = []
        self._connections: list[socket.socket] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def requests(self) -> list[bytes]:
        """The raw requests received so far (head and body), in arrival order."""
        with self._lock:
            return list(self.received)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._connections.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with suppress(OSError), conn:
            buffer = b""
            while not self._stop.is_set():
                request, buffer = read_request(conn, buffer)
                if request is None:
                    return
                with self._lock:
                    self.received.append(request)
                if self.honest_check and request.startswith(b"GET /api/v1/accounts/region"):
                    conn.sendall(REGION_ANSWER)
                    continue
                if not self.behaviour(conn, request, self._stop):
                    return

    def close(self) -> None:
        """Stop every behaviour, close every connection and the listener."""
        self._stop.set()
        self._listener.close()
        with self._lock:
            for conn in self._connections:
                with suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
        for thread in self._threads:
            thread.join(timeout=10)


def read_request(conn: socket.socket, buffer: bytes) -> tuple[bytes | None, bytes]:
    """One request (head and Content-Length body) from ``conn``; None when the client closed."""
    while b"\r\n\r\n" not in buffer:
        data = conn.recv(65536)
        if not data:
            return None, b""
        buffer += data
    head, _, rest = buffer.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        data = conn.recv(65536)
        if not data:
            return None, b""
        rest += data
    return head + b"\r\n\r\n" + rest[:length], rest[length:]


@contextmanager
def hostile(behaviour: Behaviour, honest_check: bool = True) -> Iterator[HostileServer]:
    """A :class:`HostileServer` for the length of a ``with`` block."""
    server = HostileServer(behaviour, honest_check)
    try:
        yield server
    finally:
        server.close()


def drip_body(interval: float = 0.5) -> Behaviour:
    """Headers at once, then the body one byte every ``interval`` seconds, never finishing."""

    def behave(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
        while not stop.wait(interval):
            conn.sendall(b" ")

    return behave


def drip_status_line(interval: float = 0.5, at_once: int = 0, sent: list[int] | None = None) -> Behaviour:
    """The status line and headers one byte every ``interval`` seconds, over and over; with
    ``at_once``, that many bytes first, straight away (then their count is added to ``sent``)."""

    def behave(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
        text = b"HTTP/1.1 200 OK\r\nX-Padding: " + b"a" * 100000
        if at_once:
            conn.sendall(text[:at_once])
            if sent is not None:
                sent.append(at_once)
        for byte in text[at_once:]:
            if stop.wait(interval):
                return
            conn.sendall(bytes([byte]))

    return behave


def endless_chunked(chunk: bytes = b"x" * 1024) -> Behaviour:
    """A chunked body that never ends, sent as fast as the client reads it."""

    def behave(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n")
        frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        while not stop.is_set():
            conn.sendall(frame)

    return behave


def huge_body(size: int = 300_000_000, status: bytes = b"400 Bad Request") -> Behaviour:
    """An answer with a body of ``size`` bytes (announced by Content-Length), sent at full speed."""

    def behave(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 " + status + f"\r\nContent-Length: {size}\r\n\r\n".encode())
        block = b"y" * 65536
        sent = 0
        while sent < size and not stop.is_set():
            conn.sendall(block[: size - sent])
            sent += len(block)

    return behave


def answer(status: bytes = b"200 OK", body: bytes = b"{}", headers: bytes = b"") -> Behaviour:
    """One plain answer (the status, extra header lines ending in CRLF, and the body)."""

    def behave(conn: socket.socket, request: bytes, stop: threading.Event) -> bool:
        conn.sendall(b"HTTP/1.1 " + status + b"\r\n" + headers + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        return True

    return behave


def refuse_connect() -> Behaviour:
    """A proxy that records the request (a CONNECT, or a request in the clear) and refuses it."""
    return answer(b"403 Forbidden", b"")


def hang_up() -> Behaviour:
    """Read the request, then close the connection without a word."""

    def behave(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
        return None

    return behave


def interim(preludes: bytes, final: Behaviour) -> Behaviour:
    """Interim answers (``preludes``: whole 1xx status lines and headers, each ending in a blank
    line) sent at once, then ``final``'s answer."""

    def behave(conn: socket.socket, request: bytes, stop: threading.Event) -> bool | None:
        conn.sendall(preludes)
        return final(conn, request, stop)

    return behave


def in_turn(*behaviours: Behaviour) -> Behaviour:
    """The first request gets the first behaviour, the next the next; the last one repeats."""
    served = [0]
    lock = threading.Lock()

    def behave(conn: socket.socket, request: bytes, stop: threading.Event) -> bool | None:
        with lock:
            index = min(served[0], len(behaviours) - 1)
            served[0] += 1
        return behaviours[index](conn, request, stop)

    return behave


def echo_credentials(status: bytes = b"400 Bad Request", template: bytes = b'{"meta": {"error": "%s"}}') -> Behaviour:
    """An answer whose body quotes the request's Authorization header back (as some proxies and
    APIs do in their error messages): ``template`` with ``%s`` standing for the header line."""

    def behave(conn: socket.socket, request: bytes, stop: threading.Event) -> bool | None:
        head = request.split(b"\r\n\r\n", 1)[0]
        quoted = next((line for line in head.split(b"\r\n") if line.lower().startswith(b"authorization:")), b"")
        return answer(status, template.replace(b"%s", quoted))(conn, request, stop)

    return behave


class Unanswered:
    """A loopback address where a connection never completes its handshake.

    A listening socket with a backlog of one queued connection, filled by a connection that is
    never accepted: the kernel drops every further SYN, and the client waits in ``SYN_SENT``
    until its connect timeout.
    """

    def __init__(self) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.fillers: list[socket.socket] = []

    def fill(self) -> None:
        """Fill the backlog: from now on, no connection completes."""
        filler = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        self.fillers.append(filler)

    def connecting(self) -> bool:
        """True when some client waits for the handshake (a socket in ``SYN_SENT`` to this port)."""
        port = f"{self.port:04X}"
        with open("/proc/net/tcp") as table:
            next(table)
            for line in table:
                fields = line.split()
                if fields[2].endswith(":" + port) and fields[3] == "02":  # 02: SYN_SENT
                    return True
        return False

    def close(self) -> None:
        """Close the fillers and the listener."""
        for filler in self.fillers:
            filler.close()
        self.listener.close()


@contextmanager
def unanswered() -> Iterator[Unanswered]:
    """An :class:`Unanswered` address, its backlog filled, for the length of a ``with`` block."""
    server = Unanswered()
    try:
        server.fill()
        yield server
    finally:
        server.close()

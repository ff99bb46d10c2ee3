"""The emulator's faults of the second round: writes a gateway applied after answering 5xx, and
informational answers before the real one. Raw sockets, so that what goes over the wire is seen."""

from __future__ import annotations

import base64
import json
import socket
from urllib.parse import urlsplit

from cio_sync.emulator import Emulator, Fault

from .conftest import API_KEY, SITE_ID, wait_until


def _put(url: str, person: str, body: dict[str, object]) -> bytes:
    """One raw v1 PUT; everything the server sent back until it closed or went quiet."""
    parts = urlsplit(url)
    data = json.dumps(body).encode()
    token = base64.b64encode(f"{SITE_ID}:{API_KEY}".encode()).decode()
    head = (
        f"PUT /api/v1/customers/{person} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Basic {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head.encode() + data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def test_a_5xx_whose_write_is_applied_after_the_answer() -> None:
    with Emulator(SITE_ID, API_KEY) as emu:
        emu.add_fault(Fault(status=504, apply_after=0.2, person="Y"))
        answer = _put(emu.url, "Y", {"name": "late"})
        assert answer.startswith(b"HTTP/1.1 504")
        wait_until(lambda: emu.stats()["in_flight"] == 0)
        assert emu.people()["Y"] == {"name": "late"}


def test_informational_answers_come_before_the_real_one() -> None:
    with Emulator(SITE_ID, API_KEY) as emu:
        emu.add_fault(Fault.parse("hints=2,person=Y"))
        answer = _put(emu.url, "Y", {"name": "v"})
        assert answer.count(b"HTTP/1.1 103 Early Hints\r\n") == 2
        assert answer.index(b"HTTP/1.1 200") > answer.rindex(b"103 Early Hints")
        assert emu.people()["Y"] == {"name": "v"}


def test_apply_after_needs_a_status_and_hints_a_sane_count() -> None:
    for text in ("apply-after=1", "hints=0", "hints=11", "status=500,hints=1"):
        try:
            Fault.parse(text)
        except ValueError:
            continue
        raise AssertionError(f"{text} was accepted")

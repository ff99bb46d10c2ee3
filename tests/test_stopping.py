"""Signals are always heard: while standard input stalls, during a hanging credentials check or
request. (A second signal quitting at once: tests/test_cli.py.)"""

from __future__ import annotations

import array
import fcntl
import json
import signal
import socket
import subprocess
import termios
from typing import IO

import pytest

from cio_sync.emulator import Emulator

from .conftest import (
    CLI,
    Files,
    Spawn,
    checked,
    cli_env,
    config_dict,
    deadlines_on,
    finish,
    run_cli,
    signalled,
    wait_until,
)
from .fakeclock import FakeClock
from .hostile import drip_status_line, hostile


def unread(pipe: IO[bytes] | socket.socket) -> int:
    """How many bytes written to ``pipe`` (or sent to a socket) its reader has not read yet."""
    buffer = array.array("i", [0])
    fcntl.ioctl(pipe.fileno(), termios.FIONREAD, buffer)
    return buffer[0]


def test_sigterm_while_standard_input_stalls_stops_at_once(emulator: Emulator, files: Files) -> None:
    args = ["--config", files.config(config_dict(emulator.url)), "--data", "-", "--report", str(files.root / "r.json")]
    proc = subprocess.Popen(
        [*CLI, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env(None)
    )
    stdin = proc.stdin
    assert stdin is not None
    stdin.write(b'[{"id": 1}')
    stdin.flush()
    try:
        wait_until(lambda: unread(stdin) == 0)  # it is reading standard input, and waits for more
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    run = checked(proc.returncode, stdout.decode(), stderr.decode())
    assert run.code == 143, run.stderr
    assert run.stderr == "cio-sync: error: terminated before anything was sent\n"
    # Stopped while the data file was being checked: the run never went ahead, and writes nothing.
    assert not (files.root / "r.json").exists()
    assert emulator.requests() == []


# In this process: the signal reaches the command's own handler as it would in its own process,
# and the grace a stop gives the requests in flight runs out on a fake clock rather than in real
# seconds. That a real process exits 143 on SIGTERM: test_cli.py's signal tests.


def test_sigterm_during_a_hanging_credentials_check_stops(files: Files, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    with hostile(drip_status_line(0.05), honest_check=False) as server, deadlines_on(clock, monkeypatch):
        args = ["--config", files.config(config_dict(server.url)), "--data", files.data([{"id": 1}])]
        with signalled(signal.SIGTERM, lambda: len(server.requests()) == 1, clock):
            run = run_cli([*args, "--timeout", "3600"])
    assert run.code == 143, run.stderr
    assert "1 record: 0 synced, 0 failed, 0 invalid, 1 not attempted" in run.stderr


def test_sigterm_cuts_requests_that_would_hang_and_accounts_for_them(
    files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock, sent = FakeClock(), list[int]()
    # The status line at once, as a server that goes on to hang would (and as the grace's two
    # seconds of dripping would have brought it): the cut comes while the headers do.
    with (
        hostile(drip_status_line(0.05, at_once=17, sent=sent)) as server,
        deadlines_on(clock, monkeypatch) as watchdogs,
    ):

        def both_status_lines_read() -> bool:
            # The check, then both PUTs, each of whose status line has left the server and been
            # taken in by the command (nothing of it waits unread on the command's sockets).
            if len(server.requests()) < 3 or len(sent) < 2:
                return False
            socks = [w.target.sock for dog in watchdogs for w in list(dog._watches) if not w.connecting]
            return len(socks) == 2 and all(s is not None and unread(s) == 0 for s in socks)

        args = ["--config", files.config(config_dict(server.url)), "--data", files.data([{"id": 1}, {"id": 2}])]
        with signalled(signal.SIGTERM, both_status_lines_read, clock):
            run = run_cli([*args, "--timeout", "3600", "--failed", str(files.root / "failed.json")])
    assert run.code == 143, run.stderr
    assert "failed: the run stopped before its answer came (it may have been applied)" in run.stderr
    assert "2 records: 0 synced, 2 failed, 0 invalid" in run.stderr
    assert sorted(json.loads((files.root / "failed.json").read_text()), key=str) == [{"id": 1}, {"id": 2}]


def test_sigint_during_a_dry_run_stops_at_once(emulator: Emulator, files: Files, spawn_cli: Spawn) -> None:
    # Enough records that the plan is still being made when its opening line has been read.
    data = files.data(b"[" + b",".join(b'{"id": %d}' % i for i in range(300_000)) + b"]")
    report = files.root / "report.json"
    args = ["--config", files.config(config_dict(emulator.url)), "--data", data, "--dry-run", "--report", str(report)]
    proc = spawn_cli(args)
    assert proc.stderr is not None
    assert proc.stderr.readline().startswith("cio-sync: dry run: checking 300,000 records from ")
    proc.send_signal(signal.SIGINT)
    run = finish(proc)
    assert run.code == 130, run.stderr
    assert run.stderr == "cio-sync: error: interrupted before anything was sent\n"
    assert json.loads(report.read_text())["exit_code"] == 130
    assert emulator.requests() == []

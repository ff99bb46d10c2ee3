"""``cio-sync verify`` keeps its promise whatever comes: no credential shown or written, signals
heard, and any App API (or anything answering in its place) ends the run cleanly.

Every run is against a server on 127.0.0.1: in-process, but for the signals, which are sent to the
command as its own process.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import pytest

from cio_sync.emulator import Emulator
from cio_sync.input.config import config_from_dict
from cio_sync.readback import Options, ReadStatus, verify

from .conftest import (
    API_KEY,
    SITE_ID,
    Files,
    Run,
    assert_no_secret,
    checked,
    cli_env,
    deadlines_on,
    signalled,
    wait_until,
)
from .fakeclock import FakeClock
from .hostile import Behaviour, answer, drip_body, drip_status_line, hang_up, hostile, huge_body, unanswered
from .test_stopping import unread
from .test_verify import APP_KEY, VERIFY, document, people, run_verify

# Every form a key could be shown in (a part of one too: a message cut short must not show half).
SHOWN_FORMS = (APP_KEY, API_KEY, f"Bearer {APP_KEY}", APP_KEY[4:14])


def assert_no_key(*texts: str | None) -> None:
    """Fail if any text shows a key, whole or in part."""
    assert_no_secret(*texts)
    for text in texts:
        for form in SHOWN_FORMS:
            assert form not in (text or ""), f"a key appeared: {form!r}"


def lines_of(run: Run) -> list[str]:
    """Its standard error's lines, each shown to be one of cio-sync's own."""
    lines = run.stderr.splitlines()
    assert all(line.startswith("cio-sync: ") for line in lines), run.stderr
    return lines


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(SITE_ID, API_KEY, app_api_key=APP_KEY) as emulator:
        yield emulator


# -- credentials ----------------------------------------------------------------------------------


def echo_the_key(status: bytes) -> Behaviour:
    """An error answer quoting the request's Authorization header, the key plainly and
    JSON-escaped, the last one where a message is cut short."""

    def behave(conn: socket.socket, request: bytes, stop: threading.Event) -> bool | None:
        head = request.split(b"\r\n\r\n")[0].decode()
        authorization = next(line for line in head.split("\r\n") if line.lower().startswith("authorization:"))
        said = f"refused {authorization}; key {APP_KEY}; "
        # The last key straddles the 300th character, where a message is cut short.
        text = said + "x" * (285 - len(said)) + f" {APP_KEY}"
        body = ('{"meta": {"error": "' + text.replace(APP_KEY, APP_KEY.replace("a", "\\u0061"), 1) + '"}}').encode()
        return answer(status, body, b"Content-Type: application/json\r\n")(conn, request, stop)

    return behave


@pytest.mark.parametrize(
    ("status", "code"),
    [(b"400 Bad Request", 2), (b"401 Unauthorized", 3), (b"501 Not Implemented", 4)],
)
def test_an_error_answer_quoting_the_key_never_shows_it(files: Files, status: bytes, code: int) -> None:
    report = files.root / "report.json"
    with hostile(echo_the_key(status)) as server:
        config, data = files.config(document(server.url)), files.data(people(3))
        run = run_verify(["--config", config, "--data", data, "--report", str(report), "--retries", "0"])
        sent = b"".join(server.requests()).decode()
    assert run.code == code, run.stderr
    assert f"Bearer {APP_KEY}" in sent  # the key went where it belongs, and only there
    written = report.read_text(encoding="utf-8")
    assert_no_key(run.stdout, run.stderr, written)
    assert json.loads(written)["summary"]["exitCode"] == code
    if code != 3:  # the refusal's own words are quoted, masked
        assert "refused Authorization: Bearer [redacted]" in run.stderr
        assert "[redacted]" in json.loads(written)["summary"]["error"]
    assert sum("error:" in line for line in lines_of(run)) == 1


def test_values_holding_a_key_are_masked_except_in_failed(emu: Emulator, files: Files) -> None:
    records: list[dict[str, Any]] = [
        {"id": "1", "name": "one", "plan": "pro"},
        {"id": "2", "name": f"pasted {API_KEY} here", "plan": "pro"},
        {"id": "3", "name": "three", "plan": "pro", "v": {"nested": [APP_KEY]}},
        {"id": APP_KEY, "name": "an id pasted from the wrong place"},
    ]
    emu.add_person(id="1", attributes={"name": "one", "plan": f"Bearer {APP_KEY}"})
    emu.add_person(id="2", attributes={"name": "two", "plan": "pro"})
    emu.add_person(id="3", attributes={"name": "three", "plan": "pro"})
    failed, report = files.root / "fix.json", files.root / "report.json"
    config, data = files.config(document(emu.url)), files.data(records)
    run = run_verify(["--config", config, "--data", data, "--failed", str(failed), "--report", str(report)])
    assert run.code == 1, run.stderr
    written = report.read_text(encoding="utf-8")
    assert_no_key(run.stdout, run.stderr, written)
    assert 'cio-sync:   1: "plan" is "pro" in the file, "Bearer [redacted]" in the workspace' in run.stderr
    assert 'cio-sync:   2: "name" is "pasted [redacted] here" in the file, "two" in the workspace' in run.stderr
    assert 'cio-sync:   3: "v" is {"nested":["[redacted]"]} in the file, nothing in the workspace' in run.stderr
    assert "cio-sync:   [redacted]: missing from the workspace" in run.stderr
    found = json.loads(written)["people"]
    assert {"person": "[redacted]", "verdict": "missing"} in found
    differences = [d for person in found for d in person.get("differences", [])]
    assert {"attribute": "v", "file": {"nested": ["[redacted]"]}, "workspace": None} in differences
    # --failed is the user's data to feed back: byte for byte, keys and all.
    assert json.loads(failed.read_text(encoding="utf-8")) == records


# -- signals --------------------------------------------------------------------------------------


class Child:
    """``cio-sync verify`` running in the background, its standard error read as it comes."""

    def __init__(self, args: list[str], stdin: int | None = subprocess.DEVNULL) -> None:
        self.proc = subprocess.Popen(
            [*VERIFY, *args], stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env()
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def finish(self, timeout: float = 20) -> Run:
        try:
            self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=10)
        assert self.proc.stdout is not None
        stdout = self.proc.stdout.read()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        run = checked(self.proc.returncode, stdout, "".join(self.lines))
        assert_no_key(run.stdout, run.stderr)
        return run


@pytest.fixture
def children() -> Iterator[Callable[..., Child]]:
    started: list[Child] = []

    def start(args: list[str], stdin: int | None = subprocess.DEVNULL) -> Child:
        started.append(Child(args, stdin))
        return started[-1]

    yield start
    for child in started:
        if child.proc.poll() is None:
            child.proc.kill()
            child.proc.wait()


def slow_verify(
    emu: Emulator, files: Files, start: Callable[..., Child], report: str | None = None, delay: float = 30
) -> Child:
    """A verify of 450 people (5 requests) whose every request takes ``delay`` seconds, once one
    is under way."""
    emu.add_fault(delay=delay, endpoint="app-people", times=None)
    config, data = files.config(document(emu.url)), files.data(people(450))
    report = report or str(files.root / "report.json")
    child = start(["--config", config, "--data", data, "--failed", str(files.root / "fix.json"), "--report", report])
    wait_until(lambda: emu.stats()["in_flight"] >= 1)
    return child


def left_behind(files: Files) -> list[str]:
    """What the run left in its directory besides its inputs (no output, no temporary file)."""
    return sorted(p.name for p in files.root.iterdir() if p.name not in ("configuration.json", "data.json"))


@pytest.mark.parametrize(
    ("signum", "code", "said"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "SIGTERM received")],
)
def test_a_signal_while_reading_back_stops_it_promptly(
    emu: Emulator, files: Files, monkeypatch: pytest.MonkeyPatch, signum: int, code: int, said: str
) -> None:
    # In this process, the signal taken by the command's own handler as in its own process (that
    # one exits with the code: test_a_second_signal_quits_at_once, test_a_report_on_standard_output
    # _is_whole_or_not_there); the grace runs out on a fake clock rather than in real seconds.
    emu.add_fault(delay=30, endpoint="app-people", times=None)
    config, data = files.config(document(emu.url)), files.data(people(450))
    clock = FakeClock()
    args = ["--config", config, "--data", data, "--failed", str(files.root / "fix.json")]
    with deadlines_on(clock, monkeypatch), signalled(signum, lambda: emu.stats()["in_flight"] >= 1, clock):
        run = run_verify([*args, "--report", str(files.root / "report.json")])
    # Not the 30 s the request in flight would take: it gets a short grace, then is cut.
    assert emu.stats()["in_flight"] >= 1
    assert run.code == code, run.stderr
    assert_no_key(run.stdout, run.stderr)
    assert lines_of(run)[1:] == [
        f"cio-sync: {said}: stopping before every person is read back; --failed {files.root / 'fix.json'} "
        f"and --report {files.root / 'report.json'} will not be written "
        f"({'Ctrl-C again' if signum == signal.SIGINT else 'send it again'} to quit at once)"
    ]
    assert left_behind(files) == []


def test_a_second_signal_quits_at_once(emu: Emulator, files: Files, children: Callable[..., Child]) -> None:
    child = slow_verify(emu, files, children)
    child.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: any("SIGTERM received" in line for line in child.lines))
    child.proc.send_signal(signal.SIGTERM)
    run = child.finish()
    assert run.code == 143, run.stderr
    assert left_behind(files) == []


def test_a_signal_while_the_data_file_stalls_ends_the_run_at_once(
    emu: Emulator, files: Files, children: Callable[..., Child]
) -> None:
    config, report = files.config(document(emu.url)), files.root / "report.json"
    child = children(["--config", config, "--data", "-", "--report", str(report)], stdin=subprocess.PIPE)
    stdin = child.proc.stdin
    assert stdin is not None
    stdin.write('[{"id": "1", "name": "one"}')
    stdin.flush()
    wait_until(lambda: unread(cast(Any, stdin)) == 0)  # it has read what came, and waits for more
    child.proc.send_signal(signal.SIGINT)
    run = child.finish()
    assert run.code == 130, run.stderr
    assert lines_of(run) == [
        f"cio-sync: interrupted: stopping before every person is read back; --report {report} will not be written"
    ]
    assert not report.exists() and emu.stats()["requests"] == 0


# -- hostile App APIs -----------------------------------------------------------------------------


def raw(data: bytes) -> Behaviour:
    """Answer with exactly these bytes, then keep the connection open."""

    def behave(conn: socket.socket, request: bytes, stop: threading.Event) -> bool:
        conn.sendall(data)
        return True

    return behave


def ok(body: bytes) -> Behaviour:
    return answer(b"200 OK", body, b"Content-Type: application/json\r\n")


NO_ONE = b'{"customers": []}'
DEEP = b'{"customers": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
EARLY_HINTS = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
FINAL = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(NO_ONE), NO_ONE)

# What the server does (given another server's URL to redirect to), the exit code, and what the one
# error line says. Everyone is missing (exit 1) when an answer that holds no one is read.
CASES: dict[str, tuple[Callable[[str], Behaviour], int, str]] = {
    "200 not JSON": (lambda _: ok(b"<html>" + APP_KEY.encode() + b"</html>"), 4, "without a list of customers"),
    "200 another shape": (lambda _: ok(b'{"customers": [1, 2]}'), 4, "without a list of customers"),
    "200 attributes not an object": (
        lambda _: ok(b'{"customers": [{"customer": {"identifiers": {"id": "0"}, "attributes": "x"}}]}'),
        4,
        "without a list of customers",
    ),
    "200 nested too deep": (lambda _: ok(DEEP), 4, "without a list of customers"),
    "200 huge": (lambda _: huge_body(40_000_000, b"200 OK"), 4, "answered more than 32 MB"),
    "connection dropped": (lambda _: hang_up(), 4, "the connection was dropped"),
    "body drips": (lambda _: drip_body(0.05), 4, "no complete answer within 0.5 s"),
    "status line drips": (lambda _: drip_status_line(0.05), 4, "no complete answer within 0.5 s"),
    "redirect elsewhere": (
        lambda elsewhere: answer(b"307 Temporary Redirect", b"", f"Location: {elsewhere}/steal\r\n".encode()),
        4,
        "a redirect to http://127.0.0.1:",
    ),
    "103 then the answer": (lambda _: raw(EARLY_HINTS * 3 + FINAL), 1, "3 missing"),
    "100 then the answer": (lambda _: raw(b"HTTP/1.1 100 Continue\r\n\r\n" + FINAL), 1, "3 missing"),
    # Read past, every one, to a connection that ends without an answer: the App API is unreachable.
    "1xx for ever": (lambda _: raw(EARLY_HINTS * 40), 4, "3 not read back"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_app_api_ends_the_run_cleanly(files: Files, case: str) -> None:
    behaviour, code, said = CASES[case]
    with hostile(hang_up()) as elsewhere, hostile(behaviour(elsewhere.url)) as server:
        config, data = files.config(document(server.url)), files.data(people(3))
        report = files.root / "report.json"
        args = ["--config", config, "--data", data, "--timeout", "0.5", "--retries", "0", "--report", str(report)]
        run = run_verify(args)
        assert elsewhere.requests() == []  # no redirect was followed, with the key or without
    assert run.code == code, run.stderr
    assert said in run.stderr
    assert sum("error:" in line for line in lines_of(run)) == (0 if code == 1 else 1)
    written = report.read_text(encoding="utf-8")
    assert_no_key(run.stdout, run.stderr, written)
    assert json.loads(written)["summary"]["exitCode"] == code


def held(person: dict[str, Any], **changed: str) -> dict[str, Any]:
    """The App API's entry for one of :func:`people`, holding what the file says but for ``changed``."""
    attributes = {"name": person["name"], "plan": person["plan"], "v": str(person["v"]), **changed}
    return {"customer": {"identifiers": {"id": person["id"]}, "attributes": attributes}}


@pytest.mark.parametrize("stale_last", [False, True], ids=["stale first", "stale last"])
def test_an_answer_naming_a_person_twice_is_not_used(files: Files, stale_last: bool) -> None:
    # Person 1 twice, once as the file says and once not: whichever came last, taking it would
    # report them as holding the file, or as differing, on an answer that says both.
    three = people(3)
    twice = [held(three[1]), held(three[1], name="someone else")]
    answered = [held(three[0]), *(twice if stale_last else twice[::-1]), held(three[2])]
    report = files.root / "report.json"
    with hostile(ok(json.dumps({"customers": answered}).encode())) as server:
        config, data = files.config(document(server.url)), files.data(three)
        run = run_verify(["--config", config, "--data", data, "--retries", "0", "--report", str(report)])
    assert run.code == 4, run.stderr
    assert lines_of(run)[1:] == [
        "cio-sync: error: the App API's answer named 1 twice: not used, since which of the two the data file "
        "describes cannot be told (check appBaseUrl/--app-base-url, region and the network)",
        "cio-sync: 0 people: 0 hold the file, 0 differ, 0 missing; 3 not read back",
    ]
    assert json.loads(report.read_text(encoding="utf-8"))["summary"]["exitCode"] == 4


def endless_hints() -> Behaviour:
    """Interim answers one after another, as fast as they go, until the connection or the test ends."""

    def behave(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while not stop.is_set():
                conn.sendall(EARLY_HINTS * 100)

    return behave


# 20 is the count docs/verify.md once gave as the most read past: verify, as a sync does, puts no
# count on them, and 21 are read past as 20 are. Only the attempt's deadline bounds them.
@pytest.mark.parametrize("count", [20, 21, 1000])
def test_interim_answers_are_read_past_however_many(files: Files, count: int) -> None:
    with hostile(raw(EARLY_HINTS * count + FINAL)) as server:
        config, data = files.config(document(server.url)), files.data(people(3))
        run = run_verify(["--config", config, "--data", data, "--timeout", "5", "--retries", "0"])
    assert run.code == 1, run.stderr
    assert "3 people: 0 hold the file, 0 differ, 3 missing" in run.stderr


def test_interim_answers_without_end_are_cut_at_the_deadline(files: Files) -> None:
    with hostile(endless_hints()) as server:
        config, data = files.config(document(server.url)), files.data(people(3))
        run = run_verify(["--config", config, "--data", data, "--timeout", "0.5", "--retries", "0"])
    assert run.code == 4, run.stderr
    assert "gave no complete answer within 0.5 s" in run.stderr


def test_the_emulators_early_hints_are_read_past(emu: Emulator, files: Files) -> None:
    for person in people(3):
        emu.add_person(id=person["id"], attributes={k: v for k, v in person.items() if k != "id"})
    emu.add_fault(hints=3, endpoint="app-people", times=None)
    run = run_verify(["--config", files.config(document(emu.url)), "--data", files.data(people(3))])
    assert run.code == 0, run.stderr
    assert "3 people: 3 hold the file, 0 differ, 0 missing" in run.stderr


def test_a_report_on_standard_output_is_whole_or_not_there(
    emu: Emulator, files: Files, children: Callable[..., Child]
) -> None:
    # Each read-back answer a few tenths of a second late: the one in flight when the signal
    # comes ends within the grace, rather than being held until the grace runs out.
    child = slow_verify(emu, files, children, report="-", delay=0.3)
    child.proc.send_signal(signal.SIGINT)
    run = child.finish()
    assert run.code == 130 and run.stdout == ""


def test_a_report_to_a_closed_standard_output_is_refused_before_reading_back(emu: Emulator, files: Files) -> None:
    config, data = files.config(document(emu.url)), files.data(people(2))
    shell = 'exec "$0" -m cio_sync verify "$@" >&-'
    args = ["--config", config, "--data", data, "--report", "-"]
    proc = subprocess.run(["sh", "-c", shell, sys.executable, *args], capture_output=True, env=cli_env(), timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "cio-sync: error: --report -: standard output is closed" in proc.stderr.decode()
    assert emu.requests() == []


def test_a_key_quoted_before_the_configuration_is_read_is_masked(files: Files) -> None:
    # A key pasted where a URL belongs: the error that says so quotes it.
    config, data = files.config(document("http://127.0.0.1:1")), files.data(people(1))
    run = run_verify(["--config", config, "--data", data, "--app-base-url", APP_KEY], env={"CIO_APP_API_KEY": APP_KEY})
    assert run.code == 2, run.stderr
    assert lines_of(run) == [
        "cio-sync: error: --app-base-url must be an absolute http:// or https:// URL, got '[redacted]'"
    ]


def test_failed_still_holds_the_people_found_when_the_key_is_refused_midway() -> None:
    answers = iter([b'{"customers": []}'])

    def first_then_refuse(conn: socket.socket, request: bytes, stop: threading.Event) -> bool | None:
        body = next(answers, None)
        return (ok(body) if body is not None else answer(b"401 Unauthorized", b""))(conn, request, stop)

    written: list[object] = []
    with hostile(first_then_refuse) as server:
        config = config_from_dict(document(server.url), env={})
        options = Options(workers=1, failed=written.append, records_again=lambda: people(150))
        result = verify(config, people(150), options)
    assert result.stopped is ReadStatus.KEY_REFUSED
    assert (result.missing, result.unchecked) == (100, 50)
    # Stopped by the App API, not by the caller: the people found so far still go to failed.
    assert written == people(100)


def test_a_stop_while_a_connection_to_the_app_api_opens_ends_the_read_back_as_stopped() -> None:
    # An App API whose handshake never completes (a host that drops packets, say): the stop cuts
    # the connection being opened, and the read-back says it stopped rather than failing.
    stop = threading.Event()
    with unanswered() as server, ThreadPoolExecutor(1) as pool:
        config = config_from_dict(document(server.url, parallelism=1))
        running = pool.submit(verify, config, people(3), Options(stop=stop))
        wait_until(server.connecting)
        stop.set()
        result = running.result(timeout=30)
    assert result.stopped is ReadStatus.STOPPED
    assert (result.matching, result.unchecked) == (0, 3)

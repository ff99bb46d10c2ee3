"""Shared fixtures: a live emulator on loopback, input files, and runners that check for leaks."""

from __future__ import annotations

import fcntl
import functools
import json
import os
import pty
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer.main
import typer.testing
from hypothesis import settings
from typer.testing import CliRunner

from cio_sync import HttpSettings
from cio_sync.cli import app
from cio_sync.emulator import Emulator
from cio_sync.engine.repeats import PersonIndex
from cio_sync.input.config import Config, config_from_dict

from .contract.check import KNOWN_DEVIATIONS, check
from .fakeclock import FakeClock, Skipped
from .quick import quicken

# The suite runs several processes a core: an example's time says how loaded the machine is, not
# whether the code is right, so hypothesis sets no deadline. Its default of 100 examples a test
# is what make test runs; make soak runs them with 2,000 ("soak"). A test that sets its own count
# (each example a whole run) keeps it in both.
settings.register_profile("cio-sync", deadline=None)
settings.register_profile("soak", settings.get_profile("cio-sync"), max_examples=2000)
settings.load_profile("cio-sync")

SITE_ID = "site-test-1234"
# Distinctive, so that a test can prove it appears in no output at all.
API_KEY = "sk-live-SECRET-6f1d9c"
SECRETS = (API_KEY,)

# No waiting between resends: the tests exercise retries, not the clock.
FAST = HttpSettings(connect_timeout=2.0, read_timeout=5.0, retries=3, backoff_factor=0.0)

runner = CliRunner()
# Each app's command built once, not on every invoke: typer builds the command and the coercion of
# each of its options afresh each time (about 9 ms of the 24 an in-process run of a small file
# takes), and keeps the coercions on the command's options once built.
typer.testing._get_command = functools.cache(typer.main.get_command)  # type: ignore[attr-defined]


def assert_no_secret(*texts: str | bytes | None) -> None:
    """Fail if any text shows the API key, plainly or base64-encoded in a header."""
    import base64

    encoded = base64.b64encode(f"{SITE_ID}:{API_KEY}".encode()).decode()
    for text in texts:
        if text is None:
            continue
        value = text.decode(errors="replace") if isinstance(text, bytes) else text
        for secret in (*SECRETS, encoded):
            assert secret not in value, "the API key appeared in output"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest tests first (the wheel built and installed, the model's scenarios): handed out
    last, one of them would run on alone after every other test had ended."""
    items.sort(key=lambda item: not (item.get_closest_marker("slow") or item.get_closest_marker("long")))


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    proxies = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
    credentials = ("CIO_SITE_ID", "CIO_API_KEY", "CIO_APP_API_KEY")
    for name in (*credentials, "NO_COLOR", *proxies, *(p.lower() for p in proxies)):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _quick_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sync the command runs in this process waits out no time: it runs on a :class:`QuickClock`
    (a test that gives it a clock of its own keeps that), one test's runs sharing what they
    skipped (``tests/quick.py``). A verify keeps real time: its emulator's App API limits requests
    in real time, and skipping the waits that keep under it would earn 429s."""
    quicken(monkeypatch.setattr, Skipped())


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(SITE_ID, API_KEY) as emu:
        yield emu


@pytest.fixture(autouse=True)
def _meets_the_contract(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Whatever a test did, what cio-sync sent to an emulator and what it answered meet the spec.

    Modules that send requests off the contract on purpose say so with ``SENDS_OFF_CONTRACT``.
    """
    started: list[Emulator] = []
    start = Emulator.start

    def start_and_remember(emu: Emulator) -> Emulator:
        started.append(emu)
        return start(emu)

    monkeypatch.setattr(Emulator, "start", start_and_remember)
    yield
    if getattr(request.module, "SENDS_OFF_CONTRACT", False):
        return
    for emu in started:
        findings = check(emu.requests())
        assert findings.problems == []
        assert findings.deviations <= KNOWN_DEVIATIONS


def config_dict(url: str, **overrides: Any) -> dict[str, Any]:
    """A valid configuration for the emulator at ``url``, with keys replaced or removed (None)."""
    document: dict[str, Any] = {
        "parallelism": 4,
        "userId": "id",
        "mappings": [{"from": "name", "to": "name"}, {"from": "computed_ltv", "to": "ltv"}],
        "siteId": SITE_ID,
        "apiKey": API_KEY,
        "baseUrl": url,
    }
    for key, value in overrides.items():
        if value is None:
            document.pop(key, None)
        else:
            document[key] = value
    return document


def one_by_one() -> PersonIndex:
    """An index that knows of no person named twice: each record goes as a write of its own, as
    the records of two people whose keys share a hash do. The tests of one person's writes
    following each other in a run (stamps, late answers, records held back) run this way."""
    index = PersonIndex(lambda records: [None] * len(records))
    index.finish()
    return index


def make_config(url: str, **overrides: Any) -> Config:
    """A loaded :class:`Config` for the emulator at ``url``."""
    return config_from_dict(config_dict(url, **overrides), env={})


@dataclass
class Files:
    """Writes configuration and data files into a test's temporary directory."""

    root: Path

    def config(self, document: object, name: str = "configuration.json") -> str:
        path = self.root / name
        path.write_text(document if isinstance(document, str) else json.dumps(document))
        return str(path)

    def data(self, document: object, name: str = "data.json") -> str:
        path = self.root / name
        if isinstance(document, bytes):
            path.write_bytes(document)
        else:
            path.write_text(document if isinstance(document, str) else json.dumps(document))
        return str(path)


@pytest.fixture
def files(tmp_path: Path) -> Files:
    return Files(tmp_path)


@dataclass
class Run:
    """What a CLI run printed and how it exited."""

    code: int
    stdout: str
    stderr: str


def run_cli(args: Sequence[str], input: str | bytes | None = None, env: dict[str, str] | None = None) -> Run:
    """Run ``cio-sync`` in-process, and check that it printed no secret and no traceback."""
    result = runner.invoke(app, list(args), input=input, env=env, catch_exceptions=False)
    return checked(result.exit_code, result.stdout, result.stderr)


# The command as its own process, exactly as a user starts it.
CLI = (sys.executable, "-m", "cio_sync")


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any ``CIO_`` variable, with ``extra`` on top."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIO_")}
    env.update(extra or {})
    return env


def checked(code: int, stdout: str | None, stderr: str | None) -> Run:
    """A finished run, once checked for secrets and tracebacks in everything it printed."""
    assert_no_secret(stdout, stderr)
    assert "Traceback" not in (stderr or "")
    return Run(code, stdout or "", stderr or "")


def run_process(
    args: Sequence[str], input: bytes | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> Run:
    """Run ``python -m cio_sync`` as a separate process, with the same checks as :func:`run_cli`."""
    proc = subprocess.run([*CLI, *args], input=input, capture_output=True, env=cli_env(env), timeout=timeout)
    return checked(proc.returncode, proc.stdout.decode(), proc.stderr.decode())


Spawn = Callable[..., "subprocess.Popen[str]"]


@pytest.fixture
def spawn_cli() -> Iterator[Spawn]:
    """Starts ``python -m cio_sync`` in the background (text pipes, no ``CIO_`` variables, nothing
    on standard input unless asked); whatever a test leaves running is killed when it ends."""
    started: list[subprocess.Popen[str]] = []

    def spawn(
        args: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        stdout: int | None = subprocess.PIPE,
        stderr: int | None = subprocess.PIPE,
        stdin: int | None = subprocess.DEVNULL,
    ) -> subprocess.Popen[str]:
        proc = subprocess.Popen([*CLI, *args], stdin=stdin, stdout=stdout, stderr=stderr, text=True, env=cli_env(env))
        started.append(proc)
        return proc

    yield spawn
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def finish(proc: subprocess.Popen[str], timeout: float = 30) -> Run:
    """Wait for a process from :func:`spawn_cli` to end; what it printed, checked as :func:`run_cli` does."""
    stdout, stderr = proc.communicate(timeout=timeout)
    return checked(proc.returncode, stdout, stderr)


@pytest.fixture
def cli() -> Callable[..., Run]:
    return run_cli


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``condition`` until it holds; fail the test if it does not within ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for a condition"
        time.sleep(0.005)


def people_puts(emu: Emulator) -> list[str | None]:
    """The person ids of every PUT the emulator received, in arrival order."""
    return [r.person_id for r in emu.requests() if r.method == "PUT"]


def unstamped(body: Any) -> Any:
    """A v1 body as the mapping made it: without the ``_timestamp`` every request carries."""
    assert isinstance(body, dict) and type(body.get("_timestamp")) is int, f"not a stamped body: {body!r}"
    return {k: v for k, v in body.items() if k != "_timestamp"}


class Terminal:
    """``python -m cio_sync`` on a pseudo-terminal of ``columns`` columns; everything it draws is kept."""

    def __init__(self, args: Sequence[str], columns: int = 80, env: dict[str, str] | None = None) -> None:
        main, child = pty.openpty()
        fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
        environment = cli_env({"COLUMNS": str(columns), "TERM": "xterm", **(env or {})})
        self.proc = subprocess.Popen([*CLI, *args], stdin=child, stdout=child, stderr=child, env=environment)
        os.close(child)
        self._main = main
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._main, 65536)
            except OSError:  # the child side closed
                break
            if not chunk:
                break
            self._chunks.append(chunk)

    @property
    def text(self) -> str:
        return b"".join(self._chunks).decode("utf-8", "replace")

    def finish(self) -> tuple[int, str]:
        """Wait for the run to end; its exit code and everything it drew, checked as :func:`run_cli` does."""
        code = self.proc.wait(timeout=60)
        self._reader.join(timeout=10)
        os.close(self._main)
        return code, checked(code, None, self.text).stderr


@contextmanager
def deadlines_on(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Every request deadline, and the grace a stop gives the requests in flight, timed by
    ``clock`` (a sync's and a verify's alike) rather than by real time; yields the watchdogs
    made meanwhile."""
    from cio_sync.readback import reader
    from cio_sync.transport import client, deadline

    made: list[Any] = []

    def watchdog(limit: float, stop: threading.Event, *_: object) -> deadline.Watchdog:
        dog = deadline.Watchdog(limit, stop, clock)
        made.append(dog)
        return dog

    with monkeypatch.context() as patch:
        patch.setattr(client, "Watchdog", watchdog)
        patch.setattr(reader, "Watchdog", watchdog)
        yield made


@contextmanager
def signalled(signum: int, when: Callable[[], bool], clock: FakeClock) -> Iterator[None]:
    """While the block runs a command in this process: once ``when`` holds, send this process
    ``signum`` (the command's own handler takes it, in the main thread, as it would in its own
    process), then move ``clock`` on a second at a time until the block ends, so that the stop's
    grace runs out without waiting for it. ``when`` must hold only while the command runs."""
    ended = threading.Event()

    def go() -> None:
        wait_until(lambda: when() or ended.is_set())
        if ended.is_set():
            return
        os.kill(os.getpid(), signum)
        while not ended.wait(0.02):
            clock.advance(1.0)

    thread = threading.Thread(target=go, name="signalled")
    thread.start()
    try:
        yield
    finally:
        ended.set()
        thread.join()

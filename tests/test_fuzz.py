"""Fuzzing in every ``make test``: seeded cases of random files, configurations and server answers,
and cases hypothesis draws and shrinks, so that a failure comes back as its smallest example.

The command runs in-process here (a process each would cost most of the test's time); ``make soak``
runs the same cases as processes."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cio_sync.cli import app

from .conftest import API_KEY, SITE_ID
from .fuzz import DOCUMENTED, HOSTILE_VALUES, run_case, run_checked
from .hostile import HostileServer

runner = CliRunner()


def in_process(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """The sync command in this process: a bug ends the test with its traceback."""
    result = runner.invoke(app, args, env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("seed", range(16))
def test_fuzzed_inputs_and_answers_end_with_a_documented_exit(seed: int, tmp_path: Path) -> None:
    assert run_case(seed, tmp_path, in_process) in DOCUMENTED


# Whole answers a server may give, each ending the exchange as it says (False: hang up after it).
ANSWERS: list[tuple[bytes, bool]] = [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", True),
    (b'HTTP/1.1 207 Multi-Status\r\nContent-Length: 47\r\n\r\n{"errors": [{"batch_index": 0, "reason": "no"}]}', True),
    (b"HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\n\r\n{}", True),
    (b"HTTP/1.1 429 Too Many\r\nRetry-After: 0\r\nContent-Length: 0\r\n\r\n", True),
    (b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n", True),
    (b"HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", True),
    (b"", False),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{", False),
]

_IDS = st.one_of(st.sampled_from(["a", "b", "A@x.com", "a@X.com", 7, "cio_1"]), st.sampled_from(HOSTILE_VALUES))
_VALUES = st.one_of(st.sampled_from(HOSTILE_VALUES), st.text(max_size=5), st.integers(-5, 5))
_RECORDS = st.lists(
    st.one_of(
        st.fixed_dictionaries({"id": _IDS}, optional={"name": _VALUES, "ltv": _VALUES, "age": _VALUES}),
        st.sampled_from(HOSTILE_VALUES),
    ),
    max_size=10,
)


def _replaying(answers: list[tuple[bytes, bool]]) -> Any:
    """A behaviour answering with ``answers`` in turn, round and round."""
    lock = threading.Lock()
    turn = iter(range(10**9))

    def behave(conn: socket.socket, request: bytes, stop: threading.Event) -> bool:
        with lock:
            answer, keep = answers[next(turn) % len(answers)]
        if answer:
            conn.sendall(answer)
        return keep

    return behave


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    records=_RECORDS,
    answers=st.lists(st.sampled_from(ANSWERS), min_size=1, max_size=6),
    transport=st.sampled_from(["v1", "batch"]),
    suffix=st.sampled_from([".json", ".ndjson"]),
)
def test_every_record_is_accounted_for_in_the_report_and_failed(
    tmp_path_factory: pytest.TempPathFactory,
    records: list[Any],
    answers: list[tuple[bytes, bool]],
    transport: str,
    suffix: str,
) -> None:
    root = tmp_path_factory.mktemp("drawn")
    server = HostileServer(_replaying(answers))
    try:
        config = root / "config.json"
        mappings = [{"from": "name", "to": "name"}, {"from": "ltv", "to": "ltv"}]
        mappings.append({"from": "age", "to": "age", "as": "integer"})
        document = {"parallelism": 1, "userId": "id", "mappings": mappings, "transport": transport}
        config.write_text(json.dumps({**document, "baseUrl": server.url, "siteId": SITE_ID, "apiKey": API_KEY}))
        data = root / f"data{suffix}"
        if suffix == ".ndjson":
            data.write_text("".join(json.dumps(r) + "\n" for r in records))
        else:
            data.write_text(json.dumps(records))
        options = ["--timeout", "0.5", "--give-up-after", "2", "--retries", "1"]
        assert run_checked("drawn case", server, config, data, records, options, in_process) in DOCUMENTED
    finally:
        server.close()

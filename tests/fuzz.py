"""The fuzz test, shared by ``make test`` (a few seeds) and ``make soak`` (as many as time allows).

One case, drawn from a seed: a valid configuration and data file, each then mutated at random
(bytes flipped, inserted or cut; values swapped for hostile ones: huge numbers, lone surrogates,
control characters, deep nesting, NaN), and a hostile server on loopback whose every answer is
drawn at random too (2xx, 207 of any shape, 4xx, 429 with any Retry-After, 5xx, garbage, a
dropped connection, a dripped or oversized answer). ``cio-sync`` runs on them: in-process under
``make test``, and as its own process under the soak, where a case must not outlive its process.

What must hold, whatever the case: the exit code is a documented one and never 70; nothing is a
traceback; when the exit is 2 nothing reached the server; the API key is in no output and no
file written; the report's counts add up to its total, and its problems list every record not
synced; and ``--failed`` reads back as exactly those records (when the data file was not mangled,
record for record).

    python -m tests.fuzz --minutes 10     # the soak: cases until time runs out, then a count
"""

from __future__ import annotations

import argparse
import json
import random
import re
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .conftest import API_KEY, CLI, SITE_ID, assert_no_secret, cli_env
from .hostile import Behaviour, HostileServer

# Runs the command with these arguments and environment: its exit code, standard output and error.
Runner = Callable[[list[str], dict[str, str]], tuple[int, str, str]]

# The exit codes docs/command.md documents, but 70: a fuzzed input must never find a bug.
DOCUMENTED = frozenset({0, 1, 2, 3, 4, 74, 130, 143})

HOSTILE_VALUES: list[Any] = [
    None,
    True,
    "",
    "\x1b[2J\r\n",
    "\u202e",
    "a" * 1200,
    10**30,
    -(10**20),
    1.5,
    1e308,
    [],
    {},
    [[[[[]]]]],
    {"k": ["v", {"w": None}]},
    "a/b?c#d",
    ".",
    "..",
    "%41",
    "x@Y.com",
    "cio_abc",
]
RAW_TOKENS = [
    b'"\\ud800"',
    b'"\\udc00"',
    b'"x\\ud800\\u0041"',
    b"9" * 5000,
    b"-" + b"9" * 4400,
    b"1e999999999999999999",
    b"NaN",
    b"Infinity",
    b"[" * 600 + b"]" * 600,
    b'"\\u0000"',
    b"\xff\xfe",
    b"\x00",
    b'"' + b"\\\\" * 3 + b'ud800"',
    b"{}",
    b"[]",
    b"null",
]


def _records(rng: random.Random) -> list[Any]:
    records: list[Any] = []
    for i in range(rng.randint(0, 12)):
        record: dict[str, Any] = {"id": rng.choice([i, f"p{i}", f"P{i}@x.com", i % 3])}
        for key in ("name", "ltv", "extra"):
            if rng.random() < 0.7:
                record[key] = rng.choice([f"n{i}", i * 1.5, rng.choice(HOSTILE_VALUES)])
        if rng.random() < 0.15:
            record["id"] = rng.choice(HOSTILE_VALUES)
        records.append(record if rng.random() > 0.05 else rng.choice(HOSTILE_VALUES))
    return records


def _mutate(rng: random.Random, data: bytes) -> bytes:
    """Up to three random edits: a byte flipped, a hostile token inserted, a slice cut."""
    for _ in range(rng.randint(0, 3)):
        where = rng.randint(0, len(data))
        kind = rng.random()
        if kind < 0.3 and data:
            where = min(where, len(data) - 1)
            data = data[:where] + bytes([rng.randrange(256)]) + data[where + 1 :]
        elif kind < 0.8:
            data = data[:where] + rng.choice(RAW_TOKENS) + data[where:]
        else:
            data = data[:where] + data[where + rng.randint(1, 20) :]
    return data


def _config(rng: random.Random, url: str) -> bytes:
    document: dict[str, Any] = {
        "parallelism": rng.randint(1, 4),
        "userId": "id",
        "mappings": [{"from": "name", "to": "name"}, {"from": "ltv", "to": "ltv"}],
        "baseUrl": url,
    }
    if rng.random() < 0.3:
        document["transport"] = "batch"
    if rng.random() < 0.2:
        document["mode"] = "update"
    if rng.random() < 0.2:
        document["rateLimit"] = rng.choice([0.05, 1e-300, 50, 1e9])
    if rng.random() < 0.2:
        document[rng.choice(["parallelism", "userId", "mappings", "region", "rateLimit"])] = rng.choice(HOSTILE_VALUES)
    text = json.dumps(document).encode()
    return _mutate(rng, text) if rng.random() < 0.15 else text


def _answers(rng: random.Random) -> Behaviour:
    """A behaviour that draws each answer at random (from its own seeded generator)."""
    lock = threading.Lock()
    draw = random.Random(rng.random())

    def behave(conn: socket.socket, request: bytes, stop: threading.Event) -> bool:
        with lock:
            choice = draw.random()
            status = draw.choice([b"200 OK", b"207 Multi-Status", b"400 Bad Request", b"429 Too Many", b"503 Busy"])
            retry_after = draw.choice([b"0", b"0.01", b"-1", b"nan", b"garbage", b"Wed, 21 Oct 2015 07:28:00 GMT"])
            body = draw.choice(
                [
                    b"{}",
                    b'{"errors": [{"batch_index": 0, "reason": "bad"}]}',
                    b'{"errors": [{"batch_index": "x"}]}',
                    b'{"meta": {"error": "\\u001b[2J"}}',
                    b"not json",
                    b"",
                ]
            )
        if choice < 0.05:
            return False  # hang up without a word
        if choice < 0.1:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{")
            stop.wait(0.3)
            return False
        if choice < 0.13:
            conn.sendall(b"\x00garbage\r\n\r\n")
            return False
        if choice < 0.16:
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 5000000\r\n\r\n" + b"y" * 5_000_000)
            return False
        head = b"HTTP/1.1 " + status + b"\r\nRetry-After: " + retry_after + b"\r\n"
        conn.sendall(head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        return True

    return behave


def as_process(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """``python -m cio_sync`` as its own process, without the caller's ``CIO_`` variables."""
    proc = subprocess.run([*CLI, *args], capture_output=True, env=cli_env(env), timeout=120)
    return proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")


def run_case(seed: int, root: Path, run: Runner) -> int:
    """One fuzz case in ``root``; the exit code, once every property has been checked."""
    rng = random.Random(seed)
    server = HostileServer(_answers(rng), honest_check=rng.random() < 0.8)
    try:
        config = root / "config.json"
        config.write_bytes(_config(rng, server.url))
        data = root / rng.choice(["data.json", "data.ndjson"])
        records = _records(rng)
        text = _encode(records, data.suffix)
        mangled = rng.random() < 0.35
        data.write_bytes(_mutate(rng, text) if mangled else text)
        args = ["--timeout", "0.5", "--give-up-after", "2", "--retries", str(rng.randint(0, 2))]
        if rng.random() < 0.2:
            args.append("--dry-run")
        if rng.random() < 0.2:
            args += ["--state", str(root / "ledger")]
        return run_checked(f"seed {seed}", server, config, data, None if mangled else records, args, run)
    finally:
        server.close()


def _encode(records: list[Any], suffix: str) -> bytes:
    if suffix == ".ndjson":
        return b"".join(json.dumps(r).encode() + b"\n" for r in records)
    return json.dumps(records).encode()


def run_checked(
    case: str,
    server: HostileServer,
    config: Path,
    data: Path,
    records: list[Any] | None,
    options: list[str],
    run: Runner,
) -> int:
    """Run ``cio-sync`` on ``config`` and ``data`` against ``server`` with ``options``, and check
    every property; ``records`` are the data file's, when it was written from them unmangled."""
    root = data.parent
    failed, report = root / ("failed" + data.suffix), root / "report.json"
    args = ["--config", str(config), "--data", str(data), "--failed", str(failed), "--report", str(report), *options]
    code, stdout, stderr = run(args, {"CIO_SITE_ID": SITE_ID, "CIO_API_KEY": API_KEY})
    where = f"{case}: exit {code}\n{stderr[-2000:]}"
    assert code in DOCUMENTED, where
    assert "Traceback" not in stderr, where
    assert_no_secret(stdout, stderr, *(p.read_bytes() for p in root.iterdir() if p.name not in ("config.json",)))
    if code == 2:
        assert server.requests() == [], where
    if report.exists():
        _check_accounts(where, json.loads(report.read_text()), failed, records)
    return code


# The one problem entry that stands for the records a stopped run never read.
_UNREAD = re.compile(r"with the ([\d,]+) records after it")


def _lenient(text: str) -> Any:
    """JSON, its integers kept as their text (one need not fit Python's to be counted) and its
    other numbers as floats (``1E+308`` and ``1e308`` are one number)."""
    return json.loads(text, parse_int=str, parse_float=float, parse_constant=str)


def _check_accounts(where: str, report: dict[str, Any], failed: Path, records: list[Any] | None) -> None:
    """The report's counts add up, its problems are every record not synced, and --failed holds
    exactly those records (compared one by one when ``records`` are known)."""
    counts = report["counts"]
    if report["dry_run"] or not counts:
        return
    assert sum(counts.values()) == report["total"], where
    indexes: list[int] = []
    for problem in report["problems"]:
        tail = _UNREAD.search(problem["reason"] or "")
        span = 1 + int(tail.group(1).replace(",", "")) if tail else 1
        indexes += range(problem["index"], problem["index"] + span)
    assert len(indexes) == counts["failed"] + counts["invalid"] + counts["not_attempted"], where
    if not failed.exists():
        return
    # A record that could not be read is written back as it stood: its bytes need not be UTF-8,
    # an NDJSON line need not be JSON, and a number need not fit Python's; such records are
    # counted, not parsed.
    # Bytes, not read_text: its universal newlines would split a line at a carriage return.
    text = failed.read_bytes().decode("utf-8", "surrogateescape")
    if failed.suffix == ".ndjson":
        # Split where NDJSON splits, at line feeds only (str.splitlines also splits at \x1c, \x85...).
        lines = [line for line in text.split("\n") if line.strip()]
        written = [_lenient(line) for line in lines] if records is not None else lines
    else:
        written = _lenient(text)
    assert len(written) == len(indexes), where
    if records is not None:
        again = [_lenient(json.dumps(records[i])) for i in indexes]
        expected = sorted(json.dumps(r, sort_keys=True) for r in again)
        assert sorted(json.dumps(r, sort_keys=True) for r in written) == expected, where


def main() -> None:
    """``python -m tests.fuzz``: cases from ``--seed`` on until ``--minutes`` have passed."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    options = parser.parse_args()
    deadline = time.monotonic() + options.minutes * 60
    exits: Counter[int] = Counter()
    seed = options.seed
    while time.monotonic() < deadline:
        with tempfile.TemporaryDirectory() as tmp:
            exits[run_case(seed, Path(tmp), as_process)] += 1
        seed += 1
    summary = ", ".join(f"exit {k}: {v}" for k, v in sorted(exits.items()))
    print(f"fuzz: {sum(exits.values())} cases from seed {options.seed} ({summary}): every property held")


if __name__ == "__main__":
    main()

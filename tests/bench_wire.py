"""The side-by-side figures of ``make bench``: the batch transport under a rate limit (configured,
then learned from 429s) and without one, a dry run, and v1 at P=25, L=50 ms, each with the
client's CPU per record and peak memory.

Each run is the installed command in its own process, measured through ``tests/peak.py``, against
a server in a process of its own: ``tests/bench_server.py`` for the batch runs (it enforces a rate
and is not the bottleneck), the emulator with latency for v1.

Beside cio-sync, the clients a user would otherwise use, measured the same way on the same data
(``tests/bench_official.py``, run with the bench environment's interpreter: ``.venv-bench``, which
``make bench`` creates, or ``BENCH_CLIENTS_PYTHON``): async-customerio's ``v2.send_batch`` against
the same stand-in without a rate, and the official client (``customerio``) from 25 threads against
the emulator with latency. A library that is not installed, or cannot be pointed at the local
server, gets a row saying why. Then the ratios of cio-sync's figures to theirs.

    python -m tests.bench_wire                 # N=1,000,000 small people (two attributes)
    BENCH_N=100000 python -m tests.bench_wire  # a smaller file, for a quick look
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tests.bench import Measured, emulator, run_cli, served, write_inputs

# The people of the batch runs: an id and two attributes, as a user loading a list would have.
DEFAULT_N = 1_000_000
ROOT = Path(__file__).resolve().parent.parent
# The interpreter of the bench environment, where the other clients are installed (not the project's).
CLIENTS_PYTHON = Path(os.environ.get("BENCH_CLIENTS_PYTHON", ROOT / ".venv-bench" / "bin" / "python"))
# tests/bench_official.py's exit status when its library is missing or cannot be pointed at the server.
NOT_AVAILABLE = 3


@dataclass
class Row:
    """One line of the table: what ran, and what it cost."""

    what: str
    wall: float
    cpu_us: float
    peak_mb: float
    exit: int
    extra: str
    # False for a client that did not run: the row says why, with no figures.
    measured: bool = True
    # What the ratios compare beyond the figures: requests (batch) and the share of P/L (v1).
    requests: int | None = None
    share: float | None = None
    # v1: the share during the sync, from the run's report (start-up and the file's check left out).
    sync_share: float | None = None


def bench_n() -> int:
    """The number of people, from ``BENCH_N`` (default :data:`DEFAULT_N`)."""
    return int(os.environ.get("BENCH_N", DEFAULT_N))


def write_small(root: Path, n: int) -> Path:
    """A JSON array of ``n`` small people: ``{"id": i, "name": ..., "email": ...}``."""
    path = root / "small.json"
    with path.open("w") as f:
        f.write("[")
        for i in range(n):
            f.write(("," if i else "") + f'{{"id":{i},"name":"Person {i}","email":"person{i}@example.com"}}')
        f.write("]")
    return path


def small_config(root: Path, name: str, base_url: str, **extra: Any) -> Path:
    """A configuration mapping the two attributes, with ``extra`` keys (``transport``, ``rateLimit``)."""
    document = {
        "parallelism": 25,
        "userId": "id",
        "mappings": [{"from": "name", "to": "name"}, {"from": "email", "to": "email"}],
        "siteId": "demo-site",
        "apiKey": "demo-key",
        "baseUrl": base_url,
        **extra,
    }
    path = root / f"{name}.json"
    path.write_text(json.dumps(document))
    return path


@contextmanager
def stand_in(rate: float | None) -> Iterator[str]:
    """``tests/bench_server.py`` in its own process; its URL."""
    command = [sys.executable, "-m", "tests.bench_server", "{port_file}", *(["--rate", str(rate)] if rate else [])]
    with served(command, quiet=False) as server:
        yield server.url


def batch(root: Path, data: Path, n: int, rate: float | None, server: float | None = None) -> Row:
    """``--transport batch`` through the stand-in enforcing ``server`` requests a second (by default
    ``rate``), with ``rateLimit`` = ``rate`` when given (else the rate is learned from the 429s)."""
    server = server or rate
    with stand_in(server) as url:
        extra: dict[str, Any] = {"transport": "batch"} | ({"rateLimit": rate} if rate else {})
        config = small_config(root, "batch", url, **extra)
        m = run_cli(["--config", str(config), "--data", str(data), "--quiet"])
        stats = requests.get(url + "/_stats", timeout=10).json()
    refused = stats["statuses"].get("429", 0)
    limit = f"rateLimit {rate:g}" if rate else "no rateLimit"
    what = f"batch, {limit}, server {server:g}/s" if server else f"batch, {limit}"
    per = n / max(stats["batches"], 1)
    extra_text = f"{stats['requests']:,} requests, {refused} answered 429, {per:,.0f} people a batch"
    return Row(what, m.wall, m.cpu / n * 1e6, m.max_rss_mb, m.code, extra_text, requests=stats["requests"])


def run_other(client: str, url: str, data: Path) -> tuple[Measured | None, str]:
    """``tests/bench_official.py CLIENT URL DATA`` with the bench environment's interpreter, measured
    as cio-sync is: its figures (None if it could not run), and its last line (or why it did not run)."""
    if not CLIENTS_PYTHON.exists():
        return None, f"not run: no {CLIENTS_PYTHON} (make bench creates it)"
    with tempfile.TemporaryDirectory() as tmp:
        printed = Path(tmp) / "printed"
        m = run_cli([client, url, str(data)], [str(CLIENTS_PYTHON), "-m", "tests.bench_official"], printed)
        lines = printed.read_text().splitlines()
    said = lines[-1] if lines else f"said nothing: run {CLIENTS_PYTHON} -m tests.bench_official to see why"
    return (None if m.code == NOT_AVAILABLE else m), said


def other_row(what: str, m: Measured | None, n: int, said: str, **extra: Any) -> Row:
    """The row of another client: its figures, or why it has none."""
    if m is None:
        return Row(what, 0, 0, 0, NOT_AVAILABLE, said, measured=False)
    return Row(what, m.wall, m.cpu / n * 1e6, m.max_rss_mb, m.code, said, **extra)


def async_batch(data: Path, n: int) -> Row:
    """async-customerio's ``v2.send_batch``, chunks of 1,000, 25 at once, through the stand-in without a rate."""
    with stand_in(None) as url:
        m, said = run_other("batch", url, data)
        stats = requests.get(url + "/_stats", timeout=10).json()
    what = "batch, async-customerio, Semaphore(25)"
    if m is None:
        return other_row(what, m, n, said)
    notes = f"{stats['requests']:,} requests, chunks of 1,000, the whole file in memory; {said}"
    return other_row(what, m, n, notes, requests=stats["requests"])


def dry_run(root: Path, data: Path, n: int) -> Row:
    """``--dry-run``: reading, checking, mapping and encoding, nothing sent."""
    config = small_config(root, "dry", "http://127.0.0.1:9", transport="batch")
    m = run_cli(["--config", str(config), "--data", str(data), "--quiet", "--dry-run"])
    return Row("--dry-run", m.wall, m.cpu / n * 1e6, m.max_rss_mb, m.code, "")


def v1(n: int, parallelism: int = 25, latency: float = 0.05) -> list[Row]:
    """v1 against the emulator answering after ``latency``: how close to P/L, at what CPU. cio-sync,
    then the official client from ``parallelism`` threads on the same records (each run against an
    emulator of its own, so both create every person)."""
    ceiling = parallelism / latency
    with tempfile.TemporaryDirectory() as tmp:
        config, data = write_inputs(Path(tmp), n, parallelism)
        report = Path(tmp) / "report.json"
        with emulator("--latency", str(latency)) as emu:
            m = run_cli(["--config", config, "--data", data, "--base-url", emu.url, "--quiet", "--report", str(report)])
        sync_share = json.loads(report.read_text())["records_per_second"] / ceiling if report.exists() else 0.0
        with emulator("--latency", str(latency)) as emu:
            other, said = run_other("v1", emu.url, Path(data))
    share = n / m.wall / ceiling
    what = f"v1, N={n:,} P={parallelism} L={latency * 1000:.0f}ms"
    notes = f"{sync_share:.3f} of P/L during the sync, {share:.3f} end to end"
    rows = [Row(what, m.wall, m.cpu / n * 1e6, m.max_rss_mb, m.code, notes, share=share, sync_share=sync_share)]
    what = f"v1, customerio (official), {parallelism} threads"
    if other is None:
        return [*rows, other_row(what, other, n, said)]
    other_share = n / other.wall / ceiling
    notes = f"{other_share:.3f} of P/L end to end; {said}"
    return [*rows, other_row(what, other, n, notes, share=other_share)]


def table(rows: list[Row]) -> None:
    """The rows, side by side."""
    print(f"  {'what':<38} {'wall':>7} {'CPU/record':>12} {'peak':>8}  exit  notes")
    for r in rows:
        if not r.measured:
            print(f"  {r.what:<38} {'-':>7} {'-':>12} {'-':>8}  {'-':>4}  {r.extra}")
            continue
        print(f"  {r.what:<38} {r.wall:6.1f}s {r.cpu_us:9.1f} us {r.peak_mb:5.0f} MB  {r.exit:>4}  {r.extra}")


def compared(ours: Row, theirs: Row, name: str) -> str | None:
    """Why cio-sync's row cannot be compared with that of the client ``name``, or None when it can."""
    if not theirs.measured:
        return f"{name} did not run (its row says why)"
    failed = [who for who, r in (("cio-sync", ours), (name, theirs)) if r.exit]
    return f"{' and '.join(failed)} exited non-zero" if failed else None


def ratios(batch_rows: tuple[Row, Row], v1_rows: list[Row]) -> None:
    """cio-sync's figures over the other clients', each pair from the same run of the table."""
    ours, theirs = batch_rows
    why = compared(ours, theirs, "async-customerio")
    if why:
        print(f"  batch: no ratio: {why}")
    else:
        assert ours.requests and theirs.requests
        figures = (
            f"CPU per record {ours.cpu_us / theirs.cpu_us:.2f}x, wall {ours.wall / theirs.wall:.2f}x, "
            f"peak memory {ours.peak_mb / theirs.peak_mb:.2f}x, requests {ours.requests / theirs.requests:.2f}x"
        )
        print(f"  batch: cio-sync (no rateLimit) over async-customerio: {figures}")
    ours, theirs = v1_rows
    why = compared(ours, theirs, "the official client")
    if why:
        print(f"  v1:    no ratio: {why}")
    else:
        assert ours.share and theirs.share
        ratio = ours.cpu_us / theirs.cpu_us
        print(f"  v1:    cio-sync's CPU per record {ratio:.2f}x the official client's (done when ≤ 0.6)")
        # "Still ≥ 0.95" is read as it was first measured: from the sync's start to its end (the
        # report's records_per_second), which leaves out about 0.3 s of imports and the file's
        # check; end to end, that start-up is about one point of the share at N=20,000.
        shares = f"{ours.sync_share:.3f} during the sync (done when ≥ 0.95), {ours.share:.3f} end to end"
        print(f"         cio-sync's share of P/L: {shares}; the official client's {theirs.share:.3f} end to end")


def main(n: int | None = None, v1_n: int = 20_000) -> None:
    """Every run of the table, then the table."""
    n = n or bench_n()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = write_small(root, n)
        size = data.stat().st_size / 1e6
        print(f"the wire: N={n:,} small people (id and two attributes, {size:,.0f} MB of JSON), P=25")
        rows = [batch(root, data, n, 100), batch(root, data, n, None, server=100)]
        batch_rows = (batch(root, data, n, None), async_batch(data, n))
        rows += [*batch_rows, dry_run(root, data, n)]
    v1_rows = v1(v1_n)
    table(rows + v1_rows)
    ratios(batch_rows, v1_rows)


if __name__ == "__main__":
    main()

"""The side-by-side figures of ``make bench``: the batch transport under a rate limit (configured,
then learned from 429s) and without one, a dry run, and v1 at P=25, L=50 ms, each with the
client's CPU per record and peak memory.

Each run is the installed command in its own process, measured through ``tests/peak.py``, against
a server in a process of its own: ``tests/bench_server.py`` for the batch runs (it enforces a rate
and is not the bottleneck), the emulator with latency for v1.

    python -m tests.bench_wire                 # N=1,000,000 small people (two attributes)
    BENCH_N=100000 python -m tests.bench_wire  # a smaller file, for a quick look
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tests.bench import emulator, run_cli, write_inputs

# The people of the batch runs: an id and two attributes, as a user loading a list would have.
DEFAULT_N = 1_000_000


@dataclass
class Row:
    """One line of the table: what ran, and what it cost."""

    what: str
    wall: float
    cpu_us: float
    peak_mb: float
    exit: int
    extra: str


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
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        command = [sys.executable, "-m", "tests.bench_server", str(port_file)]
        proc = subprocess.Popen([*command, *(["--rate", str(rate)] if rate else [])])
        try:
            while not port_file.exists() or not port_file.read_text():
                time.sleep(0.02)
            yield f"http://127.0.0.1:{port_file.read_text()}"
        finally:
            proc.terminate()
            proc.wait()


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
    return Row(what, m.wall, m.cpu / n * 1e6, m.max_rss_mb, m.code, extra_text)


def dry_run(root: Path, data: Path, n: int) -> Row:
    """``--dry-run``: reading, checking, mapping and encoding, nothing sent."""
    config = small_config(root, "dry", "http://127.0.0.1:9", transport="batch")
    m = run_cli(["--config", str(config), "--data", str(data), "--quiet", "--dry-run"])
    return Row("--dry-run", m.wall, m.cpu / n * 1e6, m.max_rss_mb, m.code, "")


def v1(n: int, parallelism: int = 25, latency: float = 0.05) -> Row:
    """v1 against the emulator answering after ``latency``: how close to P/L, at what CPU."""
    with tempfile.TemporaryDirectory() as tmp, emulator("--latency", str(latency)) as emu:
        config, data = write_inputs(Path(tmp), n, parallelism)
        m = run_cli(["--config", config, "--data", data, "--base-url", emu.url, "--quiet"])
    ceiling = parallelism / latency
    ratio = n / m.wall / ceiling
    what = f"v1, N={n:,} P={parallelism} L={latency * 1000:.0f}ms"
    return Row(what, m.wall, m.cpu / n * 1e6, m.max_rss_mb, m.code, f"{ratio:.3f} of P/L end to end")


def table(rows: list[Row]) -> None:
    """The rows, side by side."""
    print(f"  {'what':<38} {'wall':>7} {'CPU/record':>11} {'peak':>7}  exit  notes")
    for r in rows:
        print(f"  {r.what:<38} {r.wall:6.1f}s {r.cpu_us:8.1f} us {r.peak_mb:5.0f} MB  {r.exit:>4}  {r.extra}")


def main(n: int | None = None, v1_n: int = 20_000) -> None:
    """Every run of the table, then the table."""
    n = n or bench_n()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = write_small(root, n)
        size = data.stat().st_size / 1e6
        print(f"the wire: N={n:,} small people (id and two attributes, {size:,.0f} MB of JSON), P=25")
        rows = [batch(root, data, n, 100), batch(root, data, n, None, server=100)]
        rows += [batch(root, data, n, None), dry_run(root, data, n)]
    rows.append(v1(v1_n))
    table(rows)


if __name__ == "__main__":
    main()

"""The cost of one write per person, for ``make bench``: CPU per record with and without repeated
people, and peak memory, for a dry run (reading, checking, counting and merging, nothing sent) and
a real run over the batch transport against the emulator.

Not a test: it prints figures and asserts nothing.

    python -m tests.bench_merge                 # 1,000,000 records
    BENCH_MERGE_RECORDS=200000 python -m tests.bench_merge
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

from tests.bench import served

CLI = [sys.executable, "-m", "cio_sync"]


@dataclass
class Measured:
    code: int
    wall: float
    cpu: float
    peak_mb: float


def measure(args: list[str]) -> Measured:
    """Run the CLI as its own process; its exit code, wall and CPU seconds, and peak RSS."""
    started = time.perf_counter()
    proc = subprocess.Popen([*CLI, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Measured(proc.returncode, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


@contextmanager
def emulator() -> Iterator[str]:
    """``cio-sync emulator serve`` in its own process; its URL."""
    command = [
        *CLI,
        "emulator",
        "serve",
        "--port-file",
        "{port_file}",
        "--site-id",
        "bench-site",
        "--api-key",
        "bench-key",
    ]
    with served(command) as server:
        yield server.url


def write_data(path: Path, records: int, people: int) -> None:
    """``records`` NDJSON records naming ``people`` people in turn: each person's records are
    ``people`` records apart (as far apart as they can be)."""
    with path.open("w") as out:
        for n in range(records):
            out.write(f'{{"id":"p{n % people}","name":"n{n}","plan":"{n % 3}"}}\n')


def main() -> None:
    records = int(os.environ.get("BENCH_MERGE_RECORDS", "1000000"))
    print(f"one write per person: {records:,} records, two attributes each (NDJSON), batch transport, P=25")
    print(f"{'case':<44} {'wall s':>8} {'CPU µs/rec':>11} {'peak MB':>8}")
    with tempfile.TemporaryDirectory() as tmp, emulator() as url:
        root = Path(tmp)
        config = root / "configuration.json"
        document = {
            "parallelism": 25,
            "userId": "id",
            "transport": "batch",
            "mappings": [{"from": "name", "to": "name"}, {"from": "plan", "to": "plan"}],
            "siteId": "bench-site",
            "apiKey": "bench-key",
            "baseUrl": url,
        }
        config.write_text(json.dumps(document))
        for label, people in (("each person once", records), ("each person twice, far apart", records // 2)):
            data = root / "data.ndjson"
            write_data(data, records, people)
            for mode, extra in (("dry run", ["--dry-run"]), ("run", [])):
                got = measure(["--config", str(config), "--data", str(data), "--quiet", *extra])
                name = f"{mode}, {label} ({people:,} people)"
                note = "" if got.code == 0 else f"  (exit {got.code})"
                print(f"{name:<44} {got.wall:>8.1f} {got.cpu / records * 1e6:>11.1f} {got.peak_mb:>8.0f}{note}")


if __name__ == "__main__":
    main()

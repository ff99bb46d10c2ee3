"""The benchmark behind ``make bench``: the installed CLI against a server, both as processes.

Not a test: it prints figures and asserts nothing. Each scenario starts its server in its own
process (so its CPU is measured apart), generates a data file, runs ``cio-sync`` and reads the
client's CPU time and peak RSS from its own rusage.

    python -m tests.bench              # the side-by-side table (tests/bench_wire.py), N=1,000,000
    BENCH_N=100000 python -m tests.bench   # the same table for a smaller file
    python -m tests.bench --all        # the table, then every other scenario at full size
    python -m tests.bench --all --quick    # everything at a tenth of the size
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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

CLI = [sys.executable, "-m", "cio_sync"]
# `cio-sync verify` on its own (the same command the family registers).
VERIFY = [sys.executable, "-m", "cio_sync", "verify"]
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Emulated:
    url: str
    pid: int

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = requests.get(self.url + "/_emulator/stats", timeout=10).json()
        return stats


@contextmanager
def served(command: list[str], quiet: bool = True) -> Iterator[Emulated]:
    """``command``, a server that writes its port to the file named by the ``{port_file}`` in it,
    in a process of its own for as long as the block runs: its URL and pid."""
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        argv = [str(port_file) if word == "{port_file}" else word for word in command]
        proc = subprocess.Popen(argv, stderr=subprocess.DEVNULL if quiet else None)
        try:
            while not port_file.exists() or not port_file.read_text():
                time.sleep(0.02)  # a benchmark's start-up, not a test: nothing to drive here
            yield Emulated(f"http://127.0.0.1:{port_file.read_text()}", proc.pid)
        finally:
            proc.terminate()
            proc.wait()


@contextmanager
def emulator(*options: str) -> Iterator[Emulated]:
    """The emulator, with ``options``, in a process of its own."""
    with served([sys.executable, "-m", "cio_sync.emulator", "--port-file", "{port_file}", *options]) as emulated:
        yield emulated


def write_inputs(root: Path, n: int, parallelism: int, extra: dict[str, Any] | None = None) -> tuple[str, str]:
    config = {
        "parallelism": parallelism,
        "userId": "id",
        "mappings": [
            {"from": "name", "to": "name"},
            {"from": "email", "to": "email"},
            {"from": "computed_ltv", "to": "ltv"},
            {"from": "plan", "to": "plan"},
        ],
        "siteId": "demo-site",
        "apiKey": "demo-key",
        **(extra or {}),
    }
    (root / "config.json").write_text(json.dumps(config))
    with (root / "data.json").open("w") as f:
        f.write("[")
        for i in range(n):
            record = {
                "id": i,
                "name": f"Person {i}",
                "email": f"person{i}@example.com",
                "computed_ltv": round(i * 1.37, 2),
                "plan": ("free", "pro", "team")[i % 3],
                "signup_source": "benchmark",
            }
            f.write(("," if i else "") + json.dumps(record))
        f.write("]")
    return str(root / "config.json"), str(root / "data.json")


@dataclass
class Measured:
    code: int
    wall: float
    cpu: float
    max_rss_mb: float


def run_cli(args: list[str], command: list[str] | None = None, stdout: Path | None = None) -> Measured:
    """``command`` (by default the CLI) with ``args``, measured; what it prints goes to ``stdout``
    (a file) if given, else nowhere."""
    # Through tests/peak.py: started from here, the peak would include this process's own.
    with tempfile.TemporaryDirectory() as tmp, open(stdout or os.devnull, "w") as printed:
        out = Path(tmp) / "figures.json"
        started = time.perf_counter()
        code = subprocess.call(
            [sys.executable, "-m", "tests.peak", str(out), *(command or CLI), *args],
            stdout=printed,
            stderr=subprocess.DEVNULL,
        )
        wall = time.perf_counter() - started
        figures = json.loads(out.read_text())
    return Measured(code, wall, figures["cpu_seconds"], figures["max_rss_kb"] / 1024)


def throughput(n: int, parallelism: int, latency: float) -> None:
    with tempfile.TemporaryDirectory() as tmp, emulator("--latency", str(latency)) as emu:
        config, data = write_inputs(Path(tmp), n, parallelism)
        report = Path(tmp) / "report.json"
        server_cpu = emu.cpu_seconds()
        m = run_cli(["--config", config, "--data", data, "--base-url", emu.url, "--quiet", "--report", str(report)])
        server_cpu = emu.cpu_seconds() - server_cpu
        sync_rate = json.loads(report.read_text())["records_per_second"]
    rate = n / m.wall
    ceiling = parallelism / latency
    print(f"throughput  N={n:,} P={parallelism} L={latency * 1000:.0f}ms (exit {m.code})")
    print(f"  records/s, the sync     {sync_rate:,.0f}   ({sync_rate / ceiling:.3f} of P/L = {ceiling:,.0f})")
    print(f"  records/s, end to end   {rate:,.0f}   ({rate / ceiling:.3f}; includes start-up and the file check)")
    print(f"  client CPU per record   {m.cpu / n * 1000:.3f} ms   ({m.cpu:.2f} s over {m.wall:.1f} s)")
    print(f"  client peak RSS         {m.max_rss_mb:.0f} MB")
    print(f"  emulator CPU            {server_cpu / m.wall * 100:.0f}% of one core")


def rate_limited(n: int, parallelism: int, limit: float, client_cap: float | None) -> None:
    extra = {"rateLimit": client_cap} if client_cap else {}
    with tempfile.TemporaryDirectory() as tmp, emulator("--rate-limit", str(limit)) as emu:
        config, data = write_inputs(Path(tmp), n, parallelism, extra)
        m = run_cli(["--config", config, "--data", data, "--base-url", emu.url, "--quiet"])
        stats = emu.stats()
    refused = stats["statuses"].get("429", 0)
    cap = f"rateLimit={client_cap:g}" if client_cap else "no rateLimit (learned)"
    print(f"rate-limited  N={n:,} P={parallelism}, emulator {limit:g}/s, {cap} (exit {m.code})")
    print(f"  wall time               {m.wall:.1f} s = {m.wall / (n / limit):.3f} x N/{limit:g}")
    print(
        f"  answered 429            {refused:,} of {stats['requests']:,} requests ({refused / stats['requests']:.2%})"
    )


def transports(n: int, parallelism: int) -> None:
    counted = {}
    states = {}
    for transport in ("v1", "batch"):
        with tempfile.TemporaryDirectory() as tmp, emulator() as emu:
            config, data = write_inputs(Path(tmp), n, parallelism, {"transport": transport})
            m = run_cli(["--config", config, "--data", data, "--base-url", emu.url, "--quiet"])
            counted[transport] = (emu.stats()["requests"], m.wall, m.code)
            people = requests.get(emu.url + "/_emulator/people", timeout=60).json()
            # Each transport's people get their own cio_ids: compare what the file decides.
            states[transport] = {(p["id"], p["email"]): p["attributes"] for p in people}
    same = "the same" if states["v1"] == states["batch"] else "DIFFERENT"
    print(f"transports  N={n:,} P={parallelism}, no latency; end state {same} for both")
    for transport, (count, wall, code) in counted.items():
        print(f"  {transport:<6} {count:>8,} requests  {wall:6.1f} s  (exit {code})")
    print(f"  batch needs {counted['v1'][0] / counted['batch'][0]:,.0f}x fewer requests")


def batch_memory(n: int, parallelism: int) -> None:
    """Peak RSS of a batch sync: ``parallelism`` batches of up to 500 KB in flight, and their records."""
    with tempfile.TemporaryDirectory() as tmp, emulator() as emu:
        config, data = write_inputs(Path(tmp), n, parallelism, {"transport": "batch"})
        m = run_cli(["--config", config, "--data", data, "--base-url", emu.url, "--quiet"])
    print(f"batch memory  N={n:,} P={parallelism}, transport batch (exit {m.code})")
    print(f"  peak RSS                {m.max_rss_mb:.0f} MB   ({m.wall:.1f} s)")


def faulty(n: int, parallelism: int) -> None:
    """A run through the emulator's faults, from its command line: each person at a hundredth of the
    file meets one of a 503, a 429 with a fractional Retry-After, or an answer lost after the write."""
    kinds = ["status=503", "status=429,retry-after=0.25", "drop=after"]
    faults = [f"{kinds[k % 3]},person={i}" for k, i in enumerate(range(n // 100, n, n // 100))]
    with tempfile.TemporaryDirectory() as tmp, emulator(*(f for spec in faults for f in ("--fault", spec))) as emu:
        config, data = write_inputs(Path(tmp), n, parallelism)
        m = run_cli(["--config", config, "--data", data, "--base-url", emu.url, "--quiet"])
        stats = emu.stats()
    print(f"faults  N={n:,} P={parallelism}, {len(faults)} people meet one: {', '.join(kinds)} (exit {m.code})")
    print(f"  wall time               {m.wall:.1f} s, {stats['requests']:,} requests for {stats['people']:,} people")
    print(f"  answered                {stats['statuses']}, {stats['dropped']} dropped")


def memory(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config, data = write_inputs(Path(tmp), n, 25)
        size = Path(data).stat().st_size / 1e6
        m = run_cli(["--config", config, "--data", data, "--base-url", "http://127.0.0.1:9", "--dry-run"])
    print(f"memory  N={n:,} ({size:,.0f} MB of JSON), --dry-run (exit {m.code})")
    print(
        f"  peak RSS                {m.max_rss_mb:.0f} MB   ({m.wall:.1f} s, {m.cpu / n * 1e6:.1f} us CPU per record)"
    )


def memory_csv(n: int) -> None:
    """Peak RSS of a dry run over a large CSV file: rows are streamed, so it stays flat."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with (root / "data.csv").open("w", newline="") as f:
            f.write("id,name,email,ltv,plan,signed_up\r\n")
            for i in range(n):
                plan = ("free", "pro", "")[i % 3]
                f.write(f'{i},"Person {i}, Jr.",person{i}@example.com,{i * 1.37:.2f},{plan},2024-01-0{1 + i % 9}\r\n')
        mappings = [
            {"from": "name", "to": "name"},
            {"from": "email", "to": "email"},
            {"from": "ltv", "to": "ltv", "as": "number"},
            {"from": "plan", "to": "plan"},
            {"from": "signed_up", "to": "created_at", "as": "timestamp"},
        ]
        document = {"parallelism": 25, "userId": "id", "mappings": mappings, "siteId": "s", "apiKey": "k"}
        (root / "config.json").write_text(json.dumps(document))
        size = (root / "data.csv").stat().st_size / 1e6
        args = ["--config", str(root / "config.json"), "--data", str(root / "data.csv"), "--dry-run"]
        m = run_cli([*args, "--base-url", "http://127.0.0.1:9"])
    print(f"memory  N={n:,} ({size:,.0f} MB of CSV), --dry-run with casts (exit {m.code})")
    print(
        f"  peak RSS                {m.max_rss_mb:.0f} MB   ({m.wall:.1f} s, {m.cpu / n * 1e6:.1f} us CPU per record)"
    )


# The same export mapped two ways: every value as it is, and typed (timestamps, casts, a path).
PLAIN_MAPPINGS = [{"from": k, "to": k} for k in ("name", "signed_up", "last_seen", "seats", "ltv", "trial", "profile")]
CAST_MAPPINGS = [
    {"from": "name", "to": "name"},
    {"from": "signed_up", "to": "signed_up", "as": "timestamp"},
    {"from": "last_seen", "to": "last_seen", "as": "timestamp"},
    {"from": "seats", "to": "seats", "as": "integer"},
    {"from": "ltv", "to": "ltv", "as": "number"},
    {"from": "trial", "to": "trial", "as": "boolean"},
    {"from": ["profile", "plan"], "to": "profile", "skipNull": True},
]


def write_export(root: Path, n: int) -> str:
    with (root / "export.ndjson").open("w") as f:
        for i in range(n):
            record = {
                "id": i,
                "name": f"Person {i}",
                "signed_up": f"20{i % 25:02}-0{1 + i % 9}-1{i % 10}T0{i % 10}:30:00Z",
                "last_seen": f"2024-03-05T17:{i % 60:02}:12.{i % 1000:03}+01:00",
                "seats": str(i % 50),
                "ltv": f"{i * 1.37:.2f}",
                "trial": ("true", "false")[i % 2],
                "profile": {"plan": ("free", "pro", None)[i % 3]},
            }
            f.write(json.dumps(record) + "\n")
    return str(root / "export.ndjson")


def mapping_cost(n: int, repeats: int = 3) -> None:
    """CPU per record of the typed mapping against the plain one: a dry run (reading, mapping and
    encoding only, where the mapping weighs most) and a sync to the emulator (all the work)."""
    with tempfile.TemporaryDirectory() as tmp, emulator() as emu:
        data = write_export(Path(tmp), n)
        empty = Path(tmp) / "empty.ndjson"
        empty.write_text("")
        cpu: dict[tuple[str, str], float] = {}
        for name, mappings in (("plain", PLAIN_MAPPINGS), ("typed", CAST_MAPPINGS)):
            config = Path(tmp) / f"{name}.json"
            document = {"parallelism": 25, "userId": "id", "mappings": mappings, "siteId": "demo-site"}
            config.write_text(json.dumps({**document, "apiKey": "demo-key", "baseUrl": emu.url}))
            for kind, extra in (("dry run", ["--dry-run"]), ("sync", [])):
                args = ["--config", str(config), "--quiet", *extra]
                # Start-up (imports, the configuration) is the same for both: measured and left out.
                start_up = min(run_cli([*args, "--data", str(empty)]).cpu for _ in range(repeats))
                runs = [run_cli([*args, "--data", data]) for _ in range(repeats)]
                cpu[name, kind] = (min(m.cpu for m in runs) - start_up) / n * 1e6
    print(f"mapping cost  N={n:,}, CPU per record beyond start-up, best of {repeats}")
    print("  plain: 7 keys as they are; typed: 2 timestamps, integer, number, boolean, a path, skipNull")
    for kind in ("dry run", "sync"):
        plain, typed = cpu["plain", kind], cpu["typed", kind]
        print(f"  {kind:<8} plain {plain:6.1f} us   typed {typed:6.1f} us   ({(typed / plain - 1) * 100:+.0f}%)")


def seed_people(root: Path, n: int) -> str:
    """The emulator's ``--people`` file: the ``n`` people of :func:`write_inputs`, as a sync leaves them."""
    people = root / "people.json"
    with people.open("w") as f:
        f.write("[")
        for i in range(n):
            attributes: dict[str, Any] = {"name": f"Person {i}", "email": f"person{i}@example.com"}
            attributes |= {"ltv": round(i * 1.37, 2), "plan": ("free", "pro", "team")[i % 3]}
            f.write(("," if i else "") + json.dumps({"id": str(i), "attributes": attributes}))
        f.write("]")
    return str(people)


def verify_throughput(n: int) -> None:
    """People read back a second against the emulator's App API at its documented 10 requests a second."""
    with tempfile.TemporaryDirectory() as tmp, emulator("--people", seed_people(Path(tmp), n)) as emu:
        config, data = write_inputs(Path(tmp), n, 4, {"appApiKey": "demo-app-key", "appBaseUrl": emu.url})
        m = run_cli(["--config", config, "--data", data, "--quiet"], VERIFY)
        stats = emu.stats()
    print(f"verify        N={n:,} people, all holding the file, emulator App API at 10 requests/s (exit {m.code})")
    rate = f"{n / m.wall:,.0f} people/s"
    print(f"  wall {m.wall:.1f} s   {rate}   client CPU {m.cpu:.1f} s   peak RSS {m.max_rss_mb:.0f} MB")
    print(f"  App API requests {stats['endpoints'].get('app-people', 0):,}, answers {stats['statuses']}")


def verify_memory(n: int, sample: int) -> None:
    """Peak memory of verify on a file of ``n`` records: every record mapped and merged into the
    expected state, a sample read back, and --failed written from a second pass over the file."""
    with tempfile.TemporaryDirectory() as tmp, emulator() as emu:
        config, data = write_inputs(Path(tmp), n, 4, {"appApiKey": "demo-app-key", "appBaseUrl": emu.url})
        failed = str(Path(tmp) / "failed.json")
        args = ["--config", config, "--data", data, "--quiet", "--sample", str(sample), "--seed", "1"]
        m = run_cli([*args, "--failed", failed], VERIFY)
    what = f"--sample {sample:,} read back (none held: all missing), --failed"
    print(f"verify memory N={n:,} records, {what} (exit {m.code})")
    print(f"  wall {m.wall:.1f} s   client CPU {m.cpu:.1f} s   peak RSS {m.max_rss_mb:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller inputs")
    parser.add_argument("--all", action="store_true", help="every scenario, not only the table")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    print(f"cio-sync benchmark on {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print()
    # Imported here: bench_wire takes its helpers from this module.
    from tests import bench_wire

    n = bench_wire.bench_n() // scale
    bench_wire.main(n, v1_n=max(2_000, min(20_000, n // 50)))
    if args.all:
        print()
        others(scale)


def others(scale: int) -> None:
    """Every scenario beyond the table, at full size divided by ``scale``."""
    throughput(20_000 // scale, 25, 0.05)
    print()
    rate_limited(10_000 // scale, 25, 100, 100)
    print()
    rate_limited(10_000 // scale, 25, 100, None)
    print()
    transports(20_000 // scale, 4)
    print()
    for parallelism in (4, 25):
        batch_memory(200_000 // scale, parallelism)
        print()
    faulty(5_000 // scale, 25)
    print()
    memory(1_000_000 // scale)
    print()
    memory_csv(1_000_000 // scale)
    print()
    mapping_cost(50_000 // scale)
    print()
    verify_throughput(20_000 // scale)
    print()
    verify_memory(1_000_000 // scale, 1_000)


if __name__ == "__main__":
    main()

"""The clients a user would otherwise use, driven as a user would, for the comparison of ``make bench``.

``tests/bench_wire.py`` runs this module with the bench environment's interpreter (``.venv-bench``,
which ``make bench`` creates with the pinned releases of both libraries), never the project's:
neither library is a dependency of cio-sync, and the project's environment does not have them. So
this module is standalone: the standard library and the library measured, nothing of cio_sync.

    .venv-bench/bin/python -m tests.bench_official v1 URL DATA     # customerio, ThreadPoolExecutor(25)
    .venv-bench/bin/python -m tests.bench_official batch URL DATA  # async-customerio v2.send_batch

``v1``: the official client (``customerio``'s ``CustomerIO.identify``) for each record of DATA (a
file of ``tests/bench.py``'s ``write_inputs``), 25 threads at once. ``batch``: async-customerio's
``v2.send_batch``, the whole of DATA (``tests/bench_wire.py``'s ``write_small``) in memory, in
chunks of 1,000, 25 requests at once under an ``asyncio.Semaphore``. No checks, no retries beyond
the library's own: the loop a user would write in ten minutes.

Its last line on stdout says how it went (the library's version; how many calls failed, and the
first failure). Exit 0 when every call succeeded, 1 when some failed, 3 when the library is not
installed or cannot be pointed at URL (why, in that line).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

# Exit statuses, read by tests/bench_wire.py.
FAILED = 1
NOT_AVAILABLE = 3


class NotAvailable(Exception):
    """The library is missing, or cannot be pointed at the local server."""


def installed(distribution: str) -> str:
    """The installed version of ``distribution``, or :class:`NotAvailable` saying why not."""
    try:
        return version(distribution)
    except PackageNotFoundError:
        raise NotAvailable(f"{distribution} is not installed in {sys.prefix} (make bench installs it)") from None


def official_client(url: str) -> Any:
    """customerio's ``CustomerIO``, sending to ``url`` (plain http on loopback)."""
    # Only in the bench environment: the project's (and so mypy's) does not have it.
    from customerio import CustomerIO  # type: ignore[import-not-found]

    client = CustomerIO(site_id="demo-site", api_key="demo-key", host="127.0.0.1")
    # The client always builds https://HOST[:PORT]/api/v1 (it strips an "http://" given as host),
    # once, into the public attribute base_url from which every request's URL is made. Setting that
    # attribute is the least invasive way to plain http, with nothing of the library patched.
    # requests then sends through its default http:// adapter: the same pool (10 connections) as
    # the https:// one the client mounts, without that one's retries on 5xx and TCP keep-alive
    # options, which a server answering 200 on loopback never calls on.
    client.base_url = f"{url}/api/v1"
    if not client.get_customer_query_string(1).startswith(url + "/"):
        raise NotAvailable(f"customerio {version('customerio')} cannot be pointed at {url}")
    return client


def async_client(url: str) -> Any:
    """async-customerio's ``AsyncCustomerIO``, sending to ``url`` (plain http on loopback)."""
    # Only in the bench environment: the project's (and so mypy's) does not have it.
    from async_customerio import AsyncCustomerIO  # type: ignore[import-not-found]

    client = AsyncCustomerIO(site_id="demo-site", api_key="demo-key", host="127.0.0.1")

    # Each request's URL comes from the static method setup_base_url(host, port, prefix), which
    # always answers https://...: shadowed on this one instance by the same URL in plain http.
    def base_url(host: str, port: int, prefix: str) -> str:
        return f"{url}/{prefix.strip('/')}"

    client.setup_base_url = base_url
    if not client.v2._base_url().startswith(url + "/"):
        raise NotAvailable(f"async-customerio {version('async-customerio')} cannot be pointed at {url}")
    return client


def v1(url: str, data: Path, parallelism: int) -> tuple[int, list[str]]:
    """``identify`` for each record of ``data`` from ``parallelism`` threads: (calls, failures)."""
    client = official_client(url)
    records = json.loads(data.read_text())

    def identify(record: dict[str, Any]) -> str | None:
        try:
            client.identify(
                id=record["id"],
                name=record["name"],
                email=record["email"],
                ltv=record["computed_ltv"],
                plan=record["plan"],
            )
        except Exception as error:
            return f"{type(error).__name__}: {error}"
        return None

    with ThreadPoolExecutor(parallelism) as pool:
        failures = [failure for failure in pool.map(identify, records) if failure]
    return len(records), failures


async def batch(url: str, data: Path, parallelism: int, chunk: int) -> tuple[int, list[str]]:
    """``v2.send_batch`` over ``data`` in chunks of ``chunk``, ``parallelism`` at once: (calls, failures)."""
    client = async_client(url)
    records = json.loads(data.read_text())
    items = [
        {
            "type": "person",
            "action": "identify",
            "identifiers": {"id": record["id"]},
            "attributes": {"name": record["name"], "email": record["email"]},
        }
        for record in records
    ]
    gate = asyncio.Semaphore(parallelism)

    async def send(part: list[dict[str, Any]]) -> str | None:
        async with gate:
            try:
                await client.v2.send_batch(part)
            except Exception as error:
                return f"{type(error).__name__}: {error}"
            return None

    async with client:
        parts = [items[i : i + chunk] for i in range(0, len(items), chunk)]
        failures = [failure for failure in await asyncio.gather(*(send(part) for part in parts)) if failure]
    return len(parts), failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("client", choices=["v1", "batch"])
    parser.add_argument("url", help="the server's base URL, http://127.0.0.1:PORT")
    parser.add_argument("data", type=Path, help="a JSON array of people")
    parser.add_argument("--parallelism", type=int, default=25, help="threads (v1) or requests at once (batch)")
    parser.add_argument("--chunk", type=int, default=1_000, help="people a batch (batch)")
    args = parser.parse_args()
    distribution = "customerio" if args.client == "v1" else "async-customerio"
    try:
        name = f"{distribution} {installed(distribution)}"
        if args.client == "v1":
            calls, failures = v1(args.url, args.data, args.parallelism)
        else:
            calls, failures = asyncio.run(batch(args.url, args.data, args.parallelism, args.chunk))
    except (NotAvailable, ImportError) as why:
        print(f"not run: {why}")
        raise SystemExit(NOT_AVAILABLE) from None
    first = f"; the first: {failures[0][:200]}" if failures else ""
    print(f"{name}, {calls:,} calls, {len(failures):,} failed{first}")
    raise SystemExit(FAILED if failures else 0)


if __name__ == "__main__":
    main()

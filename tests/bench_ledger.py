"""What ``--state`` costs per record: the ledger's own work, apart from the network.

Not a test: it prints figures and asserts nothing. Each case runs the ledger's calls for N
records as a run makes them: compare, then (for a record that is sent) sending before the request
and accepted after its 2xx, each committed on its own.

    python -m tests.bench_ledger
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cio_sync.input.config import config_from_dict
from cio_sync.input.mapping import PersonUpdate, RecordMapper
from cio_sync.state.ledger import Known, Ledger

N = 20_000
CONFIG = config_from_dict(
    {"parallelism": 4, "userId": "id", "mappings": [{"from": "plan", "to": "plan"}]},
    env={"CIO_SITE_ID": "s", "CIO_API_KEY": "k"},
)


def updates(plan: str) -> list[PersonUpdate]:
    mapper = RecordMapper.for_config(CONFIG)
    made = [mapper.map(i, {"id": f"person-{i}", "plan": plan}) for i in range(N)]
    return [u for u in made if isinstance(u, PersonUpdate)]


def per_record(ledger: Ledger, batch: list[PersonUpdate]) -> float:
    started = time.process_time()
    for update in batch:
        known, withdraw = ledger.check(update)
        if known is not Known.UNCHANGED:
            ledger.sending((update,), [update.key] if withdraw else [])
            ledger.accepted((update,))
    return (time.process_time() - started) / len(batch) * 1e6


def main() -> None:
    """Print the CPU per record of each case, in microseconds."""
    cases: list[tuple[str, Callable[[], list[PersonUpdate]]]] = [
        ("new people (compare, sending, accepted)", lambda: updates("pro")),
        ("changed people (compare, sending, accepted)", lambda: updates("free")),
        ("unchanged people (compare only)", lambda: updates("free")),
    ]
    with tempfile.TemporaryDirectory() as tmp, Ledger(str(Path(tmp) / "state.db"), CONFIG) as ledger:
        for name, make in cases:
            print(f"{name}: {per_record(ledger, make()):.1f} us of CPU per record (N={N:,})")


if __name__ == "__main__":
    main()

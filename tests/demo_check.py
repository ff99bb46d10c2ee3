"""The end of ``make demo``: fail loudly unless the demo's sync reached the emulator.

A demo that shows "0 people" and exits 0 demonstrates nothing. The example data holds valid and
invalid records, so the sync must exit 0 or 1, and the emulator must hold exactly the people the
valid records name.

    python -m tests.demo_check URL EXIT_STATUS
"""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "data.json"


def expected_ids() -> set[str]:
    """The ids of the example's valid records: integer or non-empty string ids of objects."""
    ids = set()
    for record in json.loads(EXAMPLE.read_text()):
        if isinstance(record, dict):
            value = record.get("id")
            if (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, str) and value):
                ids.add(str(value))
    return ids


def held_ids(url: str) -> set[str]:
    """The ids (or emails, for people known by email alone) the emulator at ``url`` holds."""
    # No proxy, whatever the environment says: the emulator is on loopback.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url.rstrip("/") + "/_emulator/people", timeout=10) as answer:
        people: list[dict[str, Any]] = json.loads(answer.read())
    return {str(p["id"] or p["email"]) for p in people}


def main() -> int:
    """0 when the sync exited 0 or 1 and the workspace holds the example's people; else 1, said why."""
    url, status = sys.argv[1], int(sys.argv[2])
    try:
        held = held_ids(url)
    except OSError as e:
        held, why = set(), f"the emulator could not be asked ({e})"
    else:
        why = f"the workspace holds {len(held)} of the example's {len(expected_ids())} people"
    if status in (0, 1) and held == expected_ids():
        return 0
    print(f"make demo: FAILED: the sync did not reach the emulator as it should: exit {status}, {why}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())

"""The lowest versions cio-sync claims to work with, as pip constraints, and a check that they are installed.

``make test-lowest`` installs the project with every runtime dependency pinned to the floor its
``>=`` declares, then runs the suite: a floor nobody installs is a floor nobody knows is true.
Read from the installed project's metadata (so it works on any Python the project supports)::

    python -m tests.floors            # print "name==floor" for every runtime dependency
    python -m tests.floors --check    # exit 1 unless each installed version is its floor
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, requires, version

PROJECT = "cio-sync"
# name[extras] specifiers ; marker -- the shape of a Requires-Dist line (PEP 508, without URLs).
REQUIREMENT = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(?P<specs>[^;]*)(;(?P<marker>.*))?$"
)
FLOOR = re.compile(r"^>=\s*(?P<version>[0-9][0-9A-Za-z.+!-]*)$")


@dataclass(frozen=True)
class Floor:
    """A runtime dependency and the lowest version its specifier admits."""

    name: str
    version: str


def floors(requirements: list[str]) -> list[Floor]:
    """The floor of every runtime requirement (optional extras left out).

    Raises ValueError for a runtime requirement without a ``>=`` floor: it could not be tested.
    """
    found = []
    for line in requirements:
        match = REQUIREMENT.match(line)
        if match is None:
            raise ValueError(f"cannot read the requirement {line!r}")
        if match["marker"] and "extra" in match["marker"]:
            continue
        lowest = [m["version"] for spec in match["specs"].split(",") if (m := FLOOR.match(spec.strip()))]
        if len(lowest) != 1:
            raise ValueError(f"{line!r} must declare exactly one floor (>=)")
        found.append(Floor(match["name"], lowest[0]))
    return found


def main() -> int:
    """Print the constraints, or check them against what is installed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="check the installed versions instead")
    args = parser.parse_args()
    try:
        pinned = floors(requires(PROJECT) or [])
    except (PackageNotFoundError, ValueError) as e:
        print(f"floors: {e}", file=sys.stderr)
        return 1
    if not args.check:
        print("\n".join(f"{floor.name}=={floor.version}" for floor in pinned))
        return 0
    wrong = [(floor, version(floor.name)) for floor in pinned if version(floor.name) != floor.version]
    for floor, installed in wrong:
        print(f"floors: {floor.name} {installed} is installed, not its floor {floor.version}", file=sys.stderr)
    if not wrong:
        print("floors: " + ", ".join(f"{floor.name} {floor.version}" for floor in pinned))
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())

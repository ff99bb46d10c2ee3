"""What the summary and the report say of mirroring: removals by outcome, the guard, comebacks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..engine.mirror import MirrorResult, Removed

# How many people --dry-run names on the terminal; the report names all of them.
SHOWN = 20


def removal_lines(mirror: MirrorResult | None, unsuppressed: Sequence[str], dry_run: bool) -> list[str]:
    """The lines that tell a person what mirroring did (or would do); the guard's refusal aside."""
    lines = []
    if unsuppressed:
        verb = "would be unsuppressed, then written" if dry_run else "were unsuppressed, then written"
        lines.append(
            f"{_people(len(unsuppressed))} cio-sync had suppressed came back and {verb}: {_names(unsuppressed)}"
        )
    if mirror is None:
        return lines
    mode = mirror.mode.value
    if mirror.skipped is not None:
        return [*lines, f"whenRemoved {mode}: {mirror.skipped}"]
    if mirror.spared:
        stay = "would stay" if dry_run else ("stays" if mirror.spared == 1 else "stay")
        lines.append(
            f"whenRemoved {mode}: {_people(mirror.spared)} not in the data file {stay}: the file of a run that did "
            "not end clean named them; the run after one that does removes them"
        )
    if dry_run:
        gone = [e.person_id for e in mirror.entries]
        if not gone:
            return [*lines, f"whenRemoved {mode}: no one left the data file"]
        guard = "within" if mirror.allowed else "over"
        lines.append(
            f"whenRemoved {mode}: {_people(len(gone))} left the data file and would be removed "
            f"({guard} --max-removals {mirror.guard}): {_names(gone)}"
        )
        return lines
    counts = [f"{mirror.count(o):,} {o.value.replace('_', ' ')}" for o in Removed if mirror.count(o)]
    if mirror.allowed and not mirror.leaving:
        lines.append(f"whenRemoved {mode}: no one left the data file")
    elif mirror.allowed:
        left = f"{_people(mirror.leaving)} left the data file"
        lines.append(f"whenRemoved {mode}: {left}" + (f": {', '.join(counts)}" if counts else ""))
    return lines


def removal_report(
    mirror: MirrorResult | None, unsuppressed: Sequence[str], redact: Callable[[str], str]
) -> dict[str, Any] | None:
    """The report's ``removals`` section; None when there is nothing to say."""
    if mirror is None and not unsuppressed:
        return None
    section: dict[str, Any] = {"unsuppressed": list(unsuppressed)}
    if mirror is not None:
        section.update(
            {
                "when_removed": mirror.mode.value,
                "max_removals": str(mirror.guard),
                "held": mirror.held,
                "left": mirror.leaving,
                "allowed": mirror.allowed,
                "skipped": mirror.skipped,
                "unnamed": mirror.unnamed,
                "spared": mirror.spared,
                "counts": {o.value: mirror.count(o) for o in Removed if o is not Removed.UNSUPPRESSED},
                "people": [
                    {
                        "id": e.person_id,
                        "outcome": e.outcome.value,
                        "status": e.http_status,
                        "reason": None if e.reason is None else redact(e.reason),
                    }
                    for e in mirror.entries
                ],
            }
        )
    return section


def _people(count: int) -> str:
    return f"{count:,} " + ("person" if count == 1 else "people")


def _names(ids: Sequence[str]) -> str:
    shown = ", ".join(ids[:SHOWN])
    more = len(ids) - SHOWN
    return shown + (f" and {more:,} more (all in --report)" if more > 0 else "")

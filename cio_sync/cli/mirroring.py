"""The sync command's side of mirroring (whenRemoved): the dry run's plan of it, what the user is
told, and how it bears on the exit status."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ..engine.mirror import MirrorResult, Named, planned
from ..engine.plan import Plan
from ..errors import ExitCode
from ..input.config import Config, WhenRemoved
from ..outputs.console import Console
from ..outputs.removals import removal_lines
from ..state.ledger import Ledger


class PlanNamed(Named):
    """Who a dry run's records name; then, who would be removed and who unsuppressed."""

    def __init__(self, config: Config, ledger: Ledger) -> None:
        mirroring = config.when_removed is not WhenRemoved.KEEP
        super().__init__(config, ledger.roster, ledger.roster.suppressed(), record=mirroring)
        self._config = config
        self._mirroring = mirroring

    def finish(self, plan: Plan) -> Plan:
        """``plan`` with who would be removed (and whether the guard allows it) and unsuppressed."""
        mirror = planned(self._config, self._roster, plan.total, self.unnamed) if self._mirroring else None
        return dataclasses.replace(plan, mirror=mirror, unsuppressed=tuple(self.back))


def plan_mirror(config: Config, ledger: Ledger | None) -> PlanNamed | None:
    """The hook that plans mirroring in a dry run; None without a ledger (nothing to plan)."""
    return None if ledger is None else PlanNamed(config, ledger)


def tell_removals(
    console: Console, mirror: MirrorResult | None, unsuppressed: Sequence[str], total: int, *, dry_run: bool
) -> None:
    """Say what mirroring did (or would do); a guard that stopped it, or a removal that did not
    succeed, as an error, which --quiet does not hide."""
    for line in removal_lines(mirror, unsuppressed, dry_run):
        console.note(line)
    if mirror is None or mirror.skipped is not None:
        return
    if not mirror.allowed:
        would = "would stop the removals" if dry_run else "stopped the removals"
        stopper = "records that name no one" if mirror.unnamed else "--max-removals"
        console.error(f"{stopper} {would}: {mirror.refusal(empty=total == 0)}", ExitCode.RECORDS_FAILED)
        return
    failed = [e for e in mirror.entries if e.outcome.value in ("failed", "not_attempted")]
    if failed:
        first = failed[0]
        console.error(
            f"{len(failed):,} of {mirror.leaving:,} removals did not succeed; the ledger keeps them pending and the "
            f"next run with the same whenRemoved removes them (first: {first.person_id}: {first.reason})",
            ExitCode.RECORDS_FAILED,
        )


def mirror_exit_code(code: ExitCode, mirror: MirrorResult | None) -> ExitCode:
    """``code``, or 1 where it was 0 and the guard stopped the removals or one did not succeed."""
    if code is ExitCode.OK and mirror is not None and mirror.skipped is None and not mirror.ok:
        return ExitCode.RECORDS_FAILED
    return code

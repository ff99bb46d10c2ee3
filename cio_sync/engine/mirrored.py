"""The run's loop with mirroring hooked in: who each record names, the unsuppressing of a person
who comes back, and, once the loop is done, the removals (see :mod:`cio_sync.engine.mirror`)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections import Counter

from ..clock import Clock
from ..errors import ConfigError, OutputLost
from ..input.config import Config, MaxInvalid, WhenRemoved
from ..outcome import Status
from ..state.ledger import Ledger
from ..transport.client import TrackClient
from .comeback import Comeback
from .loop import Engine, check_workspace
from .merge import Works
from .mirror import MirrorResult, Named, remove, watch_names
from .settle import Settle
from .stamps import Stamps
from .tally import SyncResult
from .workers import Workers


def check_mirroring(config: Config, has_ledger: bool) -> None:
    """Refuse ``whenRemoved`` other than keep without a ledger, before anything is sent: only the
    ledger knows who was written earlier."""
    if not has_ledger and config.when_removed is not WhenRemoved.KEEP:
        raise ConfigError(
            f'whenRemoved "{config.when_removed.value}" needs --state: only the ledger knows who an earlier '
            "run wrote, so without one no one can be found to have left the data file"
        )


class MirroredEngine(Engine):
    """:class:`Engine`, plus mirroring when there is a ``ledger``: raises
    :class:`~cio_sync.errors.ConfigError` for a ``whenRemoved`` without one, before anything is sent."""

    def __init__(
        self,
        config: Config,
        works: Works,
        client: TrackClient,
        settle: Settle,
        stamps: Stamps,
        clock: Clock,
        ledger: Ledger | None,
    ) -> None:
        check_mirroring(config, ledger is not None)
        super().__init__(config, works, client, settle, stamps, clock)
        self._ledger = ledger
        self._mirror: MirrorResult | None = None
        self._comeback: Comeback | None = None
        self._named = Named(config, ledger.roster, set(), record=True) if ledger is not None else None
        # Whether who this run's file named is kept in the ledger already (see keep_named).
        self._kept = False
        if ledger is None:
            return
        if config.when_removed is not WhenRemoved.KEEP:
            assert self._named is not None
            watch_names(works.merger, config, self._named)
        suppressed = ledger.roster.suppressed()
        if suppressed:
            self._comeback = Comeback(self.adapter, config, suppressed)
            self.routing.adapter = self._comeback

    def loop(self, workers: Workers) -> None:
        """The run's loop; then, mirroring, the removals."""
        super().loop(workers)
        if self._ledger is not None and self.config.when_removed is not WhenRemoved.KEEP:
            self._mirror = self._remove(self._ledger, workers)

    def mirrored(self, result: SyncResult) -> SyncResult:
        """``result`` with what mirroring did, and who came back; a mirroring run that ends clean
        forgets who earlier runs that did not kept (see :meth:`~cio_sync.state.roster.Roster.keep_named`)."""
        back = tuple(self._comeback.unsuppressed) if self._comeback is not None else ()
        result = dataclasses.replace(result, mirror=self._mirror, unsuppressed=back)
        if self._ledger is not None and self._mirror is not None and ends_clean(result, self.config.max_invalid):
            # Kept a run longer, they only spare people from removal: the safe side of a failure.
            with contextlib.suppress(OutputLost):
                self._ledger.roster.forget_named()
        return result

    def _remove(self, ledger: Ledger, workers: Workers) -> MirrorResult:
        """Remove the people who left the file, unless the run did not read and settle all of it.

        A run whose records did not all sync keeps who its file named first (its ``--failed``
        file, fed back, names only some of them), and so does one whose removals did not succeed.
        """
        config, settle, works = self.config, self.settle, self.works
        stopped = self.stop.requested or not works.exhausted or works.source.broken is not None
        if stopped or settle.lost is not None or not _all_synced(settle.tally.counts):
            self._keep_named(ledger)
        if stopped or settle.lost is not None:
            skipped = "the run stopped before the end of the data file, so no one was removed"
            return MirrorResult(config.when_removed, config.max_removals, skipped=skipped)
        assert self._named is not None
        if not self.checked and ledger.roster.leavers():
            self.checked = True
            self.region = check_workspace(self.client, config)
        done = settle.tally.done
        result, lost = remove(config, ledger.roster, workers, self.stop, self.stamps, done, self._named.unnamed)
        if lost is not None:
            settle.lose_ledger(lost)
        if not result.ok or result.skipped is not None:
            self._keep_named(ledger)
        return result

    def _keep_named(self, ledger: Ledger) -> None:
        """Keep who this run's file named, once; a ledger that cannot keep them is lost, as when
        any write to it fails (the run then removes no one more, and exits 74)."""
        if self._kept:
            return
        self._kept = True
        try:
            ledger.roster.keep_named()
        except OutputLost as e:
            self.settle.lose_ledger(e)


def _all_synced(counts: Counter[Status]) -> bool:
    """True when every record so far was synced or found unchanged."""
    return not any(counts[s] for s in (Status.FAILED, Status.INVALID, Status.NOT_ATTEMPTED))


def ends_clean(result: SyncResult, max_invalid: MaxInvalid | None) -> bool:
    """True when ``result`` ends the run with exit status 0 (invalid records within ``max_invalid``
    aside, every record synced, every removal done), as far as the run itself can tell."""
    if result.stopped is not None or (result.mirror is not None and not result.mirror.ok):
        return False
    if not (result.failed or result.invalid or result.not_attempted):
        return True
    return result.only_invalid and max_invalid is not None and max_invalid.allows(result.invalid, result.total)

"""The run's loop with mirroring hooked in: who each record names, the unsuppressing of a person
who comes back, and, once the loop is done, the removals (see :mod:`cio_sync.engine.mirror`)."""

from __future__ import annotations

import dataclasses

from ..clock import Clock
from ..errors import ConfigError
from ..input.config import Config, WhenRemoved
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
        if ledger is None:
            return
        if config.when_removed is not WhenRemoved.KEEP:
            watch_names(works.merger, config, Named(config, ledger.roster, set(), record=True))
        suppressed = ledger.roster.suppressed()
        if suppressed:
            self._comeback = Comeback(self.adapter, config, client, suppressed)
            self.adapter = self._comeback

    def loop(self, workers: Workers) -> None:
        """The run's loop; then, mirroring, the removals."""
        super().loop(workers)
        if self._ledger is not None and self.config.when_removed is not WhenRemoved.KEEP:
            self._mirror = self._remove(self._ledger)

    def mirrored(self, result: SyncResult) -> SyncResult:
        """``result`` with what mirroring did, and who came back."""
        back = tuple(self._comeback.unsuppressed) if self._comeback is not None else ()
        return dataclasses.replace(result, mirror=self._mirror, unsuppressed=back)

    def _remove(self, ledger: Ledger) -> MirrorResult:
        """Remove the people who left the file, unless the run did not read and settle all of it."""
        config, settle, works = self.config, self.settle, self.works
        if self.stop.requested or not works.exhausted or works.source.broken is not None or settle.lost is not None:
            skipped = "the run stopped before the end of the data file, so no one was removed"
            return MirrorResult(config.when_removed, config.max_removals, skipped=skipped)
        if not self.checked and ledger.roster.leavers():
            self.checked = True
            self.region = check_workspace(self.client, config)
        result, lost = remove(config, ledger.roster, self.client, self.stop, self.stamps, settle.tally.done)
        if lost is not None:
            settle.lose_ledger(lost)
        return result

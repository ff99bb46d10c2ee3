"""The loop of a run: read, route each record through its person, send, settle. No printing, no I/O
of its own: reading is the source's, sending the workers', remembering the settle's."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from ..clock import Clock
from ..errors import ConfigError, OutputLost
from ..input.config import Config
from ..input.mapping import InvalidRecord, PersonUpdate
from ..outcome import Delivery, Status, Stop, StopReason
from ..transport.client import TrackClient
from .adapters import adapter_for
from .merge import Works
from .packer import Job
from .people import People, Work
from .settle import Settle
from .stamps import Stamps
from .workers import Workers


class Engine:
    """One run's loop; it holds what is between reading and settling."""

    def __init__(
        self, config: Config, works: Works, client: TrackClient, settle: Settle, stamps: Stamps, clock: Clock
    ) -> None:
        self.config = config
        self.works = works
        self.client = client
        self.settle = settle
        self.stop: Stop = settle.stop
        self.stamps = stamps
        self.clock = clock
        # Cap the records waiting behind their person's, so that one person repeated a million
        # times cannot fill memory.
        self.people = People(limit=max(1000, 10 * config.parallelism), floor=stamps.floor)
        self.adapter = adapter_for(config, client)
        # Requests made and not yet handed to the workers.
        self.outbox: list[Job] = []
        # Jobs handed over and not finished: ``parallelism`` in flight and the adapter's ready ones.
        self.max_jobs = config.parallelism + self.adapter.ready
        self.checked = False
        self.region: str | None = None

    def loop(self, workers: Workers) -> None:
        """Read, send and settle until every record has its outcome or the run stops."""
        while True:
            self._route_due()
            if not self.works.exhausted:
                self._read(workers)
            # A partly filled batch goes as soon as a worker would otherwise sit idle.
            if workers.busy < self.config.parallelism and not self.stop.requested and (job := self.adapter.take()):
                self.outbox.append(job)
            checking = bool(self.outbox) and not self.checked
            if checking:
                # At the first request rather than up front: a run with nothing to send (every
                # record unchanged, invalid, or none at all) needs no network.
                self.checked = True
                self.region = check_workspace(self.client, self.config)
            for job in self.outbox:
                if self.settle.sending(job.updates, self.people):
                    workers.submit(job)
            self.outbox.clear()
            # After a stop no held update is sent: only answers are worth waking for.
            held = None if self.stop.requested else self.people.next_due(self.clock.monotonic())
            if workers.busy == 0:
                if held is None:
                    break
                self.clock.wait(self.stop.event, held)
                continue
            if checking:
                continue  # reading paused for the check: fill the workers before waiting on one
            finished = workers.collect(timeout=held)
            if finished is not None:
                self._delivered(*finished)
        self._abandon()

    def _read(self, workers: Workers) -> None:
        """Map and route records until enough requests are out, or none are left.

        Before the credentials check, reading pauses at the first request, so that the check
        comes before anything else is read.
        """
        adapter, people, stopped, outbox = self.adapter, self.people, self.stop.event.is_set, self.outbox
        while (
            workers.busy + len(outbox) < self.max_jobs
            and adapter.room
            and not people.full
            and not stopped()
            and (self.checked or not outbox)
        ):
            work = self.works.next()
            if work is None:
                if self.works.source.broken is not None:
                    self.stop(StopReason.DATA_FILE_CHANGED)
                return
            if work.key is None:  # invalid, and no person to hold it for
                assert isinstance(work, InvalidRecord)
                self.settle.invalid(work)
                continue
            admitted = self.people.admit(work, work.key)
            if admitted is not None and self._route(admitted):
                self._release(work.key)

    def _route(self, work: Work) -> bool:
        """Take ``work``, its person's record that is out, on its way; True when that settled it
        at once (its person's next record may then follow)."""
        if isinstance(work, InvalidRecord):
            # In its person's turn, so that --failed lists their records in file order; and it
            # holds back the later ones, which must not overtake it once it is fixed and fed back.
            assert work.key is not None
            self.settle.invalid(work)
            self.people.failed.add(work.key, work.index)
            return True
        earlier = self.people.failed.get(work.key)
        if earlier is not None:
            self.settle.held_back(work, earlier)
            return True
        if self.settle.unchanged(work, self.people):
            return True
        if self.people.hold(work, self.clock.monotonic()):
            return False
        return self._request(work)

    def _request(self, update: PersonUpdate) -> bool:
        """Stamp ``update`` and hand it to the adapter; True when that settled it (it cannot be
        carried, or the ledger cannot take its stamp)."""
        try:
            stamp = self.stamps.issue(self.people.take_unclear(update.key))
        except OutputLost as e:
            self.settle.lose_ledger(e)
            self.settle.not_sent(update)
            return True
        made = self.adapter.add(update, stamp)
        if isinstance(made, str):
            self.settle.refused(update, made)
            self.people.failed.add(update.key, update.index)
            return True
        if made is not None:
            self.outbox.append(made)
        return False

    def _route_due(self) -> None:
        """Send the held updates whose second has come."""
        while not self.stop.requested and (update := self.people.due(self.clock.monotonic())) is not None:
            if self._request(update):
                self._release(update.key)

    def _delivered(self, job: Job, deliveries: list[Delivery]) -> None:
        """A request is back: settle its updates, and note for each person what it means for the next."""
        self.settle.delivered(job.updates, deliveries)
        _note_answers(self.people, self.stamps, job.updates, deliveries)
        for update in job.updates:
            self._release(update.key)

    def _release(self, key: str) -> None:
        """``key``'s record that was out is settled: route their next, unless the run is stopping."""
        while not self.stop.requested:
            work = self.people.finish(key, self.clock.monotonic())
            if work is None or not self._route(work):
                return

    def _abandon(self) -> None:
        """The run stopped: settle every record not sent, each person's in file order."""
        works = itertools.chain(self.adapter.drain(), self.people.drain(), self.works.merger.drain())
        self.settle.abandoned(works, self.works.source, self.works.merger.mapper.person_id)


def _note_answers(people: People, stamps: Stamps, updates: Sequence[PersonUpdate], deliveries: list[Delivery]) -> None:
    """Note for each person of ``updates`` what their delivery means for their next write: held
    back behind it when it did not sync, stamped later when its answer left it unclear."""
    # A batch's updates mostly share one delivery: what it means is worked out once.
    last: Delivery | None = None
    clear = True
    for update, delivery in zip(updates, deliveries, strict=True):
        if delivery is not last:
            last, clear = delivery, delivery.status is Status.SYNCED and not _unclear(delivery)
        if clear:
            continue
        if delivery.status is not Status.SYNCED:
            people.failed.add(update.key, update.index)
        if _unclear(delivery) and (mark := stamps.unclear()) is not None:
            people.unclear(update.key, *mark)


def _unclear(delivery: Delivery) -> bool:
    """True when the write may have been applied, or may yet be, though its answer does not say:
    no answer, a resend (an earlier attempt may land late), a 5xx (a gateway may have passed the
    write on before it gave up), or a 207 that does not say which items it refused."""
    if delivery.status is Status.NOT_ATTEMPTED:
        return False
    status = delivery.http_status
    return delivery.unclear or status is None or delivery.retries > 0 or status >= 500


def check_workspace(client: TrackClient, config: Config) -> str | None:
    """Check the credentials, and that the workspace is in the configured region; its region.

    Raises :class:`~cio_sync.errors.CredentialsRejected`, :class:`~cio_sync.errors.ApiUnreachable`
    or :class:`~cio_sync.errors.ConfigError` (the region differs).
    """
    region = client.check_credentials()
    if region and not config.custom_base_url and region != config.region:
        raise ConfigError(
            f'the workspace is in the "{region}" region but the configuration says '
            f'"{config.region}": set "region": "{region}"'
        )
    return region

"""Running a sync: the loop that takes each record from the file to its outcome. No printing here.

One record's way through a run, and the module that does each step:

1. read from the data file and mapped to a person update (``mapping``), or settled as invalid;
2. queued behind its person's earlier update, if one is still outstanding (``personqueue``);
3. held back (not attempted) when an earlier record of its person did not sync; skipped when the
   ledger shows the workspace holds it already (``ledger``); held until a later second when an
   earlier attempt of its person got no clear answer (``stamps``); else made into a request,
   stamped with the second it is made in: a PUT of its own, or an item of a batch (``packer``);
   before the request leaves, the ledger stops vouching for any other body of that person
   (``settle``);
4. sent by a worker thread, with resends and pacing (``workers``, ``client``, ``pacing``);
5. settled: counted, recorded in the ledger, handed to the caller (``settle``); its person's
   next update is then released from the queue (back to 3).

Before the first request, the credentials and region are checked. A stop (a signal, refused
credentials, an API that went away, a data file that changed) ends the reading; what was not sent
is settled as not attempted.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable

from .client import HttpSettings, TrackClient
from .config import Config, Transport
from .errors import ConfigError
from .ledger import Ledger
from .mapping import TIMESTAMP, InvalidRecord, PersonUpdate, RecordMapper, batch_item
from .outcome import Status, Stop, StopReason
from .pacing import Gate
from .packer import BatchPacker, Job, oversized
from .personqueue import PersonQueue
from .settle import OutcomeHandler, Settle
from .source import Source
from .stamps import Clock
from .tally import SyncResult
from .workers import Workers


def sync(
    config: Config,
    records: Iterable[object],
    *,
    http: HttpSettings | None = None,
    ledger: Ledger | None = None,
    on_outcome: OutcomeHandler | None = None,
    stop: Stop | None = None,
    keep_problems: int = 20,
) -> SyncResult:
    """Upsert every record into the workspace ``config`` names, and count what happened.

    Records are read lazily from ``records`` (at most a bounded number are held at once). Before
    the first request the credentials are checked: :class:`~cio_sync.errors.CredentialsRejected`
    or :class:`~cio_sync.errors.ApiUnreachable` is raised before any person is written. Updates
    of one person are applied in file order. With a ``ledger``, records whose body was already
    accepted are not sent (they count as unchanged) and accepted ones are recorded. Every
    record's outcome is passed to ``on_outcome`` from the calling thread. ``stop`` stops the run
    early; the remaining records count as not attempted.
    """
    stop = stop or Stop()
    settle = Settle(stop, config.parallelism, ledger, on_outcome, keep_problems)
    http = http or HttpSettings()
    on_stall = functools.partial(stop, StopReason.NO_PROGRESS)
    gate = Gate(config.rate_limit, stop=stop.event, patience=http.give_up_after, on_stall=on_stall)
    client = TrackClient(config, http, gate, config.parallelism, stop=stop.event)
    source = Source(records)
    run = _Run(config, source, client, settle, stop)
    started = time.monotonic()
    try:
        with Workers(client, config.parallelism) as workers:
            try:
                run.loop(workers)
            except BaseException:
                stop(StopReason.ERROR)
                raise
    finally:
        client.close()
    run.clock.finish()
    return _result(settle, source, stop, run.region, time.monotonic() - started, client, gate)


def _result(
    settle: Settle, source: Source, stop: Stop, region: str | None, elapsed: float, client: TrackClient, gate: Gate
) -> SyncResult:
    """The run's counts, and why it stopped: a changed data file or a lost ledger outranks a
    signal, since each is a problem of the run itself that the user must hear of."""
    problem = source.broken or settle.lost
    stopped = stop.reason
    if problem is not None:
        stopped = StopReason.DATA_FILE_CHANGED if problem is source.broken else StopReason.LEDGER_LOST
    wire = client.traffic
    return settle.tally.result(
        elapsed,
        stopped,
        region,
        requests=wire.sent,
        statuses=wire.answers,
        retries=gate.resends,
        error=None if problem is None else str(problem),
    )


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


class _Run:
    """The loop wiring the parts together; it holds what is between reading and settling."""

    def __init__(self, config: Config, source: Source, client: TrackClient, settle: Settle, stop: Stop) -> None:
        self.config = config
        self.source = source
        self.client = client
        self.settle = settle
        self.stop = stop
        self.mapper = RecordMapper.for_config(config)
        # Cap the updates waiting behind their person's, so that one person repeated a million
        # times cannot fill memory.
        self.people = PersonQueue(limit=max(1000, 10 * config.parallelism))
        self.packer = BatchPacker.for_workers(config.parallelism) if config.transport is Transport.BATCH else None
        # Requests made and not yet handed to the workers.
        self.outbox: list[Job] = []
        # Jobs handed over and not finished: ``parallelism`` in flight and as many again ready, so
        # a worker that finishes takes its next job at once. Batches are large, so for them only
        # one waits ready.
        self.max_jobs = config.parallelism + (1 if self.packer is not None else config.parallelism)
        self.checked = False
        self.region: str | None = None
        self.clock = Clock(enabled=all(m.target != TIMESTAMP for m in config.mappings))
        # People with a record that did not sync -> its index. Their later records are held
        # back: sent, they would overtake it, and feeding --failed back would then revert them.
        self.failed: dict[str, int] = {}

    def loop(self, workers: Workers) -> None:
        """Read, send and settle until every record has its outcome or the run stops."""
        while True:
            self._route_due()
            if not self.source.exhausted:
                self._read(workers)
            # A partly filled batch goes as soon as a worker would otherwise sit idle.
            if self.packer and workers.busy < self.config.parallelism and not self.stop.requested:
                self.outbox.append(self.packer.take())
            checking = bool(self.outbox) and not self.checked
            if checking:
                # At the first request rather than up front: a run with nothing to send (every
                # record unchanged, invalid, or none at all) needs no network.
                self.checked = True
                self.region = check_workspace(self.client, self.config)
            for job in self.outbox:
                if self.settle.sending(job.updates):
                    workers.submit(job)
            self.outbox.clear()
            # After a stop no held update is sent: only answers are worth waking for.
            held = None if self.stop.requested else self.clock.next_due()
            if workers.busy == 0:
                if held is None:
                    break
                self.stop.event.wait(held)
                continue
            if checking:
                continue  # reading paused for the check: fill the workers before waiting on one
            finished = workers.collect(timeout=held)
            if finished is None:
                continue  # a held update fell due: send it before waiting on the workers again
            job, deliveries = finished
            self.settle.delivered(job.updates, deliveries)
            for update, delivery in zip(job.updates, deliveries, strict=True):
                if delivery.status is not Status.SYNCED:
                    self.failed.setdefault(update.key, update.index)
                if delivery.retries or delivery.http_status is None:
                    # An attempt that got no clear answer may still land, late: stamp the
                    # person's next update later than anything sent so far.
                    self.clock.unclear(update.key)
            for update in job.updates:
                self._release(update)
        self._abandon()

    def _read(self, workers: Workers) -> None:
        """Map and route records until enough requests are out, or none are left.

        Before the credentials check, reading pauses at the first request, so that the check
        comes before anything else is read.
        """
        while (
            workers.busy + len(self.outbox) < self.max_jobs
            and not self.people.full
            and not self.stop.requested
            and (self.checked or not self.outbox)
        ):
            numbered = self.source.next()
            if numbered is None:
                if self.source.broken is not None:
                    self.stop(StopReason.DATA_FILE_CHANGED)
                return
            update = self.mapper.map(*numbered)
            if isinstance(update, InvalidRecord):
                self.settle.invalid(update)
            else:
                admitted = self.people.admit(update)
                if admitted is not None and self._route(admitted):
                    self._release(admitted)

    def _route(self, update: PersonUpdate) -> bool:
        """Make a request of ``update``, its person's outstanding one; or, when it needs none,
        settle it at once and return True (its person's next update may then follow)."""
        earlier = self.failed.get(update.key)
        if earlier is not None:
            reason = f"held back: record {earlier} of the same person did not sync, and this one must not overtake it"
            self.settle.not_attempted(update.index, update.person_id, update.record, reason)
            return True
        if self.settle.unchanged(update):
            return True
        if self.clock.hold(update):
            return False
        return self._request(update)

    def _route_due(self) -> None:
        """Make the requests of the held updates whose second has come."""
        while not self.stop.requested and (update := self.clock.due()) is not None:
            if self._request(update):
                self._release(update)

    def _request(self, update: PersonUpdate) -> bool:
        """Stamp ``update`` and queue its request (True when it is settled at once, too large)."""
        stamp = self.clock.stamp(update.key)
        if self.packer is None:
            self.outbox.append(Job((update,), stamp=stamp))
            return False
        item = batch_item(update, stamp)
        problem = oversized(item)
        if problem is not None:
            self.settle.invalid(InvalidRecord(update.index, update.person_id, problem, update.record))
            return True
        closed = self.packer.add(update, item)
        if closed is not None:
            self.outbox.append(closed)
        return False

    def _release(self, settled: PersonUpdate) -> None:
        """``settled`` is done: route its person's next update, unless the run is stopping."""
        update: PersonUpdate | None = settled
        while update is not None and not self.stop.requested:
            update = self.people.finish(update)
            if update is not None and not self._route(update):
                return

    def _abandon(self) -> None:
        """The run stopped: settle every record not sent as not attempted, queued ones first."""
        # A person's outstanding update before the ones waiting behind it.
        for update in [*(self.packer.drain() if self.packer else ()), *self.clock.drain(), *self.people.drain()]:
            self.settle.not_attempted(update.index, update.person_id, update.record)
        unsent, tail = self.source.rest()
        for index, record in unsent:
            self.settle.not_attempted(index, self.mapper.person_id(record), record)
        if tail is not None:
            self.settle.unread(tail)

"""Running a sync: the loop that takes each record from the file to its outcome. No printing here.

One record's way through a run, and the module that does each step:

1. read from the data file and mapped to a person update (``mapping``), or settled as invalid;
2. queued behind its person's earlier update, if one is still outstanding (``personqueue``);
3. held back (not attempted) when an earlier record of its person did not sync; skipped when the
   ledger shows the workspace holds it already (``ledger``); else made into a request, stamped
   with the second it is made in (``Clock``): a PUT of its own, or an item of a batch
   (``packer``); before the request leaves, the ledger stops vouching for any other body of that
   person;
4. sent by a worker thread, with resends and pacing (``workers``, ``client``, ``pacing``);
5. settled: counted, recorded in the ledger, handed to the caller (``settle``); its person's
   next update is then released from the queue (back to 3).

Before the first request, the credentials and region are checked. A stop (a signal, refused
credentials, an API that went away, a data file that changed) ends the reading; what was not sent
is settled as not attempted.
"""

from __future__ import annotations

import dataclasses
import heapq
import time
from collections.abc import Iterable, Iterator

from .client import HttpSettings, TrackClient
from .config import Config, Transport
from .datafile import Records
from .errors import ConfigError, DataFileChanged, OutputLost
from .ledger import Known, Ledger
from .mapping import TIMESTAMP, InvalidRecord, PersonUpdate, RecordMapper, batch_item
from .outcome import Status, Stop, StopReason
from .pacing import Gate
from .packer import BatchPacker, Job, oversized
from .personqueue import PersonQueue
from .settle import OutcomeHandler, Settle
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
    gate = Gate(
        config.rate_limit,
        stop=stop.event,
        patience=http.give_up_after,
        on_stall=lambda: stop(StopReason.NO_PROGRESS),
    )
    client = TrackClient(config, http, gate, config.parallelism, stop=stop.event)
    run = _Run(config, client, settle, ledger, stop)
    started = time.monotonic()
    try:
        with Workers(client, config.parallelism) as workers:
            try:
                run.records = records if isinstance(records, Records) else None
                run.loop(enumerate(records), workers)
            except BaseException:
                stop(StopReason.ERROR)
                raise
    finally:
        client.close()
    run.clock.finish()
    # Requests, answers and resends as they went over the wire, not as the records ended.
    result = dataclasses.replace(
        settle.tally.result(time.monotonic() - started, stop.reason, run.region),
        requests=client.traffic.sent,
        statuses=dict(sorted(client.traffic.answers.items())),
        retries=gate.resends,
    )
    if run.broken is not None:
        run.broken.result = result
        raise run.broken
    if run.lost is not None:
        run.lost.result = result
        raise run.lost
    return result


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


# Records carried by the batches in flight, the one being filled and the one ready, at most.
ITEMS_IN_FLIGHT = 10_000


class Clock:
    """The ``_timestamp`` of each request, so that a write that lands late cannot undo a later one.

    The API ignores an update stamped older than one it already applied to the person. A request
    whose attempt got no clear answer (a timeout, a dropped connection, a resend) may still be
    applied after its person's next update was sent; the next update is therefore stamped in a
    later second than any such attempt: it is not due before that second begins (:meth:`due`),
    and the run sends other people's updates meanwhile. A run that ends within the second of
    such an attempt waits it out, so that the next run's stamps are later. Off when a mapping
    sets ``_timestamp`` itself.
    """

    def __init__(self, *, enabled: bool) -> None:
        self._enabled = enabled
        # Person key -> the second in which an attempt for them last went without a clear answer.
        self._unclear: dict[str, int] = {}
        self._latest = 0

    def unclear(self, key: str) -> None:
        """An attempt for ``key`` got no clear answer: it may land at any time from now."""
        if self._enabled:
            self._latest = self._unclear[key] = int(time.time())

    def due(self, key: str) -> float:
        """The wall-clock time from which ``key``'s next request may be stamped: 0 for now."""
        after = self._unclear.get(key)
        return 0.0 if after is None else after + 1.0

    def stamp(self, key: str) -> int | None:
        """The stamp for ``key``'s next request: now, and later than any unclear attempt of theirs
        (waiting for the clock if it is asked before :meth:`due`)."""
        if not self._enabled:
            return None
        after = self._unclear.pop(key, None)
        if after is not None:
            self._wait_past(after)
        return int(time.time())

    def finish(self) -> None:
        """At the end of a run: let the second of the last unclear attempt pass."""
        if self._unclear:
            self._wait_past(self._latest)

    @staticmethod
    def _wait_past(second: int) -> None:
        # Not cut short by a stop: a stamp in the same second as the late write would lose to it.
        while (now := time.time()) < second + 1:
            time.sleep(second + 1 - now)


class _Run:
    """The loop wiring the parts together; it holds what is between reading and settling."""

    def __init__(self, config: Config, client: TrackClient, settle: Settle, ledger: Ledger | None, stop: Stop) -> None:
        self.config = config
        self.client = client
        self.settle = settle
        self.ledger = ledger
        self.stop = stop
        self.mapper = RecordMapper.for_config(config)
        # Cap the updates waiting behind their person's, so that one person repeated a million
        # times cannot fill memory.
        self.people = PersonQueue(limit=max(1000, 10 * config.parallelism))
        # Each batch in flight holds its records until its answer: bound them all together, so
        # that memory does not grow with parallelism (batches get smaller instead).
        batches = config.parallelism + 2
        self.packer = (
            BatchPacker(max_items=max(100, ITEMS_IN_FLIGHT // batches)) if config.transport is Transport.BATCH else None
        )
        # Requests made and not yet handed to the workers.
        self.outbox: list[Job] = []
        # Jobs handed over and not finished: ``parallelism`` in flight and as many again ready, so
        # a worker that finishes takes its next job at once. Batches are large, so for them only
        # one waits ready.
        self.max_jobs = config.parallelism + (1 if self.packer is not None else config.parallelism)
        self.checked = False
        self.region: str | None = None
        self.broken: DataFileChanged | None = None
        # The data file's records, when they come from one: a stop then skips reading the rest.
        self.records: Records | None = None
        # The ledger could not be written (a full disk): raised by sync() once the run stopped.
        self.lost: OutputLost | None = None
        self.clock = Clock(enabled=all(m.target != TIMESTAMP for m in config.mappings))
        # Updates whose person's last attempt went without a clear answer, each waiting for the
        # second its stamp must be later than: (due, index, update), soonest first.
        self.later: list[tuple[float, int, PersonUpdate]] = []
        # People with a record that did not sync -> its index. Their later records are held
        # back: sent, they would overtake it, and feeding --failed back would then revert them.
        self.failed: dict[str, int] = {}

    def loop(self, source: Iterator[tuple[int, object]], workers: Workers) -> None:
        """Read, send and settle until every record has its outcome or the run stops."""
        exhausted = False
        while True:
            self._route_due()
            exhausted = exhausted or self._read(source, workers)
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
                if self.ledger is not None and not self._withdraw(job):
                    continue
                workers.submit(job)
            self.outbox.clear()
            if workers.busy == 0:
                if not self.later or self.stop.requested:
                    break
                self.stop.event.wait(self.later[0][0] - time.time())
                continue
            if checking:
                continue  # reading paused for the check: fill the workers before waiting on one
            finished = workers.collect(timeout=self.later[0][0] - time.time() if self.later else None)
            if finished is None:
                continue  # an update fell due: send it before waiting on the workers again
            job, deliveries = finished
            try:
                self.settle.delivered(job.updates, deliveries)
            except OutputLost as e:  # counted and handed on; only the ledger did not learn of them
                self._lose_ledger(e)
            for update, delivery in zip(job.updates, deliveries, strict=True):
                if delivery.status is not Status.SYNCED:
                    self.failed.setdefault(update.key, update.index)
                if delivery.retries or delivery.http_status is None:
                    # An attempt that got no clear answer may still land, late: stamp the
                    # person's next update later than anything sent so far.
                    self.clock.unclear(update.key)
            for update in job.updates:
                self._release(update)
        self._abandon(source, exhausted)

    def _read(self, source: Iterator[tuple[int, object]], workers: Workers) -> bool:
        """Map and route records until enough requests are out; True once the records ran out.

        Before the credentials check, reading pauses at the first request, so that the check
        comes before anything else is read.
        """
        while (
            workers.busy + len(self.outbox) < self.max_jobs
            and not self.people.full
            and not self.stop.requested
            and (self.checked or not self.outbox)
        ):
            try:
                index, record = next(source)
            except StopIteration:
                return True
            except DataFileChanged as e:
                # Raised by sync() once what is in flight has finished and been settled.
                self.broken = e
                self.stop(StopReason.DATA_FILE_CHANGED)
                return False
            update = self.mapper.map(index, record)
            if isinstance(update, InvalidRecord):
                self.settle.invalid(update)
            else:
                admitted = self.people.admit(update)
                if admitted is not None and self._route(admitted):
                    self._release(admitted)
        return False

    def _withdraw(self, job: Job) -> bool:
        """Stop the ledger vouching for other bodies of ``job``'s people; False (and the job
        settled as not attempted) when the ledger cannot be written: it must not be sent then."""
        assert self.ledger is not None
        try:
            self.ledger.sending(job.updates)
        except OutputLost as e:
            self._lose_ledger(e)
            for update in job.updates:
                self.settle.not_attempted(update.index, update.person_id, update.record)
            return False
        return True

    def _lose_ledger(self, error: OutputLost) -> None:
        # The run stops: without a ledger it could vouch for what the workspace does not hold.
        if self.lost is None:
            self.lost = error
        self.stop(StopReason.ERROR)

    def _route(self, update: PersonUpdate) -> bool:
        """Make a request of ``update``, its person's outstanding one; or, when it needs none,
        settle it at once and return True (its person's next update may then follow)."""
        earlier = self.failed.get(update.key)
        if earlier is not None:
            reason = f"held back: record {earlier} of the same person did not sync, and this one must not overtake it"
            self.settle.not_attempted(update.index, update.person_id, update.record, reason)
            return True
        if self.ledger is not None and self.ledger.compare(update) is Known.UNCHANGED:
            self.settle.unchanged(update)
            return True
        due = self.clock.due(update.key)
        if due > time.time():
            heapq.heappush(self.later, (due, update.index, update))
            return False
        return self._request(update)

    def _route_due(self) -> None:
        """Make the requests of the updates in :attr:`later` whose second has come."""
        while self.later and self.later[0][0] <= time.time() and not self.stop.requested:
            update = heapq.heappop(self.later)[2]
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

    def _abandon(self, source: Iterator[tuple[int, object]], exhausted: bool) -> None:
        """The run stopped: settle every record not sent as not attempted, queued ones first."""
        later = [update for _, _, update in sorted(self.later)]
        self.later.clear()
        # A person's outstanding update before the ones waiting behind it.
        for update in [*(self.packer.drain() if self.packer else ()), *later, *self.people.drain()]:
            self.settle.not_attempted(update.index, update.person_id, update.record)
        if exhausted:
            return
        if self.records is not None:
            first = self.records.handed
            held, tail = self.records.unread()
            source = enumerate(held, first)
        else:
            tail = None
        for index, record in source:
            self.settle.not_attempted(index, self.mapper.person_id(record), record)
        if tail is not None:
            self.settle.unread(tail)

"""Running a sync: records in file order through a bounded pool of workers. No printing here."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from queue import SimpleQueue

from .client import Delivery, HttpSettings, Result, TrackClient
from .config import Config
from .errors import ConfigError
from .ledger import Ledger, digest
from .mapping import (
    MAX_BATCH_BYTES,
    MAX_ITEM_BYTES,
    InvalidRecord,
    PersonUpdate,
    RecordMapper,
    batch_body,
    batch_item,
    person_id_of,
)
from .pacing import Gate
from .report import RecordOutcome, Status, SyncResult, Tally

OutcomeHandler = Callable[[RecordOutcome], None]
# What a worker is handed: the updates, and for the batch transport the request body.
Unit = tuple[list[PersonUpdate], bytes | None]


class Stop:
    """Asks a running sync to stop: no new requests start, those in flight finish.

    Thread-safe and safe to call from a signal handler; the first reason given is kept.
    """

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason: str | None = None

    def __call__(self, reason: str = "stopped") -> None:
        if self.reason is None:
            self.reason = reason
        self.event.set()

    @property
    def requested(self) -> bool:
        """True once a stop was asked for."""
        return self.event.is_set()


def ordering_key(person_id: str) -> str:
    """The key under which updates of one person are serialised (and kept in the ledger).

    The API reads an id containing "@" as an email address, and email addresses are not case
    sensitive, so ``A@x.com`` and ``a@x.com`` are one person.
    """
    return person_id.lower() if "@" in person_id else person_id


@dataclass(frozen=True)
class Plan:
    """What a sync would do, worked out without sending anything (``--dry-run``)."""

    total: int
    valid: int
    invalid: int
    # The first invalid records, in file order, and how many more there were.
    problems: tuple[RecordOutcome, ...]
    more_problems: int
    # The first few requests exactly as they would be sent.
    samples: tuple[PersonUpdate, ...]
    # With a ledger: how the valid records compare with it.
    new: int | None = None
    changed: int | None = None
    unchanged: int | None = None


def plan(
    config: Config,
    records: Iterable[object],
    *,
    ledger: Ledger | None = None,
    on_outcome: OutcomeHandler | None = None,
    samples: int = 3,
    keep_problems: int = 20,
) -> Plan:
    """Validate and map every record as :func:`sync` would, without any network traffic.

    Invalid records are passed to ``on_outcome``; valid ones are only counted. With a ``ledger``
    each valid record is also classed as new (not in the ledger), changed or unchanged; a person
    repeated in the file is compared with the ledger each time, not with the file's earlier
    record.
    """
    mapper = RecordMapper(config.user_id, config.mappings, config.mode)
    tally = Tally(keep_problems)
    kept: list[PersonUpdate] = []
    total = new = changed = unchanged = 0
    for index, record in enumerate(records):
        total += 1
        item = mapper.map(index, record)
        if isinstance(item, InvalidRecord):
            outcome = RecordOutcome(index, Status.INVALID, item.person_id, item.reason, record=record)
            tally.add(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
            continue
        if ledger is not None:
            known = ledger.known(ordering_key(item.person_id))
            if known is None:
                new += 1
            elif known == digest(item.body):
                unchanged += 1
                continue
            else:
                changed += 1
        if len(kept) < samples:
            kept.append(item)
    result = tally.result(0.0)
    counts = (new, changed, unchanged) if ledger is not None else (None, None, None)
    return Plan(
        total, total - result.invalid, result.invalid, result.problems, result.more_problems, tuple(kept), *counts
    )


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
    run = _Run(config, http or HttpSettings(), stop or Stop(), ledger, on_outcome, keep_problems)
    return run.execute(records)


class _Run:
    def __init__(
        self,
        config: Config,
        http: HttpSettings,
        stop: Stop,
        ledger: Ledger | None,
        on_outcome: OutcomeHandler | None,
        keep: int,
    ) -> None:
        self.config = config
        self.stop = stop
        self.ledger = ledger
        self.on_outcome = on_outcome
        self.tally = Tally(keep)
        self.mapper = RecordMapper(config.user_id, config.mappings, config.mode)
        self.gate = Gate(config.rate_limit, stop=stop.event)
        self.client = TrackClient(config, http, self.gate, config.parallelism)
        self.batches = config.transport == "batch"
        self.ready: SimpleQueue[Unit | None] = SimpleQueue()
        self.done: SimpleQueue[tuple[list[PersonUpdate], list[Delivery]]] = SimpleQueue()
        # Units handed to the workers and not finished: ``parallelism`` in flight and as many
        # again ready, so a worker that finishes takes its next unit at once. Batches are large,
        # so for them only one waits ready.
        self.units = 0
        self.unit_limit = config.parallelism + (1 if self.batches else config.parallelism)
        # Every person with an update outstanding, and the later updates queued behind it. Cap
        # the queued ones so one person repeated a million times cannot fill memory.
        self.behind: dict[str, deque[PersonUpdate]] = {}
        self.waiting = 0
        self.max_waiting = max(1000, 10 * config.parallelism)
        # The batch being filled: its updates, their encoded items, and its size so far.
        self.batch: list[PersonUpdate] = []
        self.items: list[bytes] = []
        self.batch_bytes = 0
        self.checked = False
        self.region: str | None = None
        # Requests in a row that got no HTTP answer at all, even after their resends. Past the
        # limit the API has gone away: sending the rest would only fail them slowly, one by one.
        self.unanswered = 0
        self.max_unanswered = max(10, config.parallelism)

    def execute(self, records: Iterable[object]) -> SyncResult:
        """Run the workers and the pump over ``records``; always stop the workers and close up."""
        started = time.monotonic()
        try:
            with ThreadPoolExecutor(self.config.parallelism, thread_name_prefix="cio-sync") as pool:
                for _ in range(self.config.parallelism):
                    pool.submit(self._worker)
                try:
                    self._pump(enumerate(records))
                except BaseException:
                    self.stop("error")
                    raise
                finally:
                    for _ in range(self.config.parallelism):
                        self.ready.put(None)
        finally:
            self.client.close()
        return self.tally.result(time.monotonic() - started, self.stop.reason, self.region)

    def _pump(self, source: Iterator[tuple[int, object]]) -> None:
        exhausted = False
        parallelism = self.config.parallelism
        while True:
            while self.units < self.unit_limit and self.waiting < self.max_waiting and not self.stop.requested:
                try:
                    index, record = next(source)
                except StopIteration:
                    exhausted = True
                    break
                item = self.mapper.map(index, record)
                if isinstance(item, InvalidRecord):
                    self._emit(RecordOutcome(index, Status.INVALID, item.person_id, item.reason, record=record))
                    continue
                key = ordering_key(item.person_id)
                queue = self.behind.get(key)
                if queue is not None:
                    queue.append(item)
                    self.waiting += 1
                    continue
                self.behind[key] = deque()
                self._dispatch(item, key)
            # A partly filled batch goes as soon as a worker would otherwise sit idle.
            if self.batch and self.units < parallelism and not self.stop.requested:
                self._flush()
            if self.units == 0:
                break
            items, deliveries = self.done.get()
            self.units -= 1
            accepted = [self._settle(item, delivery) for item, delivery in zip(items, deliveries, strict=True)]
            # Recorded before the person's next record is dispatched: its own entry must be in
            # place for that record to withdraw it.
            if self.ledger is not None:
                self.ledger.accepted(entry for entry in accepted if entry is not None)
            for item in items:
                self._release(ordering_key(item.person_id))
        leftovers = [*self.batch, *(item for queue in self.behind.values() for item in queue)]
        for item in leftovers:
            self._emit(RecordOutcome(item.index, Status.NOT_ATTEMPTED, item.person_id, record=item.record))
        if not exhausted:
            for index, record in source:
                person_id = None
                if isinstance(record, dict) and self.config.user_id in record:
                    person_id = person_id_of(record[self.config.user_id], self.config.user_id)[0]
                self._emit(RecordOutcome(index, Status.NOT_ATTEMPTED, person_id, record=record))

    def _dispatch(self, item: PersonUpdate, key: str) -> None:
        """Send ``item``, whose person has nothing outstanding, unless the ledger has it already."""
        while True:
            if self.ledger is not None and self.ledger.vouches(key, digest(item.body)):
                self._emit(RecordOutcome(item.index, Status.UNCHANGED, item.person_id, record=item.record))
            elif not self.batches:
                self._hand_over(([item], None))
                return
            else:
                encoded = batch_item(item)
                if len(encoded) <= MAX_ITEM_BYTES:
                    if self.batch_bytes + len(encoded) + 1 > MAX_BATCH_BYTES:
                        self._flush()
                    self.batch.append(item)
                    self.items.append(encoded)
                    self.batch_bytes += len(encoded) + 1
                    return
                reason = (
                    f"as a batch item it is {len(encoded):,} bytes; the batch endpoint allows at most "
                    f"{MAX_ITEM_BYTES:,} (32 KB)"
                )
                self._emit(RecordOutcome(item.index, Status.INVALID, item.person_id, reason, record=item.record))
            # Done with this one at once: the next update of the same person may go.
            queue = self.behind[key]
            if not queue or self.stop.requested:
                if not queue:
                    del self.behind[key]
                return
            item = queue.popleft()
            self.waiting -= 1

    def _release(self, key: str) -> None:
        """The outstanding update of ``key`` is finished: dispatch the next one, if any."""
        queue = self.behind[key]
        if not queue:
            del self.behind[key]
        elif not self.stop.requested:
            self.waiting -= 1
            self._dispatch(queue.popleft(), key)

    def _flush(self) -> None:
        batch, self.batch = self.batch, []
        items, self.items = self.items, []
        self.batch_bytes = 0
        self._hand_over((batch, batch_body(items)))

    def _hand_over(self, unit: Unit) -> None:
        if not self.checked:
            self._check_credentials()
        if self.ledger is not None:
            self.ledger.sending(ordering_key(item.person_id) for item in unit[0])
        self.ready.put(unit)
        self.units += 1

    def _check_credentials(self) -> None:
        # Checked at the first request rather than up front: a run with nothing to send (every
        # record unchanged, invalid, or none at all) needs no network.
        self.checked = True
        self.region = self.client.check_credentials()
        if self.region and not self.config.custom_base_url and self.region != self.config.region:
            raise ConfigError(
                f'the workspace is in the "{self.region}" region but the configuration says '
                f'"{self.config.region}": set "region": "{self.region}"'
            )

    def _worker(self) -> None:
        """One of ``parallelism`` workers: send ready units until told to stop (None)."""
        while (unit := self.ready.get()) is not None:
            items, body = unit
            try:
                if body is None:
                    deliveries = [self.client.put_person(items[0].path, items[0].body)]
                else:
                    deliveries = self.client.post_batch(body, len(items))
            except BaseException as e:  # a bug must not leave the main loop waiting forever
                deliveries = [Delivery(Result.FAILED, None, f"internal error: {type(e).__name__}: {e}")] * len(items)
            self.done.put((items, deliveries))

    def _settle(self, update: PersonUpdate, delivery: Delivery) -> tuple[str, bytes] | None:
        """Count and pass on ``update``'s outcome; the ledger entry it earns, if any."""
        result = delivery.result
        entry = None
        if result is Result.SYNCED:
            status = Status.SYNCED
            entry = (ordering_key(update.person_id), digest(update.body))
        elif result is Result.NOT_SENT:
            status = Status.NOT_ATTEMPTED
        else:
            status = Status.FAILED
            if result is Result.UNAUTHORIZED:
                self.stop("credentials")
        if delivery.status is not None:
            self.unanswered = 0
        elif result is Result.FAILED:
            self.unanswered += 1
            if self.unanswered >= self.max_unanswered:
                self.stop("unreachable")
        self._emit(
            RecordOutcome(
                update.index,
                status,
                update.person_id,
                delivery.reason,
                delivery.status,
                delivery.retries,
                update.record,
            )
        )
        return entry

    def _emit(self, outcome: RecordOutcome) -> None:
        self.tally.add(outcome)
        if self.on_outcome is not None:
            self.on_outcome(outcome)

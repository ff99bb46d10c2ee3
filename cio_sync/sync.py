"""Running a sync: records in file order through a bounded pool of workers. No printing here."""

from __future__ import annotations

import itertools
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
from .mapping import InvalidRecord, PersonUpdate, RecordMapper, person_id_of
from .pacing import Gate
from .report import RecordOutcome, Status, SyncResult, Tally

OutcomeHandler = Callable[[RecordOutcome], None]


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
    """The key under which updates of one person are serialised.

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


def plan(
    config: Config,
    records: Iterable[object],
    *,
    on_outcome: OutcomeHandler | None = None,
    samples: int = 3,
    keep_problems: int = 20,
) -> Plan:
    """Validate and map every record as :func:`sync` would, without any network traffic.

    Invalid records are passed to ``on_outcome``; valid ones are only counted.
    """
    mapper = RecordMapper(config.user_id, config.mappings)
    tally = Tally(keep_problems)
    kept: list[PersonUpdate] = []
    total = 0
    for index, record in enumerate(records):
        total += 1
        item = mapper.map(index, record)
        if isinstance(item, InvalidRecord):
            outcome = RecordOutcome(index, Status.INVALID, item.person_id, item.reason, record=record)
            tally.add(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
        elif len(kept) < samples:
            kept.append(item)
    result = tally.result(0.0)
    return Plan(total, total - result.invalid, result.invalid, result.problems, result.more_problems, tuple(kept))


def sync(
    config: Config,
    records: Iterable[object],
    *,
    http: HttpSettings | None = None,
    on_outcome: OutcomeHandler | None = None,
    stop: Stop | None = None,
    keep_problems: int = 20,
) -> SyncResult:
    """Upsert every record into the workspace ``config`` names, and count what happened.

    Records are read lazily from ``records`` (at most a bounded number are held at once). The
    credentials are checked first: :class:`~cio_sync.errors.CredentialsRejected` or
    :class:`~cio_sync.errors.ApiUnreachable` is raised before any person is written. Updates of
    one person are applied in file order. Every record's outcome is passed to ``on_outcome`` from
    the calling thread. ``stop`` stops the run early; the remaining records count as not
    attempted.
    """
    run = _Run(config, http or HttpSettings(), stop or Stop(), on_outcome, keep_problems)
    return run.execute(records)


class _Run:
    def __init__(
        self, config: Config, http: HttpSettings, stop: Stop, on_outcome: OutcomeHandler | None, keep: int
    ) -> None:
        self.config = config
        self.stop = stop
        self.on_outcome = on_outcome
        self.tally = Tally(keep)
        self.mapper = RecordMapper(config.user_id, config.mappings)
        self.gate = Gate(config.rate_limit, stop=stop.event)
        self.client = TrackClient(config, http, self.gate, config.parallelism)
        self.ready: SimpleQueue[PersonUpdate | None] = SimpleQueue()
        self.done: SimpleQueue[tuple[PersonUpdate, Delivery]] = SimpleQueue()
        # Later records of a person whose update is in flight wait here; cap them so one person
        # repeated a million times cannot fill memory.
        self.max_waiting = max(1000, 10 * config.parallelism)

    def execute(self, records: Iterable[object]) -> SyncResult:
        started = time.monotonic()
        source = iter(enumerate(records))
        first = next(source, None)
        if first is None:  # nothing to send: no need to reach the workspace at all
            self.client.close()
            return self.tally.result(time.monotonic() - started)
        try:
            region = self.client.check_credentials()
            if region and not self.config.custom_base_url and region != self.config.region:
                raise ConfigError(
                    f'the workspace is in the "{region}" region but the configuration says '
                    f'"{self.config.region}": set "region": "{region}"'
                )
            with ThreadPoolExecutor(self.config.parallelism, thread_name_prefix="cio-sync") as pool:
                for _ in range(self.config.parallelism):
                    pool.submit(self._worker)
                try:
                    self._pump(itertools.chain((first,), source))
                except BaseException:
                    self.stop("error")
                    raise
                finally:
                    for _ in range(self.config.parallelism):
                        self.ready.put(None)
        finally:
            self.client.close()
        return self.tally.result(time.monotonic() - started, self.stop.reason, region)

    def _pump(self, source: Iterator[tuple[int, object]]) -> None:
        # Updates handed to the workers and not finished yet: at most ``parallelism`` are in
        # flight, and as many again wait ready, so a worker that finishes takes its next update
        # at once instead of waiting for this thread to wake up.
        limit = 2 * self.config.parallelism
        outstanding = 0
        waiting = 0
        # Every person with an update outstanding, and the later updates queued behind it.
        behind: dict[str, deque[PersonUpdate]] = {}
        exhausted = False
        while True:
            while outstanding < limit and waiting < self.max_waiting and not self.stop.requested:
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
                queue = behind.get(key)
                if queue is not None:
                    queue.append(item)
                    waiting += 1
                    continue
                behind[key] = deque()
                self.ready.put(item)
                outstanding += 1
            if outstanding == 0:
                break
            update, delivery = self.done.get()
            outstanding -= 1
            self._settle(update, delivery)
            key = ordering_key(update.person_id)
            queue = behind[key]
            if queue and not self.stop.requested:
                self.ready.put(queue.popleft())
                waiting -= 1
                outstanding += 1
            elif not queue:
                del behind[key]
        for queue in behind.values():
            for item in queue:
                self._emit(RecordOutcome(item.index, Status.NOT_ATTEMPTED, item.person_id, record=item.record))
        if not exhausted:
            for index, record in source:
                person_id = None
                if isinstance(record, dict) and self.config.user_id in record:
                    person_id = person_id_of(record[self.config.user_id], self.config.user_id)[0]
                self._emit(RecordOutcome(index, Status.NOT_ATTEMPTED, person_id, record=record))

    def _worker(self) -> None:
        """One of ``parallelism`` workers: send ready updates until told to stop (None)."""
        while (update := self.ready.get()) is not None:
            try:
                delivery = self.client.put_person(update.path, update.body)
            except BaseException as e:  # a bug must not leave the main loop waiting forever
                delivery = Delivery(Result.FAILED, None, f"internal error: {type(e).__name__}: {e}")
            self.done.put((update, delivery))

    def _settle(self, update: PersonUpdate, delivery: Delivery) -> None:
        result = delivery.result
        if result is Result.SYNCED:
            status = Status.SYNCED
        elif result is Result.NOT_SENT:
            status = Status.NOT_ATTEMPTED
        else:
            status = Status.FAILED
            if result is Result.UNAUTHORIZED:
                self.stop("credentials")
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

    def _emit(self, outcome: RecordOutcome) -> None:
        self.tally.add(outcome)
        if self.on_outcome is not None:
            self.on_outcome(outcome)

"""``verify``: what the file says each person should hold, read back through the App API, compared.

Returns a :class:`VerifyResult` whatever happened once requests were made (a refused key, an
unreachable API): only a problem found before the first request (no App API key) is raised.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from ..clock import SYSTEM_CLOCK, Clock
from ..errors import ConfigError, DataFileError
from ..input.config import APP_API_KEY_ENV, Config, IdType
from ..input.mapping import PersonUpdate, RecordMapper
from ..redact import Redactor
from ..transport.client import HttpSettings
from .compare import matches, shown
from .expected import ExpectedPerson, ExpectedState, Verdict
from .reader import MAX_IDS, PACE, AppReader, Fetched, ReadStatus

# Threads reading at once: the 10-per-second limit is shared, so a few cover the answers' latency.
DEFAULT_WORKERS = 4
NO_KEY = (
    f'no App API key: set "appApiKey" in the configuration or the {APP_API_KEY_ENV} environment variable '
    "(an App API key, not the Track API key: see docs/verify.md)"
)


@dataclass(frozen=True, slots=True)
class Difference:
    """One attribute a person holds otherwise than the file says: the file's value as JSON text,
    the workspace's string (None when the workspace does not have the attribute)."""

    person: str
    attribute: str
    file_value: str
    workspace_value: str | None


@dataclass
class VerifyResult:
    """What a verification found. ``stopped`` says why it ended early (None: it read everyone chosen)."""

    records: int = 0
    invalid: int = 0
    people: int = 0
    # The people chosen to read back: everyone, or the sample.
    chosen: int = 0
    matching: int = 0
    differing: int = 0
    missing: int = 0
    # Chosen but never read back, because the read-back stopped.
    unchecked: int = 0
    sample: int | None = None
    seed: int | None = None
    stopped: ReadStatus | None = None
    error: str | None = None
    # Requests sent to the App API, resends included.
    requests: int = 0
    seconds: float = 0.0
    # Records written to the failed sink (every record of each person who differs or is missing).
    failed_records: int = 0
    # Why the failed records could not all be written: the data file changed since it was read.
    failed_lost: str | None = None

    @property
    def checked(self) -> int:
        """People read back."""
        return self.matching + self.differing + self.missing


# Called for each person read back who differs or is missing (with their differences).
OnPerson = Callable[[str, Verdict, list[Difference]], None]


@dataclass(frozen=True)
class Options:
    """How to verify, besides what: the HTTP settings, the sample, and where findings go."""

    http: HttpSettings = field(default_factory=HttpSettings)
    sample: int | None = None
    seed: int | None = None
    workers: int = DEFAULT_WORKERS
    clock: Clock = SYSTEM_CLOCK
    rate: float | None = None
    on_person: OnPerson | None = None
    on_progress: Callable[[int, int], None] | None = None
    # With both: the records are read again, and every record of each failed person goes to failed.
    failed: Callable[[object], None] | None = None
    records_again: Callable[[], Iterable[object]] | None = None
    # Set (from any thread, or a signal handler) to stop: no new request starts, those in flight
    # end within seconds, and the result says ``stopped``.
    stop: threading.Event | None = None
    # Called once the data file is read, just before the first request; and once the read-back is
    # over, before the file is read again for ``failed``.
    on_reading: Callable[[], None] | None = None
    on_read_back: Callable[[], None] | None = None


def verify(config: Config, records: Iterable[object], options: Options | None = None) -> VerifyResult:
    """Verify that the workspace holds what ``records`` (the data file's, in file order) say.

    Raises :class:`~cio_sync.errors.ConfigError` when there is no App API key, before reading
    anything. Everything after that is in the result.
    """
    o = options or Options()
    if not config.app_api_key:
        raise ConfigError(NO_KEY)
    if o.stop is None:
        o = replace(o, stop=threading.Event())
    assert o.stop is not None
    started = time.monotonic()
    mapper = RecordMapper.for_config(config)
    state = ExpectedState()
    try:
        result = VerifyResult()
        for index, record in enumerate(records):
            result.records += 1
            mapped = mapper.map(index, record)
            if isinstance(mapped, PersonUpdate):
                state.add(mapped)
            else:
                result.invalid += 1
                if mapped.key is not None:
                    state.hold(mapped.key, index)
        state.flush()
        result.people = state.count
        chosen = _choose(state.count, o, result)
        if o.on_reading is not None:
            o.on_reading()
        _read_back(config, state, chosen, o, result)
        if o.on_read_back is not None:
            o.on_read_back()
        # The read-back sets stop itself when it fails (a refused key); then the people found so
        # far still go to failed. Only the caller's stop cuts that short.
        asked, failed_itself = o.stop, result.stopped not in (None, ReadStatus.STOPPED)
        if o.failed is not None and o.records_again is not None and state.any_failed():
            try:
                result.failed_records = _write_failed(
                    mapper, state, o.records_again(), o.failed, lambda: not failed_itself and asked.is_set()
                )
            except DataFileError as e:
                result.failed_lost = str(e)
        if result.stopped is None and o.stop.is_set():
            result.stopped, result.error = ReadStatus.STOPPED, "stopped before every person was read back"
        result.seconds = time.monotonic() - started
        return result
    finally:
        state.close()


def _choose(count: int, o: Options, result: VerifyResult) -> list[int] | None:
    """The people to read back, by number: None for everyone, else a uniform sample (repeatable by seed)."""
    result.chosen = count
    if o.sample is None:
        return None
    seed = o.seed if o.seed is not None else random.SystemRandom().randrange(1 << 32)
    result.sample, result.seed = o.sample, seed
    if o.sample >= count:
        return None
    result.chosen = o.sample
    return sorted(random.Random(seed).sample(range(count), o.sample))


def _batches(people: Iterator[ExpectedPerson]) -> Iterator[list[ExpectedPerson]]:
    """People in requests of at most 100, each request naming people one way (id, email or cio_id)."""
    pending: dict[IdType, list[ExpectedPerson]] = {}
    for person in people:
        batch = pending.setdefault(person.kind, [])
        batch.append(person)
        if len(batch) == MAX_IDS:
            yield batch
            pending[person.kind] = []
    yield from (batch for batch in pending.values() if batch)


def _read_back(
    config: Config, state: ExpectedState, chosen: list[int] | None, o: Options, result: VerifyResult
) -> None:
    assert config.app_api_key is not None and o.stop is not None
    stop = o.stop
    reader = AppReader(
        config.app_base_url,
        config.app_api_key,
        o.http,
        pool_size=o.workers,
        clock=o.clock,
        stop=stop,
        rate=o.rate or PACE,
        redact=Redactor(config.secrets),
    )
    in_flight: deque[tuple[list[ExpectedPerson], Future[Fetched]]] = deque()

    def settle() -> None:
        batch, future = in_flight.popleft()
        _settle(state, batch, future.result(), o, result)
        if result.stopped is not None:
            stop.set()
        if o.on_progress is not None:
            o.on_progress(result.checked + result.unchecked, result.chosen)

    try:
        # Ctrl-C (or any error) here stops the attempts in flight at their next wait, not after them.
        with _stopping_on_error(stop), ThreadPoolExecutor(max_workers=max(1, o.workers)) as pool:
            for batch in _batches(state.people(chosen)):
                if stop.is_set():
                    result.unchecked += len(batch)
                    continue
                ids = [person.identifier for person in batch]
                in_flight.append((batch, pool.submit(reader.fetch, batch[0].kind.value, ids)))
                while len(in_flight) >= 2 * o.workers:
                    settle()
            while in_flight:
                settle()
    finally:
        result.requests = reader.traffic_sent
        reader.close()


@contextmanager
def _stopping_on_error(stop: threading.Event) -> Iterator[None]:
    try:
        yield
    except BaseException:
        stop.set()
        raise


def _settle(
    state: ExpectedState, batch: list[ExpectedPerson], fetched: Fetched, o: Options, result: VerifyResult
) -> None:
    """Count one request's people: their verdicts, or unchecked when the request failed."""
    found = _found(fetched, batch)
    if isinstance(found, Fetched):
        result.unchecked += len(batch)
        if result.stopped is None or result.stopped is ReadStatus.STOPPED:
            result.stopped, result.error = found.status, found.message or None
        return
    verdicts = []
    for person in batch:
        customer = found.get(_lookup(person.identifier, person.kind))
        if customer is None:
            verdict, differences = Verdict.MISSING, []
        else:
            differences = compare_person(person, customer.get("attributes"))
            verdict = Verdict.DIFFERS if differences else Verdict.MATCHES
        verdicts.append((person.key, verdict))
        if verdict is Verdict.MATCHES:
            result.matching += 1
            continue
        if verdict is Verdict.MISSING:
            result.missing += 1
        else:
            result.differing += 1
        if o.on_person is not None:
            o.on_person(label(person), verdict, differences)
    state.judge(verdicts)


def _found(fetched: Fetched, batch: list[ExpectedPerson]) -> dict[str, dict[str, Any]] | Fetched:
    """The people one request found, by identifier; or, when none can be used, why."""
    if fetched.status is not ReadStatus.READ:
        return fetched
    found, twice = _by_identifier(fetched.customers, batch[0].kind)
    named_twice = next((person for person in batch if _lookup(person.identifier, person.kind) in twice), None)
    if named_twice is None:
        return found
    # Two profiles for one identifier: a stale copy, or (by email, in a workspace that tells people
    # apart by id) two people sharing an address. Which one the file describes cannot be told, and
    # taking the last would report them as holding whatever it says: neither is used. As with any
    # other 200 that is not the App API's answer, nobody is judged on its word.
    message = (
        f"the App API's answer named {label(named_twice)} twice: not used, since which of the two the "
        "data file describes cannot be told"
    )
    return Fetched(ReadStatus.UNREACHABLE, message=message, http_status=fetched.http_status)


def label(person: ExpectedPerson) -> str:
    """How messages name a person: as the file does (a cio_id with its ``cio_`` prefix)."""
    return "cio_" + person.identifier if person.kind is IdType.CIO_ID else person.identifier


def compare_person(person: ExpectedPerson, held: object) -> list[Difference]:
    """The attributes the file sets that ``held`` (the App API's attributes object) does not hold."""
    attributes = held if isinstance(held, dict) else {}
    differences = []
    for name, expected in person.attributes.items():
        value = _as_text(attributes.get(name))
        if not matches(expected, value):
            differences.append(Difference(label(person), name, shown(expected), value))
    return differences


def _as_text(value: Any) -> str | None:
    # The App API answers strings; an answer that holds another JSON value is read as its JSON text.
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _lookup(identifier: str, kind: IdType) -> str:
    # Email addresses name people whatever their case.
    return identifier.lower() if kind is IdType.EMAIL else identifier


def _by_identifier(customers: list[dict[str, Any]], kind: IdType) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """The answer's people by the identifier the request named them with, and the identifiers it
    names more than once."""
    found: dict[str, dict[str, Any]] = {}
    twice: set[str] = set()
    for customer in customers:
        identifiers = customer.get("identifiers")
        identifiers = identifiers if isinstance(identifiers, dict) else {}
        attributes = customer.get("attributes")
        attributes = attributes if isinstance(attributes, dict) else {}
        value = identifiers.get(kind.value) or attributes.get(kind.value)
        if value is None and kind is IdType.ID:
            value = customer.get("id")
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            key = _lookup(str(value), kind)
            if key in found:
                twice.add(key)
            found[key] = customer
    return found, twice


def _write_failed(
    mapper: RecordMapper,
    state: ExpectedState,
    records: Iterable[object],
    failed: Callable[[object], None],
    stopped: Callable[[], bool],
) -> int:
    """Every valid record of each person who differs or is missing, in file order; how many (until ``stop``)."""
    written = 0
    for index, record in enumerate(records):
        if stopped():  # a file of millions takes a while to read again
            break
        mapped = mapper.map(index, record)
        if not isinstance(mapped, PersonUpdate) or state.verdict(mapped.key) not in (Verdict.DIFFERS, Verdict.MISSING):
            continue
        held = state.held_from(mapped.key)
        if held is None or index < held:  # a sync holds back what follows an invalid record
            failed(record)
            written += 1
    return written

"""Running a sync: the loop that takes each record from the file to its outcome. No printing here.

One record's way through a run, and the module that does each step:

1. read from the data file (``source``), a run of records at a time, and mapped to a person
   update, or found invalid (``mapping``); merged with the person's other records (``merge``);
2. routed through its person (``routing``, ``people``): one record per person is out at a
   time, the later ones wait behind it in file order. In its turn, a record is settled as
   invalid; or held back, when an earlier record of its person did not sync; or skipped, when the
   ledger shows the workspace holds it already (``ledger``); or held until its person's next
   second, when their last write went without a clear answer; else stamped (``stamps``) and
   handed to the transport's adapter, which makes it a request of its own (v1) or an item of a
   batch (``adapters``, ``packer``). A run of records of people with nothing under way goes this
   way all at once. Before a request leaves, the ledger stops vouching for other bodies of its
   people (``settle``);
3. sent by a worker thread, with resends and pacing (``workers``, ``client``, ``pacing``);
4. settled: counted, recorded in the ledger, handed to the caller (``settle``); its person's next
   record is then released (back to 2).

With ``whenRemoved`` (``mirror``), once every record was read and settled, the people the ledger
holds who were named by no record are removed (``removal``); a person cio-sync suppressed who is
in the file again is unsuppressed before their write (``comeback``).

Before the first request, the credentials and region are checked. A stop (a signal, refused
credentials, an API that went away, a data file that changed, a ledger that cannot be written)
ends the reading; what was not sent is settled as not attempted, and the result says why.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from ..clock import SYSTEM_CLOCK, Clock
from ..input.config import Config
from ..input.mapping import TIMESTAMP
from ..input.source import Source
from ..outcome import Stop, StopReason
from ..redact import Redactor
from ..state.ledger import Ledger
from ..transport.client import HttpSettings, TrackClient
from ..transport.pacing import Gate
from .merge import Works, merger_for
from .mirrored import MirroredEngine
from .repeats import PersonIndex, temporary_storage
from .settle import OutcomeHandler, Outcomes, Settle
from .stamps import Stamps
from .tally import SyncResult, Tally
from .workers import Workers


def sync(
    config: Config,
    records: Iterable[object],
    *,
    http: HttpSettings | None = None,
    ledger: Ledger | None = None,
    on_outcome: OutcomeHandler | None = None,
    only_problems: bool = False,
    stop: Stop | None = None,
    keep_problems: int = 20,
    clock: Clock = SYSTEM_CLOCK,
    index: PersonIndex | None = None,
) -> SyncResult:
    """Upsert every record into the workspace ``config`` names, and count what happened.

    Records are read lazily from ``records`` (at most a bounded number are held at once). Before
    the first request the credentials are checked: :class:`~cio_sync.errors.CredentialsRejected`
    or :class:`~cio_sync.errors.ApiUnreachable` is raised before any person is written. From then
    on the run returns its result, whatever stops it (``result.stopped`` says what, and
    ``result.error`` the problem in words). Records of one person are applied in file order. With
    a ``ledger``, records whose body was already accepted are not sent (they count as unchanged)
    and accepted ones are recorded. Every record's outcome is passed to ``on_outcome`` from the
    calling thread (with ``only_problems``, only those of records not synced nor unchanged: the
    result counts the rest, and a caller who needs only those spares a call for every record).
    ``stop`` stops the run early; the remaining records count as not attempted. A person named
    in several records is written once, their records merged (see :mod:`~cio_sync.engine.merge`);
    ``index``, when the caller counted the records' people as it checked them, spares reading
    them an extra time.
    """
    stop = stop or Stop()
    merger = merger_for(config, records, index)
    outcomes = Outcomes(Tally(keep_problems), on_outcome, Redactor(config.secrets), merger.covered, only_problems)
    settle = Settle(stop, config.parallelism, ledger, outcomes)
    http = http or HttpSettings()
    on_stall = functools.partial(stop, StopReason.NO_PROGRESS)
    gate = Gate(config.rate_limit, stop=stop.event, clock=clock, patience=http.give_up_after, on_stall=on_stall)
    client = TrackClient(config, http, gate, config.parallelism, stop=stop.event, clock=clock)
    stamps = _stamps(config, ledger, clock)
    run = MirroredEngine(config, Works(merger), client, settle, stamps, clock, ledger)
    started = clock.monotonic()
    try:
        on_error = functools.partial(stop, StopReason.ERROR)
        with Workers(run.adapter, config.parallelism, clock) as workers, temporary_storage(on_error):
            run.loop(workers)
    finally:
        client.close()
        run.people.close()
        merger.close()
    stamps.finish()
    return run.mirrored(_result(settle, run.works.source, stop, run.region, clock.monotonic() - started, client, gate))


def _stamps(config: Config, ledger: Ledger | None, clock: Clock) -> Stamps:
    """The run's stamps: off when a mapping sets ``_timestamp``; with a ledger, above every stamp
    an earlier run may have sent, and written ahead into it."""
    enabled = all(m.target != TIMESTAMP for m in config.mappings)
    if ledger is None or not enabled:
        return Stamps(clock, enabled=enabled)
    return Stamps(clock, enabled=True, floor=ledger.stamp_floor(), persist=ledger.stamped)


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

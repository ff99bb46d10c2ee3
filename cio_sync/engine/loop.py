"""The loop of a run: read, route each record through its person, send, settle. No printing, no I/O
of its own: reading is the source's, sending the workers', remembering the settle's."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from ..clock import Clock
from ..errors import ConfigError
from ..input.config import Config
from ..outcome import Stop, StopReason
from ..transport.client import TrackClient
from .adapters import Adapter, adapter_for
from .merge import Works
from .people import People, Work
from .routing import Routing
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
        adapter = adapter_for(config, client)
        self.routing = Routing(self.people, settle, stamps, adapter, clock)
        # Requests made and not yet handed to the workers.
        self.outbox = self.routing.outbox
        # Jobs handed over and not finished: ``parallelism`` in flight and the adapter's ready ones.
        self.max_jobs = config.parallelism + adapter.ready
        self.checked = False
        self.region: str | None = None

    @property
    def adapter(self) -> Adapter:
        """The adapter the run's records go through (the routing's)."""
        return self.routing.adapter

    def loop(self, workers: Workers) -> None:
        """Read, send and settle until every record has its outcome or the run stops."""
        while True:
            self.routing.due()
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
            # Every answer come meanwhile is settled before reading on, and the requests that
            # follow them are made together.
            while finished is not None:
                self.routing.delivered(*finished)
                finished = workers.collect(timeout=0)
        self._abandon()

    def _read(self, workers: Workers) -> None:
        """Map and route records until enough requests are out, or none are left.

        Before the credentials check, reading pauses at the first request, so that the check
        comes before anything else is read.
        """
        adapter, people, stopped, outbox = self.adapter, self.people, self.stop.event.is_set, self.outbox

        def room() -> bool:
            return (
                workers.busy + len(outbox) < self.max_jobs
                and adapter.room
                and not people.full
                and not stopped()
                and (self.checked or not outbox)
            )

        while room():
            requests = self.max_jobs - workers.busy - len(outbox)
            works = self._next_works(requests)
            if not works:
                if self.works.source.broken is not None:
                    self.stop(StopReason.DATA_FILE_CHANGED)
                return
            self.works.give_back(len(works) - self.routing.take(works, room, requests))

    def _next_works(self, requests: int) -> Sequence[Work]:
        """The next records' works to route, about as many as may be taken before the bounds are
        looked at again (so that few are given back): one before the credentials check; after it,
        no more than the adapter makes ``requests`` requests of, nor more than may wait."""
        if not self.checked:
            return self.works.take(1)
        return self.works.take(max(1, min(self.adapter.space(requests), self.people.limit - self.people.waiting)))

    def _abandon(self) -> None:
        """The run stopped: settle every record not sent, each person's in file order."""
        works = itertools.chain(self.adapter.drain(), self.people.drain(), self.works.drain())
        self.settle.abandoned(works, self.works.source, self.works.merger.mapper.person_id)


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

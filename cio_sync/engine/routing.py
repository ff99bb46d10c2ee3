"""One record's way between reading and sending: through its person, to the transport's adapter.

In its person's turn (:class:`~cio_sync.engine.people.People`), a record is settled as invalid;
or held back, when an earlier record of its person did not sync; or found unchanged in the ledger;
or held until its person's next second; else stamped and handed to the adapter, which makes it a
request, or an item of one. Once it is settled, its person's next record takes its turn.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import cast

from ..clock import Clock
from ..errors import OutputLost
from ..input.mapping import InvalidRecord, PersonUpdate
from ..outcome import Delivery, Status
from .adapters import Adapter
from .packer import Job
from .people import People, Work
from .settle import Settle
from .stamps import Stamps

_KEY = operator.attrgetter("key")


class Routing:
    """Routes a run's records, in file order, to requests in :attr:`outbox`; one record per person
    is out at a time. Used from the run's thread alone."""

    def __init__(self, people: People, settle: Settle, stamps: Stamps, adapter: Adapter, clock: Clock) -> None:
        self.people = people
        self.settle = settle
        self.stamps = stamps
        self.adapter = adapter
        self.clock = clock
        self.stop = settle.stop
        # Requests made and not yet handed to the workers.
        self.outbox: list[Job] = []

    def take(self, works: Sequence[Work], room: Callable[[], bool], requests: int) -> int:
        """Route the first of ``works``, the next records', each through its person, while there
        is ``room`` for another and at most ``requests`` more requests are made: how many. All at
        once where that is what one by one would do (:meth:`_fresh`)."""
        taken = self._fresh(works, requests)
        if taken is not None:
            return taken
        for taken, work in enumerate(works):
            if taken and not room():
                return taken
            if work.key is None:  # invalid, and no person to hold it for
                assert isinstance(work, InvalidRecord)
                self.settle.invalid(work)
                continue
            admitted = self.people.admit(work, work.key)
            if admitted is not None and self._route(admitted):
                self._release(work.key)
        return len(works)

    def due(self) -> None:
        """Route the held updates whose second has come."""
        while not self.stop.requested and (update := self.people.due(self.clock.monotonic())) is not None:
            if self._request(update):
                self._release(update.key)

    def delivered(self, job: Job, deliveries: list[Delivery]) -> None:
        """A request is back: settle its updates, note for each person what it means for their
        next record, and route that."""
        self.settle.delivered(job.updates, deliveries)
        _note_answers(self.people, self.stamps, job.updates, deliveries)
        if self.stop.requested:
            return  # no one's next record is routed
        for key in self.people.finish_out(map(_KEY, job.updates)):
            self._release(key)

    def _fresh(self, works: Sequence[Work], requests: int) -> int | None:
        """Route the first of ``works`` all at once, when that is what routing them one by one
        would do: each a valid record of a person with nothing under way, of whom the run
        remembers nothing (no record of theirs that did not sync, no ledger to compare with), each
        of which the adapter carries. How many were routed; None when none was."""
        people = self.people
        if self.settle.compares or set(map(type, works)) != {PersonUpdate}:
            return None
        updates = cast("Sequence[PersonUpdate]", works)
        keys = list(map(_KEY, updates))
        # A person with a record that did not sync has their later ones held back, one by one.
        if not people.failed.none_of(keys) or not people.admit_run(keys):
            return None
        # Without a ledger no stamp is written ahead, so issuing one cannot fail.
        added = self.adapter.add_run(updates, self.stamps.issue(), requests)
        made, taken = added if added is not None else ([], 0)
        self.outbox.extend(made)
        # Those not taken were never out: no other record of theirs was admitted meanwhile.
        people.finish_out(keys[taken:])
        return taken if added is not None else None

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

    def _release(self, key: str) -> None:
        """``key``'s record that was out is settled: route their next, unless the run is stopping."""
        while not self.stop.requested:
            work = self.people.finish(key, self.clock.monotonic())
            if work is None or not self._route(work):
                return


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

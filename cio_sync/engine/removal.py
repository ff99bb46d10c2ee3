"""Sending removals (delete, suppress, clear) and unsuppressions, by v1 request or v2 batch item.

Each removal is written ahead in the ledger before its request leaves, and marked done only after
a 2xx (see :mod:`cio_sync.state.roster`). Nothing here decides who is removed: that is
:mod:`cio_sync.engine.mirror`'s.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..errors import OutputLost
from ..input.config import Config, Transport, WhenRemoved
from ..input.mapping import TIMESTAMP, batch_body, identify
from ..outcome import Delivery, Status, Stop, StopReason
from ..state.roster import Leaver, Roster
from ..transport.client import TrackClient

# How the Track API removes an attribute: the spec says it for objects ("Pass `null` or an empty
# string to remove an attribute") and relationships, and nothing for people. Of its two values ""
# is the one within the letter of identify, whose attribute values are string, integer or boolean
# (null is not), in v1 bodies and batch items alike.
CLEARED = ""
# Attributes a clear never sends: identifiers (clearing one would rename or split the person) and
# reserved names (``_update``, ``_timestamp``), which are instructions, not attributes.
_NOT_CLEARED = frozenset({"id", "email", "cio_id"})
# A batch of removals stays well under the endpoint's 500 KB, and holds at most this many items.
_BATCH_BYTES = 400_000
_BATCH_ITEMS = 1000


def clear_attributes(config: Config) -> dict[str, object]:
    """The body that removes every attribute ``config``'s mappings write; ``_update`` so that a
    clear never creates a person (one deleted meanwhile stays deleted)."""
    body: dict[str, object] = {
        m.target: CLEARED for m in config.mappings if m.target not in _NOT_CLEARED and not m.target.startswith("_")
    }
    body["_update"] = True
    return body


@dataclass(frozen=True, slots=True)
class Removal:
    """One request: the people it removes (one on v1) and how it is sent."""

    people: tuple[Leaver, ...]
    method: str
    # The v1 path after /api/v1/customers/, or None for a batch.
    path: str | None
    body: bytes | None
    # Why the request is not sent at all (v1 would name someone else), else None.
    refused: str | None = None


def _item(action: str, person: Leaver, attributes: dict[str, object] | None, stamp: int | None) -> bytes:
    item: dict[str, object] = {
        "type": "person",
        "action": action,
        "identifiers": {person.kind.value: person.identifier},
    }
    if attributes is not None:
        item["attributes"] = attributes
        if stamp is not None:
            item["timestamp"] = stamp
    return json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _v1_path(person: Leaver) -> tuple[str | None, str | None]:
    """The v1 path naming ``person`` as the ledger holds them, or None and why there is none.

    The path is worked out afresh, as a v1 write of their id and kind would name them now, and
    never taken from the ledger: a person written by batch (told their kind) may have an id that
    v1, reading its path by shape, takes for an email address or a cio_id, so the stored path
    could remove someone else. The kind is the ledger's, not the configuration's ``idType``,
    which may have changed since they were written.
    """
    ref, problem = identify(person.person_id, person.kind, v1=True)
    if ref is not None and (ref.kind, ref.identifier) == (person.kind, person.identifier):
        return ref.path, None
    if ref is not None:  # not expected: identify keeps the kind it is given; refused all the same
        problem = f'the v1 API would read it as the {ref.kind.value} "{ref.identifier}"'
    return None, (
        f"not sent, as it would remove someone else: {problem}; to remove this person, run again with --transport batch"
    )


def _v1(action: str, person: Leaver, attributes: dict[str, object] | None, stamp: int | None) -> Removal:
    path, refused = _v1_path(person)
    if path is None:
        return Removal((person,), "POST", None, None, refused)
    if action == "delete":
        return Removal((person,), "DELETE", path, None)
    if action in ("suppress", "unsuppress"):
        return Removal((person,), "POST", f"{path}/{action}", None)
    body = dict(attributes or {})
    if stamp is not None:
        body[TIMESTAMP] = stamp
    return Removal((person,), "PUT", path, json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())


def requests_for(config: Config, action: str, people: Sequence[Leaver], stamp: int | None = None) -> list[Removal]:
    """The requests that apply ``action`` (delete, suppress, unsuppress; or clear, an identify
    that removes the mapped attributes, stamped ``stamp``) to ``people``, on ``config``'s transport."""
    attributes = clear_attributes(config) if action == WhenRemoved.CLEAR.value else None
    if config.transport is Transport.V1:
        return [_v1(action, p, attributes, stamp) for p in people]
    batch_action = "identify" if attributes is not None else action
    made: list[Removal] = []
    group: list[Leaver] = []
    items: list[bytes] = []
    size = 0
    for person in people:
        item = _item(batch_action, person, attributes, stamp)
        if items and (size + len(item) + 1 > _BATCH_BYTES or len(items) >= _BATCH_ITEMS):
            made.append(Removal(tuple(group), "POST", None, batch_body(items)))
            group, items, size = [], [], 0
        group.append(person)
        items.append(item)
        size += len(item) + 1
    if items:
        made.append(Removal(tuple(group), "POST", None, batch_body(items)))
    return made


def send(client: TrackClient, removal: Removal) -> list[Delivery]:
    """Send one removal request: one delivery per person, in order."""
    if removal.refused is not None:
        return [Delivery(Status.FAILED, reason=removal.refused) for _ in removal.people]
    if removal.path is None:
        assert removal.body is not None
        return client.post_batch(removal.body, len(removal.people))
    if removal.body is not None:
        return [client.put_person(removal.path, removal.body)]
    return [client.put_person(removal.path, None, removal.method)]


class Sender:
    """Sends removals ``parallelism`` at a time, each written ahead in ``roster`` first.

    Deliveries are handed to ``on_done`` from the calling thread (the ledger's); the run's
    ``stop`` ends the sending between rounds, and the rest count as not attempted.
    """

    def __init__(self, client: TrackClient, roster: Roster, stop: Stop, parallelism: int) -> None:
        self._client = client
        self._roster = roster
        self._stop = stop
        self._parallelism = parallelism

    def run(
        self, removals: Sequence[Removal], mode: WhenRemoved | None, on_done: Callable[[Leaver, Delivery], None]
    ) -> OutputLost | None:
        """Send every one of ``removals`` (``mode`` None: unsuppressions, not written ahead);
        the ledger's problem when it could not be written (the rest are then not attempted)."""
        lost: OutputLost | None = None
        with ThreadPoolExecutor(self._parallelism, thread_name_prefix="cio-sync-removal") as pool:
            for start in range(0, len(removals), self._parallelism):
                chunk = removals[start : start + self._parallelism]
                if self._stop.requested or lost is not None:
                    _skip(chunk, on_done)
                    continue
                lost = self._round(pool, chunk, mode, on_done)
        return lost

    def _round(
        self,
        pool: ThreadPoolExecutor,
        chunk: Sequence[Removal],
        mode: WhenRemoved | None,
        on_done: Callable[[Leaver, Delivery], None],
    ) -> OutputLost | None:
        people = [p for r in chunk for p in r.people]
        if mode is not None:
            try:
                self._roster.pending(people, mode)
            except OutputLost as e:
                _skip(chunk, on_done)
                return e
        answers = list(pool.map(lambda r: send(self._client, r), chunk))
        # Only requests that left can tell that the API went away.
        flat = [d for r, deliveries in zip(chunk, answers, strict=True) if r.refused is None for d in deliveries]
        if flat and all(d.status is Status.FAILED and d.http_status is None for d in flat):
            # A whole round without one HTTP answer, each past its resends: the API went away,
            # and the rest would only fail as slowly.
            self._stop(StopReason.UNREACHABLE)
        done = []
        for removal, deliveries in zip(chunk, answers, strict=True):
            for person, answered in zip(removal.people, deliveries, strict=True):
                delivery = _gone(removal, answered)
                if delivery.stop is not None:
                    self._stop(delivery.stop)
                if delivery.status is Status.SYNCED:
                    done.append(person)
                on_done(person, delivery)
        if mode is not None:
            try:
                self._roster.removed(done)
            except OutputLost as e:
                return e
        return None


def _gone(removal: Removal, delivery: Delivery) -> Delivery:
    """``delivery``, or a success for a delete answered 404: the spec gives delete no 404, but an
    API that answers one says nobody has the identifier, which is what the delete was for."""
    if removal.method == "DELETE" and delivery.http_status == 404:
        return Delivery(Status.SYNCED, 404)
    return delivery


_NOT_SENT = Delivery(Status.NOT_ATTEMPTED, reason="the run stopped before it was sent")


def _skip(chunk: Sequence[Removal], on_done: Callable[[Leaver, Delivery], None]) -> None:
    for removal in chunk:
        for person in removal.people:
            on_done(person, _NOT_SENT)

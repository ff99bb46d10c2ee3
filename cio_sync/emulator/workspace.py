"""The emulated workspace: people, their identifiers, and how an identify call merges into them."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from .rules import BODY_IDENTIFIERS, MAX_ATTRIBUTES, TIMESTAMP, UPDATE_FLAG, Choices, Identifier, IdKind


@dataclass
class Person:
    """One person: Customer.io's own ``cio_id``, the ``id`` and ``email`` identifiers, attributes."""

    cio_id: str
    id: str | None = None
    email: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    # Accepted identify calls that changed this person.
    writes: int = 0
    # The latest _timestamp applied (identify's "_timestamp" orders rapid updates).
    timestamp: int | None = None

    @property
    def handle(self) -> str:
        """How people are listed: the id, else the email, else ``cio_<cio_id>``."""
        return self.id if self.id is not None else self.email if self.email is not None else "cio_" + self.cio_id


class Outcome(str, Enum):
    """What an identify call did. The API answers 200 for all of them: the rest is in its activity log."""

    CREATED = "created"
    UPDATED = "updated"
    # identify: "If the cio_id does not exist or belongs to a person who was deleted, we'll drop the request."
    DROPPED_UNKNOWN_CIO_ID = "dropped: unknown cio_id"
    # identify._update: no profile created; the log shows a "Failed Attribute Change".
    NOT_FOUND_UPDATE_ONLY = "not found: _update"
    # identify: the path and a body identifier "belong to different people": an "Attribute Update Failure".
    IDENTIFIER_CONFLICT = "conflict: identifiers of two people"
    # identify._timestamp: an update older than one already applied.
    OLDER_TIMESTAMP = "ignored: older _timestamp"
    # info, Customer limits: at most 300 unique attributes "per person or Identify call".
    TOO_MANY_ATTRIBUTES = "refused: over 300 attributes"
    # suppress: "Any future API calls or operations referencing the specified ID are ignored".
    SUPPRESSED = "ignored: suppressed identifier"


class Workspace:
    """People and their identifiers, safe to use from the server's threads."""

    def __init__(self, choices: Choices | None = None) -> None:
        self.choices = choices or Choices()
        self._lock = threading.Lock()
        self._people: list[Person] = []
        self._index: dict[tuple[IdKind, str], Person] = {}
        self._cio_ids = itertools.count(1)
        self._suppressed: dict[tuple[IdKind, str], frozenset[tuple[IdKind, str]]] = {}  # each with its group

    def identify(self, who: Identifier, attributes: Mapping[str, Any], timestamp: int | None = None) -> Outcome:
        """Apply one identify call (v1 PUT body, or a batch item's attributes) for ``who``.

        ``timestamp`` is a v2 item's ``timestamp``; v1 sends ``_timestamp`` in the body.
        """
        update_only = attributes.get(UPDATE_FLAG) is True
        stamp = attributes.get(TIMESTAMP, timestamp)
        stamp = stamp if isinstance(stamp, int) and not isinstance(stamp, bool) else None
        body_ids = _body_identifiers(attributes, self.choices)
        with self._lock:
            if any(i.key in self._suppressed for i in (who, *body_ids)):
                return Outcome.SUPPRESSED
            person = self._index.get(who.key)
            if person is None and who.kind is IdKind.CIO_ID:
                return Outcome.DROPPED_UNKNOWN_CIO_ID
            holders = {id(p): p for p in (self._index.get(i.key) for i in body_ids) if p is not None}
            if person is None and len(holders) == 1:
                # identify: "If the identifier in the path does not belong to a person but you use an
                # identifier in your request body that does belong to a person, your request updates
                # the person and assigns them the identifier in the path." (Its tip: "The existing
                # person gets the new id.")
                (person,) = holders.values()
                self._assign(person, who)
            elif any(p is not person for p in holders.values()):
                return Outcome.IDENTIFIER_CONFLICT
            outcome = Outcome.UPDATED
            if person is None:
                if update_only:
                    return Outcome.NOT_FOUND_UPDATE_ONLY
                person = Person(cio_id=self._new_cio_id())
                self._people.append(person)
                self._assign(person, who)
                # Everyone has a cio_id from the start, and may be referenced by it at once.
                self._assign(person, Identifier(IdKind.CIO_ID, person.cio_id))
                outcome = Outcome.CREATED
            if stamp is not None and person.timestamp is not None and stamp < person.timestamp:
                return Outcome.OLDER_TIMESTAMP
            merged = self._merged(person.attributes, attributes)
            if len(merged) > MAX_ATTRIBUTES:
                return Outcome.TOO_MANY_ATTRIBUTES
            for identifier in body_ids:
                if self._index.get(identifier.key) is not person and not self._taken_slot(
                    person, identifier, replacing=who.kind is IdKind.CIO_ID
                ):
                    self._assign(person, identifier)
            person.attributes = merged
            person.timestamp = stamp if stamp is not None else person.timestamp
            person.writes += 1
            return outcome

    def add(
        self,
        *,
        id: str | None = None,  # noqa: A002 -- the API's own name for the identifier
        email: str | None = None,
        cio_id: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> Person:
        """Put a person in the workspace directly, as if created earlier (to rehearse update-only runs)."""
        if id is None and email is None and cio_id is None:
            raise ValueError("a person needs an id, an email or a cio_id")
        with self._lock:
            person = Person(cio_id=cio_id or self._new_cio_id(), attributes=dict(attributes or {}))
            named = [Identifier(IdKind.CIO_ID, person.cio_id)]
            named += [Identifier(kind, value) for kind, value in ((IdKind.ID, id), (IdKind.EMAIL, email)) if value]
            for identifier in named:
                if identifier.key in self._index:
                    raise ValueError(f"{identifier.kind.value} {identifier.value!r} already names a person")
            for identifier in named:
                self._assign(person, identifier)
            self._people.append(person)
            return replace(person, attributes=dict(person.attributes))

    def find(self, who: Identifier) -> Person | None:
        """A copy of the person ``who`` names, or None."""
        with self._lock:
            person = self._index.get(who.key)
            return replace(person, attributes=dict(person.attributes)) if person else None

    def people(self) -> dict[str, dict[str, Any]]:
        """Every person's attributes by handle (id, else email, else ``cio_<cio_id>``)."""
        with self._lock:
            return {p.handle: dict(p.attributes) for p in self._people}

    def counts(self) -> tuple[int, int]:
        """How many people there are, and how many identify calls changed one."""
        with self._lock:
            return len(self._people), sum(p.writes for p in self._people)

    def profiles(self) -> list[Person]:
        """A copy of every person, identifiers included, in order of creation."""
        with self._lock:
            return [replace(p, attributes=dict(p.attributes)) for p in self._people]

    def clear(self) -> None:
        """Forget everyone."""
        with self._lock:
            self._people.clear()
            self._index.clear()
            self._suppressed.clear()

    def _new_cio_id(self) -> str:
        # Customer.io assigns cio_ids; these are 8 hex digits, skipping any a caller chose for a person.
        while (IdKind.CIO_ID, cio_id := f"{next(self._cio_ids):08x}") in self._index:
            pass
        return cio_id

    def _taken_slot(self, person: Person, identifier: Identifier, replacing: bool = False) -> bool:
        # A person holds one id and one email. Another person may hold this one already; and once
        # set, a person's identifiers change only through their cio_id (identify: "If you want to
        # update a person's identifiers after they are set, you must reference them using their cio_id").
        holder = self._index.get(identifier.key)
        if holder is not None:
            return holder is not person
        current = person.id if identifier.kind is IdKind.ID else person.email
        return current is not None and not replacing

    def _assign(self, person: Person, identifier: Identifier) -> None:
        if identifier.kind in (IdKind.ID, IdKind.EMAIL):
            current = person.id if identifier.kind is IdKind.ID else person.email
            if current is not None:
                self._index.pop(Identifier(identifier.kind, current).key, None)
            if identifier.kind is IdKind.ID:
                person.id = identifier.value
            else:
                person.email = identifier.value
        self._index[identifier.key] = person

    def _merged(self, current: Mapping[str, Any], attributes: Mapping[str, Any]) -> dict[str, Any]:
        # identify: attributes sent are added or overwritten; those not sent are left alone.
        merged = dict(current)
        for name, value in attributes.items():
            if name in (UPDATE_FLAG, TIMESTAMP):
                continue
            if (value is None and self.choices.null_removes) or (value == "" and self.choices.empty_removes):
                merged.pop(name, None)
            else:
                merged[name] = value
        return merged


def edit(workspace: Workspace, who: Identifier, attributes: Mapping[str, Any]) -> None:
    """Set attributes (a None removes one) of the person ``who`` names, outside any API call, as an
    edit in the workspace's UI would. Raises KeyError when nobody has that identifier."""
    with workspace._lock:
        person = workspace._index.get(who.key)
        if person is None:
            raise KeyError(f"no person has the {who.kind.value} {who.value!r}")
        for name, value in attributes.items():
            if value is None:
                person.attributes.pop(name, None)
            else:
                person.attributes[name] = value


def delete(workspace: Workspace, who: Identifier) -> bool:
    """delete: the person ``who`` names is removed with all their information; False when nobody
    has that identifier (the API answers 200 all the same)."""
    with workspace._lock:
        return _forget(workspace, who) is not None


def suppress(workspace: Workspace, who: Identifier) -> None:
    """suppress: the person is deleted and the identifier blocked from being added again; in a
    workspace that identifies people by email or id, both of theirs ("both the person's email and
    ID are suppressed"). An identifier nobody has is suppressed all the same."""
    with workspace._lock:
        person = _forget(workspace, who)
        keys = {who.key}
        if person is not None:
            keys |= {Identifier(k, v).key for k, v in ((IdKind.ID, person.id), (IdKind.EMAIL, person.email)) if v}
        group = frozenset(keys)
        for key in group:
            workspace._suppressed[key] = group


def unsuppress(workspace: Workspace, who: Identifier) -> None:
    """unsuppress: the identifier (with those suppressed with it) may be added again; no profile
    comes back ("Identifying a person after unsuppressing them creates a new profile")."""
    with workspace._lock:
        for key in workspace._suppressed.get(who.key, frozenset()):
            workspace._suppressed.pop(key, None)


def suppressed(workspace: Workspace) -> list[str]:
    """Every suppressed identifier's value, sorted."""
    with workspace._lock:
        return sorted(value for _, value in workspace._suppressed)


def _forget(workspace: Workspace, who: Identifier) -> Person | None:
    person = workspace._index.get(who.key)
    if person is None:
        return None
    workspace._people.remove(person)
    named = [(IdKind.CIO_ID, person.cio_id), (IdKind.ID, person.id), (IdKind.EMAIL, person.email)]
    for kind, value in named:
        if value is not None and workspace._index.get(Identifier(kind, value).key) is person:
            del workspace._index[Identifier(kind, value).key]
    return person


def _body_identifiers(attributes: Mapping[str, Any], choices: Choices) -> list[Identifier]:
    """The identifiers in an identify call's attributes (an email only where emails identify)."""
    return [
        Identifier(kind, value)
        for kind in BODY_IDENTIFIERS
        if isinstance(value := attributes.get(kind.value), str) and value
        if kind is not IdKind.EMAIL or choices.email_identifier
    ]

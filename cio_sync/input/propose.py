"""Proposing a first configuration from a data file's records: every key mapped, a person id
picked, and a cast wherever every sampled value agrees on one."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .config import MAX_ATTRIBUTE_NAME_BYTES, MAX_ATTRIBUTES
from .convert import CASTS, Cast, CastError
from .mapping import MAX_ID_BYTES, value_problem

# A proposal starts here; the user tunes it (2 to 5 is plenty with the batch transport).
DEFAULT_PARALLELISM = 10
# The schema's bound on a path's length: an object this deep is mapped whole.
MAX_PATH_STEPS = 32

# The casts tried, first match wins. The patterns are stricter than the casts: "007" (a code
# with its zeros), "+44..." (a phone number) and ids of 16 digits or more stay text, since a
# number would change them; a float keeps 15 significant digits exactly.
_TRIED = (Cast.BOOLEAN, Cast.INTEGER, Cast.NUMBER, Cast.TIMESTAMP)
_INTEGER_TEXT = re.compile(r"-?(?:0|[1-9][0-9]{0,14})", re.ASCII)
_NUMBER_TEXT = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?", re.ASCII)
_MAX_NUMBER_DIGITS = 15
_BOOLEAN_TEXT = frozenset({"true", "false"})
# An ISO date leads a timestamp; text of digits alone could be Unix seconds or a plain count,
# and is proposed as an integer instead.
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)

# Names of a person's id, best first, as compared: lower case, letters and digits only. A name
# that says whose id it is comes before a bare "id", which in a joined export may be a row's.
ID_NAMES = (
    "userid",
    "customerid",
    "personid",
    "contactid",
    "memberid",
    "externalid",
    "id",
    "uid",
    "email",
    "emailaddress",
)
_EMAIL_NAMES = frozenset({"email", "emailaddress"})
# An id one level down counts under a parent that names a person: ["user", "id"] is "userid".
_PERSON_PARENTS = frozenset({"user", "customer", "person", "contact", "member", "profile", "people", "identity"})


@dataclass
class _Field:
    """What the sample showed at one path: how often each kind of value, and which casts fit."""

    path: tuple[str, ...]
    objects: int = 0
    keys: bool = False  # some object here had a key
    values: int = 0  # present, neither null nor an object
    strings: int = 0
    ids: int = 0  # values usable as a person id
    emails: int = 0  # of those, ones with "@"
    oversize: int = 0  # values the Track API refuses as too large
    casts: set[Cast] = field(default_factory=lambda: set(_TRIED))

    def observe(self, value: object) -> None:
        """Count ``value`` (neither null nor an object) and drop the casts it does not fit."""
        self.values += 1
        self.strings += isinstance(value, str)
        if _usable_id(value):
            self.ids += 1
            self.emails += isinstance(value, str) and "@" in value
        self.oversize += value_problem({"": value}) is not None
        self.casts = {cast for cast in self.casts if fits(cast, value)}

    @property
    def leaf(self) -> bool:
        """Mapped as it is: never an object with keys, or sometimes one and sometimes not."""
        return self.values > 0 or not self.keys

    def cast(self) -> Cast | None:
        """The cast every value fits, when the values are text (JSON numbers and booleans already are what they are)."""
        if self.objects or not self.strings:
            return None
        return next((cast for cast in _TRIED if cast in self.casts), None)


def fits(cast: Cast, value: object) -> bool:
    """Whether ``value`` plainly is what ``cast`` makes, and casts to it exactly."""
    if isinstance(value, bool):
        plain = cast is Cast.BOOLEAN
    elif isinstance(value, str):
        plain = _text_fits(cast, value)
    elif isinstance(value, int | float | Decimal):
        plain = cast is not Cast.BOOLEAN
    else:
        plain = False
    if not plain:
        return False
    try:
        CASTS[cast](value)
    except CastError:
        return False
    return True


def _text_fits(cast: Cast, text: str) -> bool:
    if cast is Cast.BOOLEAN:
        return text.lower() in _BOOLEAN_TEXT
    if cast is Cast.INTEGER:
        return _INTEGER_TEXT.fullmatch(text) is not None
    if cast is Cast.NUMBER:
        digits = sum(c.isdigit() for c in text)
        return _NUMBER_TEXT.fullmatch(text) is not None and digits <= _MAX_NUMBER_DIGITS
    return _ISO_DATE.match(text) is not None


def _usable_id(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        # Looked at before it is printed: an integer of thousands of digits is slow to print.
        return value.bit_length() < 600 and len(str(value)) <= MAX_ID_BYTES
    if isinstance(value, str):
        try:
            return 0 < len(value.encode("utf-8")) <= MAX_ID_BYTES
        except UnicodeEncodeError:
            return False
    return False


class Survey:
    """The keys and values of records seen one at a time, kept as per-path counts: memory
    grows with the number of distinct keys, never with the number of records."""

    def __init__(self, header: Sequence[str] | None = None) -> None:
        self.fields: dict[tuple[str, ...], _Field] = {}
        self.records = 0
        self.not_objects = 0
        # A CSV file's columns come in the header's order, even one with every cell empty.
        for column in header or ():
            self._field((column,))

    def _field(self, path: tuple[str, ...]) -> _Field:
        found = self.fields.get(path)
        if found is None:
            found = self.fields[path] = _Field(path)
        return found

    def add(self, record: object) -> None:
        """Count every key and value of ``record``; a record that is not an object only counts as such."""
        if not isinstance(record, dict):
            self.not_objects += 1
            return
        self.records += 1
        # Depth first, without recursion, children in their order: paths come in document order.
        stack: list[tuple[tuple[str, ...], object]] = [((str(k),), v) for k, v in reversed(record.items())]
        while stack:
            path, value = stack.pop()
            spot = self._field(path)
            if value is None:
                continue
            if isinstance(value, dict) and len(path) < MAX_PATH_STEPS:
                spot.objects += 1
                spot.keys = spot.keys or bool(value)
                stack.extend(((*path, str(k)), v) for k, v in reversed(value.items()))
            else:
                spot.observe(value)

    def leaves(self) -> list[_Field]:
        """The fields to map, in the order first seen: each path holding values, and none
        inside another that does (an object mapped whole)."""
        whole: set[tuple[str, ...]] = set()
        found = []
        for path, spot in self.fields.items():
            if any(path[:i] in whole for i in range(1, len(path))):
                continue
            if spot.leaf:
                whole.add(path)
                found.append(spot)
        return found


@dataclass(frozen=True)
class Proposal:
    """A proposed configuration and what went into it, for the user to check."""

    config: dict[str, Any]
    # The id picked: its path, whether a key's name said it is one, and the other candidates.
    user_id: tuple[str, ...]
    id_named: bool
    id_missing: int  # sampled records with no usable id there
    other_ids: tuple[tuple[str, ...], ...]
    casts: tuple[tuple[str, Cast], ...]  # (to, cast) for each cast proposed
    records: int
    not_objects: int
    # Paths not mapped: those past MAX_ATTRIBUTES, and those with a key that is not Unicode text.
    over_limit: tuple[tuple[str, ...], ...]
    unusable: tuple[tuple[str, ...], ...]
    # Mapped paths where some sampled value is too large for the Track API (over 1,000 bytes).
    oversize: tuple[tuple[str, ...], ...] = ()


class NothingToMap(ValueError):
    """The records hold no key at all: there is nothing to propose."""


def propose_config(records: Iterable[object], header: Sequence[str] | None = None) -> dict[str, Any]:
    """A configuration mapping every key of ``records`` (or column of ``header``), as a dict
    valid against ``config.schema.json``. See :func:`propose`."""
    return propose(records, header).config


def propose(records: Iterable[object], header: Sequence[str] | None = None) -> Proposal:
    """Propose a configuration for ``records`` (parsed JSON, or CSV rows as dicts of text with
    None for an empty cell; ``header`` gives a CSV file's columns).

    Every key is mapped (nested keys as paths; arrays, and objects 32 levels down, whole),
    ``userId`` is the best-named key with a usable id in every record, and a cast is proposed
    where every non-null value is text that casts to it exactly. No credentials are written:
    they come from the environment. Raises :class:`NothingToMap` when there is no key at all.
    """
    survey = Survey(header)
    for record in records:
        survey.add(record)
    fields, unusable = _mappable(survey.leaves())
    if not fields:
        raise NothingToMap("no record holds a key to map")
    chosen, named, others = _pick_id(fields, survey.records)
    mappings, casts, over = _mappings(fields, chosen)
    config: dict[str, Any] = {"parallelism": DEFAULT_PARALLELISM, "userId": _source(chosen.path)}
    if named and _norm(chosen.path[-1]) in _EMAIL_NAMES and chosen.ids and chosen.emails == chosen.ids:
        # Said outright, so that a value without "@" is refused rather than read as an id.
        config["idType"] = "email"
    config["mappings"] = mappings
    return Proposal(
        config=config,
        user_id=chosen.path,
        id_named=named,
        id_missing=survey.records - chosen.ids,
        other_ids=tuple(f.path for f in others),
        casts=tuple(casts),
        records=survey.records,
        not_objects=survey.not_objects,
        over_limit=tuple(over),
        unusable=tuple(unusable),
        oversize=tuple(f.path for f in fields[:MAX_ATTRIBUTES] if f.oversize),
    )


def _mappable(leaves: list[_Field]) -> tuple[list[_Field], list[tuple[str, ...]]]:
    """The fields a configuration can name, and the paths of those it cannot (keys that are
    not Unicode text: a JSON file's lone surrogate escapes)."""
    fields, unusable = [], []
    for spot in leaves:
        try:
            "".join(spot.path).encode("utf-8")
        except UnicodeEncodeError:
            unusable.append(spot.path)
            continue
        fields.append(spot)
    return fields, unusable


def _id_rank(path: tuple[str, ...]) -> int | None:
    """Where the key at ``path`` stands in :data:`ID_NAMES`, or None if its name is not an id's."""
    name = _norm(path[-1])
    if len(path) == 2 and _norm(path[0]) in _PERSON_PARENTS:
        name = "userid" if name == "id" else name
    elif len(path) != 1:
        return None
    return ID_NAMES.index(name) if name in ID_NAMES else None


def _pick_id(fields: list[_Field], records: int) -> tuple[_Field, bool, list[_Field]]:
    """The field for ``userId``, whether its name says it is an id, and the other named candidates.

    One with a usable id in every sampled record wins over a better name with gaps; then the
    name's rank; then a top-level key over a nested one; then the order first seen.
    """
    named = [(rank, spot) for spot in fields if (rank := _id_rank(spot.path)) is not None]
    named.sort(key=lambda pair: (pair[1].ids < records, pair[0], len(pair[1].path)))
    if named:
        return named[0][1], True, [spot for _, spot in named[1:]]
    complete = [spot for spot in fields if spot.ids == records and spot.values == spot.ids]
    return (complete or fields)[0], False, []


def _norm(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


def _mappings(
    fields: list[_Field], chosen: _Field
) -> tuple[list[dict[str, Any]], list[tuple[str, Cast]], list[tuple[str, ...]]]:
    """One mapping for each field (at most MAX_ATTRIBUTES), the casts proposed, and the paths left out."""
    kept = fields[:MAX_ATTRIBUTES]
    names = _attribute_names([spot.path for spot in kept])
    mappings, casts = [], []
    for spot, name in zip(kept, names, strict=True):
        entry: dict[str, Any] = {"from": _source(spot.path), "to": name}
        # The id is text in the request's path: its attribute keeps the value as the file has it.
        cast = spot.cast() if spot is not chosen else None
        if cast is not None:
            entry["as"] = cast.value
            casts.append((name, cast))
        mappings.append(entry)
    return mappings, casts, [spot.path for spot in fields[MAX_ATTRIBUTES:]]


def _source(path: tuple[str, ...]) -> str | list[str]:
    """A top-level key as itself; a nested one as a path. The schema takes no empty key, but
    a path of one empty step finds the same value (in a CSV row too)."""
    if len(path) == 1 and path[0]:
        return path[0]
    return list(path)


def _attribute_names(paths: list[tuple[str, ...]]) -> list[str]:
    """The attribute each path sets: its last key where no other path ends in that key, else the
    keys joined with "_"; a name still taken gets "_2", "_3"... Never empty, at most 150 bytes."""
    last_counts: dict[str, int] = {}
    for path in paths:
        last_counts[path[-1]] = last_counts.get(path[-1], 0) + 1
    wanted = [path[-1] if last_counts[path[-1]] == 1 else "_".join(path) for path in paths]
    taken: set[str] = set()
    names = []
    for name in wanted:
        base = _short(name or "unnamed")
        unique, n = base, 1
        while unique in taken:
            n += 1
            unique = _short(base, f"_{n}")
        taken.add(unique)
        names.append(unique)
    return names


def _short(name: str, suffix: str = "") -> str:
    """``name`` + ``suffix`` cut to the Track API's limit on attribute names (UTF-8 bytes)."""
    room = MAX_ATTRIBUTE_NAME_BYTES - len(suffix)
    return name.encode("utf-8")[:room].decode("utf-8", "ignore") + suffix

"""Turning data records into person updates: the id rules, the mapping and the API's limits."""

from __future__ import annotations

import difflib
import json
import math
import operator
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import chain, repeat
from json.encoder import encode_basestring
from typing import cast
from urllib.parse import quote

import orjson

from ..errors import ConfigError, DataFileError
from .config import UPDATE_ONLY, Config, FieldMapping, IdType, Mode, RecordPath, Transport, listing
from .convert import CASTS, MAX_INTEGER_BITS, CastError
from .csvfile import CsvRow, RaggedRow, UnreadableRow
from .datafile import UnreadableRecord
from .schema import article

# Limits the Track API enforces with a 400; checking them here names the record and the reason.
MAX_ID_BYTES = 150
MAX_VALUE_BYTES = 1000
# The v2 batch endpoint's limits: 32 KB an item, 500 KB a request (kept under both readings of KB).
MAX_ITEM_BYTES = 32_000
MAX_BATCH_BYTES = 500_000
# v1 reads a path identifier with this prefix as a cio_id, which is letters and digits.
CIO_PREFIX = "cio_"
_CIO_ID = re.compile(r"[A-Za-z0-9]+", re.ASCII)
# The characters a URL path segment carries as they are (RFC 3986's unreserved set, which quote() keeps).
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]+", re.ASCII)
# Integer ids whose text is at most MAX_ID_BYTES long lie strictly between these.
_SHORTEST_INT = -(10 ** (MAX_ID_BYTES - 1))
_LONGEST_INT = 10**MAX_ID_BYTES
# Fewer records than this are keyed one by one: the loops of C cost more than they save.
_FEW = 8


# Not frozen, like the other records made once per data record (PersonRef, RecordOutcome): a frozen
# dataclass sets each field through object.__setattr__, which made building one cost five times as
# much (2.1 against 0.4 us for ten fields, measured). Nothing changes them once made.
@dataclass(slots=True)
class PersonUpdate:
    """A valid record, ready to send: ``PUT /api/v1/customers/{path}`` with ``body``, or a batch
    item naming the person ``{kind: identifier}``."""

    index: int
    person_id: str
    body: bytes
    record: object
    # How v2 names the person, and the key under which their updates are ordered and kept in
    # the ledger (email addresses are not case sensitive).
    kind: IdType
    identifier: str
    key: str
    # When earlier records of this person were merged into this update (see
    # :mod:`cio_sync.engine.merge`): the index of the first of them. They share its outcome.
    covers: int | None = None

    @property
    def path(self) -> str:
        """The person as v1 names them in its path (made only when asked: batch never does)."""
        return v1_path(self.kind, self.identifier)


_COVERS = operator.attrgetter("covers")


def none_merged(updates: Sequence[PersonUpdate]) -> bool:
    """True when each of ``updates`` stands for its own record alone (none had records merged in)."""
    return list(map(_COVERS, updates)).count(None) == len(updates)


@dataclass(frozen=True, slots=True)
class InvalidRecord:
    """A record that cannot be sent, with the reason in words."""

    index: int
    person_id: str | None
    reason: str
    record: object
    # The key of the person it names, when it names one usably: their later records wait for it.
    key: str | None = None
    # The reason without what is particular to this record (see :mod:`cio_sync.engine.causes`), when known.
    cause: str | None = None


class TooSmall(ValueError):
    """A number that is not zero, but whose nearest double is: it would arrive as 0."""


def _number(value: object) -> float:
    # The data file's non-integers are read as Decimal, to keep their digits; the API takes JSON
    # numbers, which it reads as doubles: the nearest one is sent, but never 0 for what is not.
    if isinstance(value, Decimal):
        number = float(value)
        if number == 0 and value != 0:
            raise TooSmall(f"a mapped number is too small to send as JSON: {value} would arrive as 0")
        return number
    raise TypeError(f"{type(value).__name__} is not JSON")


_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_number).encode
# The values orjson writes byte for byte as ``_encode`` does: strings (every escape alike, checked
# for every character in tests/test_mapping.py), integers (up to 64 bits; orjson refuses larger
# ones), true, false, null, and through :func:`_fragment` a Decimal. A float is not among them:
# orjson spells its exponent otherwise (1e16 for 1e+16).
_EXACT = frozenset({str, int, bool, type(None), Decimal})


def _fragment(value: object) -> orjson.Fragment:
    # What ``_encode`` writes for a Decimal: the float it reads as, in Python's own spelling.
    if type(value) is Decimal:
        number = float(value)
        if math.isfinite(number) and (number != 0 or value == 0):
            return orjson.Fragment(float.__repr__(number))
    raise TypeError  # orjson then refuses the body, and ``_encode`` says why


def encode_body(body: dict[str, object]) -> bytes:
    """``body`` as compact UTF-8 JSON, as ``_encode`` writes it; raises as it does for a value it
    cannot write (ValueError, TypeError, RecursionError, UnicodeEncodeError).

    orjson writes the common body (top-level strings, integers, booleans, nulls, numbers read
    from the data file) at a tenth of the cost; any other body, or one it refuses (an integer
    beyond 64 bits, a lone surrogate), goes through ``_encode``.
    """
    written = _by_orjson(body) if all(type(value) in _EXACT for value in body.values()) else None
    return written if written is not None else _encode(body).encode("utf-8")


def checked_body(body: dict[str, object]) -> bytes | str:
    """``body`` encoded as :func:`encode_body` encodes it (raising as it does), or why the
    workspace would refuse one of its values as too large (:func:`value_problem`)."""
    # The common body in one pass: short strings and small integers need no closer look.
    for value in body.values():
        kind = type(value)
        if kind is str:
            if len(value) * 4 > MAX_VALUE_BYTES:  # type: ignore[arg-type]  # a str, as just found
                break
        elif kind is int:
            if value.bit_length() > 63:  # type: ignore[attr-defined]  # an int, as just found
                break
        elif kind not in _EXACT:
            break
    else:
        written = _by_orjson(body)
        if written is not None:
            return written
    return value_problem(body) or encode_body(body)


def _by_orjson(body: dict[str, object]) -> bytes | None:
    """``body`` written by orjson, or None where it refuses it (an integer beyond 64 bits, a lone
    surrogate, a Decimal out of a float's range)."""
    try:
        written = orjson.dumps(body, default=_fragment)
    except TypeError:
        return None
    # Copied to its own size: orjson's bytes keep the whole buffer it wrote into (4 KB for a body
    # of 50 bytes), and the updates out hold their bodies until settled (40 MB more at peak).
    return memoryview(written).tobytes()


# What ``_encode`` does with a string (without ``ensure_ascii``): escape it, quotes included.
_encode_string = encode_basestring


class _Absent:
    """What a key or path finds when there is nothing there."""


ABSENT = _Absent()


@dataclass(frozen=True, slots=True)
class _Step:
    """One mapping, ready to apply: where its value comes from, its cast, and its name."""

    target: str
    key: str | None
    path: tuple[str | int, ...] | None
    constant: object
    cast: Callable[[object], object] | None
    skip_null: bool
    name: str


def follow(record: object, path: RecordPath) -> object:
    """The value at ``path`` in ``record``, or :data:`ABSENT` when a key is missing, an index is
    past the end, or the path runs through something that is not an object or an array."""
    if isinstance(path, str):
        return record.get(path, ABSENT) if isinstance(record, dict) else ABSENT
    value = record
    for step in path:
        if isinstance(step, str):
            if not isinstance(value, dict):
                return ABSENT
            value = value.get(step, ABSENT)
            if value is ABSENT:
                return ABSENT
        elif isinstance(value, list) and 0 <= step < len(value):
            value = value[step]
        else:
            return ABSENT
    return value


def describe_path(path: RecordPath) -> str:
    """``path`` as messages show it: ``"id"`` for a key, ``["user", "id"]`` for a path."""
    return json.dumps(path if isinstance(path, str) else list(path), ensure_ascii=False)


class RecordMapper:
    """Maps each record to the body of its request, following the configuration's mappings.

    Only mapped values are sent. A value that is absent (a missing key, a path that leads
    nowhere, an empty CSV cell) is left out of the body, so the attribute keeps its value in the
    workspace; a ``null`` is sent as ``null`` unless the mapping says ``skipNull``. Casts (``as``)
    apply to every value but null, and a value that cannot be cast exactly makes the record
    invalid. Raises :class:`ConfigError` for a constant that cannot be cast.
    """

    def __init__(
        self,
        user_id: RecordPath,
        mappings: Sequence[FieldMapping],
        mode: Mode = Mode.UPSERT,
        id_type: IdType = IdType.AUTO,
        v1: bool = True,
    ) -> None:
        self._user_id = user_id
        self._id_label = describe_path(user_id)
        self._id_type = id_type
        self._v1 = v1
        self._update_only = mode is Mode.UPDATE
        # The plain form (top-level keys, values as they are) has a faster way through.
        plain = all(isinstance(m.source, str) and m.cast is None and not m.skip_null for m in mappings)
        self._pairs = tuple((str(m.source), m.target) for m in mappings) if plain else None
        self._steps = tuple(_step(i, m, csv=False) for i, m in enumerate(mappings))
        self._csv_steps = tuple(_step(i, m, csv=True) for i, m in enumerate(mappings))

    @classmethod
    def for_config(cls, config: Config) -> RecordMapper:
        """The mapper for ``config``'s userId, mappings, mode, idType and transport."""
        return cls(config.user_id, config.mappings, config.mode, config.id_type, v1=config.transport is Transport.V1)

    def person_id(self, record: object) -> str | None:
        """The person id text of ``record`` if it has a usable one (for records never mapped)."""
        value = follow(record, self._user_id)
        return None if value is ABSENT else person_id_of(value, self._id_label)[0]

    def person_key(self, record: object) -> str | None:
        """The key of the person ``record`` names, when its id is usable; as :meth:`map` finds it,
        without the mapping's work (for telling which people a file names more than once)."""
        if isinstance(record, (UnreadableRecord, UnreadableRow)):
            record = record.value  # what could be read of it: its id may be whole
        if not isinstance(record, dict):
            return None
        user_id = self._user_id
        raw = record.get(user_id, ABSENT) if isinstance(user_id, str) else follow(record, user_id)
        if raw is ABSENT or raw is None:
            return None
        person_id, problem = person_id_of(raw, self._id_label)
        if person_id is None or problem is not None:
            return None
        if self._id_type is IdType.AUTO:  # identify()'s reading, without building the request path
            looks_cio = person_id.startswith(CIO_PREFIX)
            if "@" in person_id:
                return None if looks_cio and self._v1 else person_id.lower()
            return None if looks_cio and not _CIO_ID.fullmatch(person_id[4:]) else person_id
        ref, _ = identify(person_id, self._id_type, self._v1)
        return None if ref is None else ref.key

    def person_keys(self, records: Sequence[object]) -> Sequence[str | None]:
        """:meth:`person_key` of each of ``records``, found in a few loops of C where every id
        of the run needs no closer look (see :func:`plain_ids`)."""
        plain = plain_ids(records, self._user_id) if self._id_type is IdType.AUTO else None
        return plain if plain is not None else list(map(self.person_key, records))

    def map_run(self, first: int, records: Sequence[object]) -> list[PersonUpdate | InvalidRecord]:
        """:meth:`map` of each of ``records``, the first being element ``first`` of the data file.

        A run of JSON objects with plain ids (:func:`plain_ids`, with ``idType`` auto) and plain
        mappings (top-level keys, values as they are) is mapped a run at a time where orjson
        writes every value as it is (:func:`plain_bodies`). Any other run, one record at a time.
        """
        pairs = self._pairs
        if pairs is None or self._id_type is not IdType.AUTO or set(map(type, records)) != {dict}:
            return self._one_by_one(first, records)
        rows = cast("Sequence[dict[str, object]]", records)
        ids = plain_ids(rows, self._user_id)
        made = plain_bodies(rows, pairs, self._update_only) if ids is not None else None
        if ids is None or made is None:
            return self._one_by_one(first, records)
        bodies, datas = made
        works: list[PersonUpdate | InvalidRecord] = list(
            map(PersonUpdate, range(first, first + len(rows)), ids, datas, rows, repeat(IdType.ID), ids, ids)
        )
        if max(map(len, datas)) > MAX_VALUE_BYTES:
            # A body that holds a value too long for the workspace is longer still (a value is
            # in it whole, if anything escaped): only those bodies are looked at closer.
            for at, data in enumerate(datas):
                if len(data) > MAX_VALUE_BYTES and value_problem(bodies[at]) is not None:
                    works[at] = RecordMapper.map(self, first + at, records[at])
        return works

    def _one_by_one(self, first: int, records: Sequence[object]) -> list[PersonUpdate | InvalidRecord]:
        # This class's own map, not a subclass's: map_run is the one a subclass hears of a run by.
        return [RecordMapper.map(self, index, record) for index, record in enumerate(records, first)]

    def map(self, index: int, record: object) -> PersonUpdate | InvalidRecord:
        """The update for ``record`` (element ``index`` of the data file), or why it is invalid."""
        kind = type(record)
        if kind is not dict and kind is not CsvRow:
            return self._not_an_object(index, record)
        assert isinstance(record, dict)
        user_id = self._user_id
        raw = record.get(user_id, ABSENT) if isinstance(user_id, str) else follow(record, user_id)
        if raw is ABSENT:
            if isinstance(self._user_id, str):
                return InvalidRecord(index, None, f'no "{self._user_id}" key for the person id', record)
            return InvalidRecord(index, None, f"nothing at {self._id_label} for the person id", record)
        if raw is None and kind is CsvRow:
            return InvalidRecord(index, None, f"the {self._id_label} cell is empty", record)
        person_id, problem = person_id_of(raw, self._id_label)
        ref = None
        if person_id is not None and problem is None:
            ref, problem = identify(person_id, self._id_type, self._v1)
        if ref is None or person_id is None:
            reason = problem or "no usable person id"
            # The id quoted in the reason is this record's own: its cause quotes "…" in its place
            # (every reason identify words quotes the id, in sentences that read either way).
            cause = reason.replace(f'"{person_id}"', '"…"') if person_id is not None else None
            return InvalidRecord(index, person_id, reason, record, cause=cause)
        if self._pairs is not None and kind is dict:
            body = {target: record[source] for source, target in self._pairs if source in record}
        else:
            built = _build(record, self._steps if kind is dict else self._csv_steps)
            if isinstance(built, CastRefusal):
                return InvalidRecord(index, person_id, built.reason, record, ref.key, built.cause)
            body = built
        if self._update_only:
            body[UPDATE_ONLY] = True
        data = _body_bytes(body)
        if isinstance(data, str):
            return InvalidRecord(index, person_id, data, record, ref.key)
        return PersonUpdate(index, person_id, data, record, ref.kind, ref.identifier, ref.key)

    def _not_an_object(self, index: int, record: object) -> InvalidRecord:
        """Why ``record`` (element ``index``), which is not an object, is invalid; whom it names."""
        if isinstance(record, (UnreadableRecord, UnreadableRow)):
            # A value elsewhere in it may be what cannot be read: a readable id still names their
            # person, whose later records wait for it and who is not taken for gone.
            key = self.person_key(record)
            person_id = self.person_id(record.value) if key is not None else None
            return InvalidRecord(index, person_id, record.reason(), record, key)
        if isinstance(record, RaggedRow):
            return InvalidRecord(index, None, record.reason(), record)
        return InvalidRecord(index, None, f"not a JSON object (got {article(record)})", record)


def _body_bytes(body: dict[str, object]) -> bytes | str:
    """``body`` as :func:`checked_body` writes it, or why it cannot be sent."""
    try:
        return checked_body(body)
    except TooSmall as e:
        return str(e)
    except ValueError:
        return "a mapped number is too large to send as JSON"
    except TypeError as e:  # records built in Python rather than read from JSON
        return f"a mapped value is not JSON: {e}"
    except RecursionError:
        return "a mapped value is nested too deeply"
    except UnicodeEncodeError:
        return "a mapped string is not valid Unicode"


def plain_ids(records: Sequence[object], user_id: RecordPath) -> list[str] | None:
    """The ids' text of ``records``, which is then each one's key, identifier and person id
    alike under ``idType`` auto; or None unless every id needs no closer look. That is, with a
    top-level ``userId``: integers of at most :data:`MAX_ID_BYTES` digits, or short ASCII text
    without an "@" or a ``cio_``, every one in a JSON object."""
    if len(records) < _FEW or not isinstance(user_id, str):
        return None
    try:
        ids = list(map(dict.get, cast("Sequence[dict[str, object]]", records), repeat(user_id)))
    except TypeError:  # a record that is not a JSON object
        return None
    kinds = set(map(type, ids))
    if kinds == {int}:
        numbers = cast("list[int]", ids)
        if min(numbers) > _SHORTEST_INT and max(numbers) < _LONGEST_INT:
            return list(map(str, numbers))
    elif kinds == {str}:
        texts = cast("list[str]", ids)
        joined = "\n".join(texts)
        plain = joined.isascii() and "@" not in joined and CIO_PREFIX not in joined
        if plain and "" not in texts and max(map(len, texts)) <= MAX_ID_BYTES:
            return texts
    return None


def plain_bodies(
    rows: Sequence[dict[str, object]], pairs: Sequence[tuple[str, str]], update_only: bool
) -> tuple[list[dict[str, object]], list[bytes]] | None:
    """The body of each of ``rows`` by the plain mappings ``pairs`` (source key, attribute), and
    each as :func:`checked_body` writes it; None unless orjson writes every value as it is (not
    every value too large is found: a body over :data:`MAX_VALUE_BYTES` is to be looked at)."""
    bodies = [{target: row[source] for source, target in pairs if source in row} for row in rows]
    if update_only:
        for body in bodies:
            body[UPDATE_ONLY] = True
    if not set(map(type, chain.from_iterable(map(dict.values, bodies)))) <= _EXACT:
        return None
    try:
        written = orjson.dumps(bodies, default=_fragment)
    except TypeError:  # an integer beyond 64 bits, a lone surrogate, a number out of range
        return None
    # The run written at once, then cut into its bodies, at '},{"': between two bodies (objects of
    # scalars, none empty) it always stands; in one, only where a string ends in "},{", which makes
    # one cut too many. A call of orjson a body cost five times as much, most of it the buffer
    # each call takes and lets go of.
    parts = written[1:-1].split(b'},{"')
    if len(parts) != len(bodies) or not all(bodies):
        return bodies, [memoryview(orjson.dumps(body, default=_fragment)).tobytes() for body in bodies]
    if len(parts) == 1:
        return bodies, parts
    last = parts.pop()
    return bodies, [parts[0] + b"}", *(b"".join((b'{"', part, b"}")) for part in parts[1:]), b'{"' + last]


def check_columns(config: Config, header: Sequence[str], name: str) -> None:
    """Refuse a CSV file ``name`` whose ``header`` lacks a column ``config`` reads.

    A CSV file names its keys once, in the header: a mapping of a column it lacks (often a
    difference of case or a space) would leave that attribute out of every body, silently.
    Raises :class:`DataFileError` naming each such mapping.
    """
    columns = set(header)
    sources = [("userId", config.user_id)]
    sources += [(f"mappings[{i}].from", m.source) for i, m in enumerate(config.mappings) if m.source is not None]
    found = []
    for where, source in sources:
        column = source if isinstance(source, str) else source[0]
        if column in columns:
            if not isinstance(source, str) and len(source) > 1:
                path = describe_path(source)
                found.append(f'"{where}": a CSV cell is text, so {path} finds nothing past the column "{column}"')
            continue
        # A path whose first step is a position finds nothing in a row either.
        shown = json.dumps(column, ensure_ascii=False)
        guess = _close_column(column, header) if isinstance(column, str) else None
        hint = f' (did you mean "{guess}"?)' if guess is not None else ""
        found.append(f'"{where}": the header has no column {shown}{hint}')
    if found:
        raise DataFileError(listing(name, found))


def _close_column(column: str, header: Sequence[str]) -> str | None:
    folded = column.strip().casefold()
    same = [name for name in header if name.strip().casefold() == folded]
    if same:
        return same[0]
    close = difflib.get_close_matches(column, header, n=1)
    return close[0] if close else None


def _step(i: int, mapping: FieldMapping, csv: bool) -> _Step:
    cast = CASTS[mapping.cast] if mapping.cast is not None else None
    # An empty CSV cell is read as null; unlike a JSON null it is left out unless asked for.
    skip = mapping.skip_null if mapping.skip_null is not None else csv
    name = f'mappings[{i}] ("{mapping.target}"' + (f", as {mapping.cast.value})" if mapping.cast else ")")
    source = mapping.source
    if source is None:
        value = mapping.value
        if cast is not None and value is not None:
            try:
                value = cast(value)
            except CastError as e:
                raise ConfigError(f"{name}: {e}") from None
        return _Step(mapping.target, None, None, value, None, False, name)
    if isinstance(source, str):
        return _Step(mapping.target, source, None, None, cast, skip, name)
    return _Step(mapping.target, None, source, None, cast, skip, name)


@dataclass(frozen=True, slots=True)
class CastRefusal:
    """Why one of a record's values could not be cast: for this record, and for every record alike."""

    reason: str
    cause: str


def _build(record: dict[str, object], steps: tuple[_Step, ...]) -> dict[str, object] | CastRefusal:
    """The body for ``record``, or why one of its values could not be cast."""
    body: dict[str, object] = {}
    for step in steps:
        if step.key is not None:
            value = record.get(step.key, ABSENT)
        elif step.path is not None:
            value = follow(record, step.path)
        else:
            body[step.target] = step.constant
            continue
        if value is ABSENT:
            continue
        if value is None:
            if not step.skip_null:
                body[step.target] = None
            continue
        if step.cast is not None:
            try:
                value = step.cast(value)
            except CastError as e:
                return CastRefusal(f"{step.name}: {e}", f"{step.name}: {e.cause}")
        body[step.target] = value
    return body


@dataclass(slots=True)
class PersonRef:
    """How both transports name one person: the v2 identifier, the v1 path, the ordering key."""

    kind: IdType
    identifier: str
    key: str

    @property
    def path(self) -> str:
        """The person as v1 names them in its path."""
        return v1_path(self.kind, self.identifier)


def v1_path(kind: IdType, identifier: str) -> str:
    """The v1 path segment naming the person v2 names ``{kind: identifier}``: a cio_id with its
    prefix, which is how v1 tells one, anything else percent-encoded."""
    return path_segment(CIO_PREFIX + identifier if kind is IdType.CIO_ID else identifier)


def identify(person_id: str, id_type: IdType, v1: bool = True) -> tuple[PersonRef | None, str | None]:
    """How ``person_id`` names its person under ``id_type``, or why it cannot (on ``v1``).

    v1 reads its path identifier by its shape (an email address by its "@", a cio_id by its
    ``cio_`` prefix) while v2 is told the kind. ``auto`` follows v1's reading for both; a kind
    given explicitly that v1 would read otherwise is refused on v1 rather than sent to someone else.
    """
    looks_cio = person_id.startswith(CIO_PREFIX)
    if id_type is IdType.AUTO:
        if "@" in person_id:
            if v1 and looks_cio:
                # v1 reads a path with the prefix as a cio_id, which no email address is: the write
                # would reach no one.
                return None, (
                    f'the v1 API would read the email address "{person_id}" as a cio_id; '
                    'use "transport": "batch" to send it as an email address'
                )
            return PersonRef(IdType.EMAIL, person_id, person_id.lower()), None
        if looks_cio:
            cio_id = person_id[len(CIO_PREFIX) :]
            if not _CIO_ID.fullmatch(cio_id):
                # Sent, it would name a cio_id no one has: the write would reach no one.
                return None, (
                    f'"{person_id}" begins with "cio_", so the API reads it as a cio_id, but it is not one (letters '
                    'and digits after "cio_"); use "idType": "id" with "transport": "batch" to send it as an id'
                )
            return PersonRef(IdType.CIO_ID, cio_id, person_id), None
        return PersonRef(IdType.ID, person_id, person_id), None
    if id_type is IdType.ID:
        if v1 and ("@" in person_id or looks_cio):
            seen = "an email address" if "@" in person_id else "a cio_id"
            return None, (
                f'the v1 API would read the id "{person_id}" as {seen}; use "transport": "batch" to send it as an id'
            )
        return PersonRef(IdType.ID, person_id, person_id), None
    if id_type is IdType.EMAIL:
        if "@" not in person_id:
            return None, f'"{person_id}" is not an email address (no "@"), and "idType" is "email"'
        if v1 and looks_cio:
            return None, (
                f'the v1 API would read the email address "{person_id}" as a cio_id; '
                'use "transport": "batch" to send it as an email address'
            )
        return PersonRef(IdType.EMAIL, person_id, person_id.lower()), None
    cio_id = person_id[len(CIO_PREFIX) :] if looks_cio else person_id
    if not _CIO_ID.fullmatch(cio_id):
        return None, f'"{person_id}" is not a cio_id (letters and digits, with or without "cio_" before them)'
    return PersonRef(IdType.CIO_ID, cio_id, CIO_PREFIX + cio_id), None


def ordering_key(person_id: str, id_type: IdType = IdType.AUTO) -> str:
    """The key under which updates of one person are serialised (and kept in the ledger).

    Email addresses are not case sensitive, so ``A@x.com`` and ``a@x.com`` are one person.
    """
    ref, _ = identify(person_id, id_type, v1=False)
    return ref.key if ref is not None else person_id


def person_id_of(value: object, key: str) -> tuple[str | None, str | None]:
    """The id as text, and None; or whatever id text there is, and why it is unusable.

    ``key`` names where the id was found, quoted as messages show it: ``"id"``, ``["user", "id"]``.
    """
    kind = type(value)
    if kind is int:
        try:
            text = str(value)
        except ValueError:
            return None, f"{key} is an integer longer than {MAX_ID_BYTES} digits"
    elif kind is str:
        assert isinstance(value, str)
        text = value
        if not text:
            return None, f"{key} is an empty string"
    elif isinstance(value, Decimal):
        return (
            None,
            f"{key} must be a string or an integer, got the number {value} (a float id would name another person)",
        )
    else:
        return None, f"{key} must be a string or an integer, got {article(value)}"
    try:
        size = len(text) if text.isascii() else len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return None, f"{key} is not valid Unicode text"
    if size > MAX_ID_BYTES:
        return text[:40] + "...", f"{key} is {size} bytes long; the Track API allows at most {MAX_ID_BYTES}"
    return text, None


def value_problem(body: dict[str, object]) -> str | None:
    """Why the workspace would refuse one of ``body``'s values as too large, or None."""
    for name, value in body.items():
        if type(value) is str:
            assert isinstance(value, str)
            # A UTF-8 character is at most 4 bytes: short strings need no encoding to check.
            if len(value) * 4 <= MAX_VALUE_BYTES:
                continue
            size = len(value.encode("utf-8", "surrogatepass"))
        elif isinstance(value, (dict, list)):
            size = len(_encode(value).encode("utf-8", "surrogatepass"))
        elif type(value) is int and value.bit_length() > 3000:
            size = len(str(value)) if value.bit_length() < MAX_INTEGER_BITS else MAX_VALUE_BYTES + 1
        else:
            continue
        if size > MAX_VALUE_BYTES:
            return f'the value of attribute "{name}" is {size} bytes; the Track API allows at most {MAX_VALUE_BYTES}'
    return None


def path_segment(person_id: str) -> str:
    """``person_id`` percent-encoded as exactly one URL path segment.

    Every reserved character is encoded (``a/b`` → ``a%2Fb``). ``.`` and ``..`` are unreserved, yet
    URL libraries resolve them as "this" and "parent" directory, so those two ids are spelt out.
    """
    if _UNRESERVED.fullmatch(person_id) is not None and person_id not in (".", ".."):
        return person_id  # what quote() gives back, found at a third of its cost
    segment = quote(person_id, safe="")
    if segment in (".", ".."):
        return segment.replace(".", "%2E")
    return segment


# The Track API orders one person's attribute updates by this Unix time in seconds: an update
# stamped older than one already applied is ignored. v1 reads it from the body, v2 from the item.
TIMESTAMP = "_timestamp"


def stamped(body: bytes, stamp: int | None) -> bytes:
    """A v1 body (a compact JSON object) with ``"_timestamp": stamp`` added; as is for None."""
    if stamp is None:
        return body
    return (body[:-1] + b"," if body != b"{}" else b"{") + b'"_timestamp":%d}' % stamp


def merged_body(bodies: Iterable[bytes]) -> bytes:
    """One body setting every attribute the ``bodies`` set, each to the value of the last body
    that sets it: what applying them one after another leaves in the workspace.

    Bodies are this module's own compact JSON, so decoding and encoding again gives each value
    the same text it had (a float's shortest form reads back as the same float).
    """
    attributes: dict[str, object] = {}
    for body in bodies:
        attributes.update(json.loads(body))
    return encode_body(attributes)


# What follows a batch item's identifier, up to its attributes.
_ATTRIBUTES = b'},"attributes":'
# The start of a batch item, up to the identifier, for each kind of identifier.
_IDENTIFY = {
    kind: b'{"type":"person","action":"identify","identifiers":{"%s":' % kind.value.encode() for kind in IdType
}


def batch_item(update: PersonUpdate, stamp: int | None = None) -> bytes:
    """``update`` as one item of a v2 batch: identify this person with these attributes (as of
    ``stamp``, when given)."""
    return batch_items((update,), stamp)[0]


def batch_items(updates: Sequence[PersonUpdate], stamp: int | None = None) -> list[bytes]:
    """Each of ``updates`` as :func:`batch_item` makes it, all as of ``stamp``."""
    # The identifiers object spelt out: the same bytes as encoding {kind: identifier} (the kinds
    # are plain ASCII names; the identifier goes through the encoder's own string escaping), at a
    # twentieth of the cost, which was three quarters of an item's.
    end = b',"timestamp":%d}' % stamp if stamp is not None else b"}"
    # Joined at once: adding the parts one to the next cost half as much again.
    return [
        b"".join((_IDENTIFY[u.kind], _encode_string(u.identifier).encode("utf-8"), _ATTRIBUTES, u.body, end))
        for u in updates
    ]


def batch_body(items: Sequence[bytes]) -> bytes:
    """The body of ``POST /api/v2/batch`` holding ``items``."""
    return b'{"batch":[' + b",".join(items) + b"]}"

"""Turning data records into person updates: the id rules, the mapping and the API's limits."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import quote

from .config import UPDATE_ONLY, FieldMapping, Mode
from .schema import json_type

# Limits the Track API enforces with a 400; checking them here names the record and the reason.
MAX_ID_BYTES = 150
MAX_VALUE_BYTES = 1000
# The v2 batch endpoint's limits: 32 KB an item, 500 KB a request (kept under both readings of KB).
MAX_ITEM_BYTES = 32_000
MAX_BATCH_BYTES = 500_000


@dataclass(frozen=True, slots=True)
class PersonUpdate:
    """A valid record, ready to send: ``PUT /api/v1/customers/{path}`` with ``body``."""

    index: int
    person_id: str
    path: str
    body: bytes
    record: object


@dataclass(frozen=True, slots=True)
class InvalidRecord:
    """A record that cannot be sent, with the reason in words."""

    index: int
    person_id: str | None
    reason: str
    record: object


def _number(value: object) -> float:
    # ijson reads non-integers as Decimal to keep big integers exact; the API takes JSON numbers.
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_number).encode


class RecordMapper:
    """Maps each record to the body of its PUT, following the configuration's mappings.

    Only mapped keys are sent; a mapped key that is absent from a record is left out of the body
    (the attribute keeps its value in the workspace), while a present ``null`` is sent as ``null``.
    """

    def __init__(self, user_id: str, mappings: Sequence[FieldMapping], mode: Mode = Mode.UPSERT) -> None:
        self._user_id = user_id
        self._pairs = tuple((m.source, m.target) for m in mappings)
        self._update_only = mode is Mode.UPDATE

    def map(self, index: int, record: object) -> PersonUpdate | InvalidRecord:
        """The update for ``record`` (element ``index`` of the data file), or why it is invalid."""
        if type(record) is not dict:
            return InvalidRecord(index, None, f"not a JSON object (got {article(record)})", record)
        if self._user_id not in record:
            return InvalidRecord(index, None, f'no "{self._user_id}" key for the person id', record)
        person_id, problem = person_id_of(record[self._user_id], self._user_id)
        if problem is not None:
            return InvalidRecord(index, person_id, problem, record)
        assert person_id is not None
        body = {target: record[source] for source, target in self._pairs if source in record}
        if self._update_only:
            body[UPDATE_ONLY] = True
        try:
            problem = value_problem(body)
            if problem is not None:
                return InvalidRecord(index, person_id, problem, record)
            data = _encode(body).encode("utf-8")
        except ValueError:
            return InvalidRecord(index, person_id, "a mapped number is too large to send as JSON", record)
        except TypeError as e:  # records built in Python rather than read from JSON
            return InvalidRecord(index, person_id, f"a mapped value is not JSON: {e}", record)
        except RecursionError:
            return InvalidRecord(index, person_id, "a mapped value is nested too deeply", record)
        except UnicodeEncodeError:
            return InvalidRecord(index, person_id, "a mapped string is not valid Unicode", record)
        return PersonUpdate(index, person_id, path_segment(person_id), data, record)


def person_id_of(value: object, key: str) -> tuple[str | None, str | None]:
    """The id as text, and None; or whatever id text there is, and why it is unusable."""
    kind = type(value)
    if kind is int:
        try:
            text = str(value)
        except ValueError:
            return None, f'"{key}" is an integer longer than {MAX_ID_BYTES} digits'
    elif kind is str:
        assert isinstance(value, str)
        text = value
        if not text:
            return None, f'"{key}" is an empty string'
    elif isinstance(value, Decimal):
        return (
            None,
            f'"{key}" must be a string or an integer, got the number {value} (a float id would name another person)',
        )
    else:
        return None, f'"{key}" must be a string or an integer, got {article(value)}'
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return None, f'"{key}" is not valid Unicode text'
    if size > MAX_ID_BYTES:
        return text[:40] + "...", f'"{key}" is {size} bytes long; the Track API allows at most {MAX_ID_BYTES}'
    return text, None


def ordering_key(person_id: str) -> str:
    """The key naming one person: their updates are serialised under it, and the ledger keeps it.

    The API reads an id containing "@" as an email address, and email addresses are not case
    sensitive, so ``A@x.com`` and ``a@x.com`` are one person.
    """
    return person_id.lower() if "@" in person_id else person_id


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
            size = len(str(value)) if value.bit_length() < 14000 else MAX_VALUE_BYTES + 1
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
    segment = quote(person_id, safe="")
    if segment in (".", ".."):
        return segment.replace(".", "%2E")
    return segment


def identifiers(person_id: str) -> dict[str, str]:
    """The v2 identifiers naming the same person as ``person_id`` does in a v1 path.

    v1 reads an id shaped like an email address as one, and ``cio_...`` as a Customer.io id;
    v2 says which explicitly.
    """
    if "@" in person_id:
        return {"email": person_id}
    if person_id.startswith("cio_"):
        return {"cio_id": person_id[4:]}
    return {"id": person_id}


def batch_item(update: PersonUpdate) -> bytes:
    """``update`` as one item of a v2 batch: identify this person with these attributes."""
    return (
        b'{"type":"person","action":"identify","identifiers":'
        + _encode(identifiers(update.person_id)).encode("utf-8")
        + b',"attributes":'
        + update.body
        + b"}"
    )


def batch_body(items: Sequence[bytes]) -> bytes:
    """The body of ``POST /api/v2/batch`` holding ``items``."""
    return b'{"batch":[' + b",".join(items) + b"]}"


def article(value: object) -> str:
    """The JSON type of a parsed value with its article: "an array", "a string", "null"."""
    kind = json_type(value)
    return kind if kind == "null" else ("an " if kind[0] in "aeiou" else "a ") + kind

"""The id rules and the mapping from a record to the body of its PUT."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cio_sync.input.config import FieldMapping, IdType
from cio_sync.input.mapping import (
    ABSENT,
    CIO_PREFIX,
    InvalidRecord,
    PersonUpdate,
    RecordMapper,
    checked_body,
    encode_body,
    follow,
    identify,
    path_segment,
    value_problem,
)

MAPPER = RecordMapper("id", [FieldMapping("name", "name"), FieldMapping("computed_ltv", "ltv")])


def update(record: object) -> PersonUpdate:
    item = MAPPER.map(7, record)
    assert isinstance(item, PersonUpdate), item
    return item


def invalid(record: object) -> InvalidRecord:
    item = MAPPER.map(7, record)
    assert isinstance(item, InvalidRecord), item
    return item


def test_only_mapped_keys_are_sent_under_their_new_names() -> None:
    item = update({"id": 1, "name": "Ada", "computed_ltv": 10, "password": "x", "email": "a@b"})
    assert json.loads(item.body) == {"name": "Ada", "ltv": 10}
    assert (item.index, item.person_id, item.path) == (7, "1", "1")


def test_an_absent_key_is_left_out_and_a_null_is_sent() -> None:
    assert json.loads(update({"id": 1, "name": None}).body) == {"name": None}


def test_a_record_with_no_mapped_keys_still_upserts_the_person() -> None:
    assert update({"id": "x"}).body == b"{}"


def test_values_keep_their_json_types() -> None:
    record = {"id": 1, "name": {"first": "Ada", "tags": [1, True, None]}, "computed_ltv": Decimal("12.5")}
    assert json.loads(update(record).body) == {"name": {"first": "Ada", "tags": [1, True, None]}, "ltv": 12.5}


def test_big_integers_stay_exact() -> None:
    assert update({"id": 1, "computed_ltv": 12345678901234567890123}).body == b'{"ltv":12345678901234567890123}'


def test_the_id_key_can_also_be_mapped() -> None:
    mapper = RecordMapper("email", [FieldMapping("email", "email")])
    item = mapper.map(0, {"email": "a@example.com"})
    assert isinstance(item, PersonUpdate)
    assert json.loads(item.body) == {"email": "a@example.com"}


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ([1, 2], "not a JSON object (got an array)"),
        ("Ada", "not a JSON object (got a string)"),
        (None, "not a JSON object (got null)"),
        (Decimal("1.5"), "not a JSON object (got a number)"),
        ({"name": "Ada"}, 'no "id" key for the person id'),
        ({"id": None}, '"id" must be a string or an integer, got null'),
        ({"id": True}, '"id" must be a string or an integer, got a boolean'),
        ({"id": Decimal("5.0")}, '"id" must be a string or an integer, got the number 5.0'),
        ({"id": [1]}, '"id" must be a string or an integer, got an array'),
        ({"id": {"v": 1}}, '"id" must be a string or an integer, got an object'),
        ({"id": ""}, '"id" is an empty string'),
        ({"id": "x" * 151}, '"id" is 151 bytes long; the Track API allows at most 150'),
        ({"id": "é" * 76}, '"id" is 152 bytes long; the Track API allows at most 150'),
        ({"id": 10**200}, '"id" is 201 bytes long; the Track API allows at most 150'),
        (
            {"id": 1, "name": "x" * 1001},
            'the value of attribute "name" is 1001 bytes; the Track API allows at most 1000',
        ),
        ({"id": 1, "name": "é" * 501}, 'the value of attribute "name" is 1002 bytes'),
        ({"id": 1, "name": ["x" * 600, "y" * 600]}, 'the value of attribute "name" is 1207 bytes'),
        ({"id": 1, "name": 10**1500}, 'the value of attribute "name" is 1501 bytes'),
        ({"id": 1, "computed_ltv": Decimal("1e400")}, "a mapped number is too large to send as JSON"),
        ({"id": 1, "name": [Decimal("-1e400")]}, "a mapped number is too large to send as JSON"),
        ({"id": 1, "computed_ltv": Decimal("1e-400")}, "too small to send as JSON: 1E-400 would arrive as 0"),
        ({"id": 1, "name": [Decimal("-2.5e-330")]}, "too small to send as JSON: -2.5E-330 would arrive as 0"),
        ({"id": 1, "name": {1, 2}}, "a mapped value is not JSON: set is not JSON"),
    ],
)
def test_invalid_records_say_why(record: object, reason: str) -> None:
    assert reason in invalid(record).reason


def test_an_invalid_record_keeps_its_index_and_the_id_it_has() -> None:
    item = invalid({"id": 1, "name": "x" * 1001})
    assert (item.index, item.person_id) == (7, "1")


def test_limits_are_inclusive() -> None:
    assert update({"id": "x" * 150, "name": "y" * 1000}).person_id == "x" * 150
    assert update({"id": "é" * 75}).person_id == "é" * 75


@pytest.mark.parametrize(
    ("person_id", "segment"),
    [
        ("a/b", "a%2Fb"),
        ("x?y#z", "x%3Fy%23z"),
        ("a b", "a%20b"),
        ("ü", "%C3%BC"),
        ("%41", "%2541"),
        (".", "%2E"),
        ("..", "%2E%2E"),
        ("...", "..."),
        ("a.b", "a.b"),
        ("a+b&c=d;e", "a%2Bb%26c%3Dd%3Be"),
        ("-5", "-5"),
        (" ", "%20"),
        ("line\nbreak", "line%0Abreak"),
    ],
)
def test_ids_are_one_encoded_path_segment(person_id: str, segment: str) -> None:
    assert path_segment(person_id) == segment


@given(st.text(min_size=1).filter(lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s)) | st.just("cio_."))
def test_the_v1_path_is_the_id_as_one_segment_whatever_kind_it_is_read_as(person_id: str) -> None:
    for id_type in IdType:
        for v1 in (True, False):
            ref, _ = identify(person_id, id_type, v1)
            if ref is not None:
                shown = person_id if id_type is not IdType.CIO_ID else CIO_PREFIX + ref.identifier
                assert ref.path == path_segment(shown), (id_type, v1)


@given(st.text(min_size=1).filter(lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s)))
def test_any_id_decodes_back_to_itself(person_id: str) -> None:
    segment = path_segment(person_id)
    assert "/" not in segment and "?" not in segment and "#" not in segment
    assert segment not in (".", "..")
    assert unquote(segment, errors="strict") == person_id


@given(st.dictionaries(st.text(max_size=5), st.none() | st.booleans() | st.integers() | st.text(max_size=20)))
def test_the_body_is_exactly_the_mapped_subset(record: dict[str, object]) -> None:
    record["id"] = 1
    item = update(record)
    expected = {t: record[s] for s, t in (("name", "name"), ("computed_ltv", "ltv")) if s in record}
    assert json.loads(item.body) == expected


Body = dict[str, object]
# What every body was written as before orjson wrote the common ones: the standard library's encoder.
_REFERENCE = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=lambda d: float(d)
).encode


def test_every_character_is_written_as_the_reference_encoder_writes_it() -> None:
    characters = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    for start in range(0, len(characters), 4096):
        chunk = "".join(characters[start : start + 4096])
        # Each character is escaped on its own, whatever is around it: as a value and as a key.
        body: dict[str, object] = {chunk: chunk}
        assert encode_body(body) == _REFERENCE(body).encode("utf-8"), hex(start)


exact_values = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text()
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.floats(allow_nan=False, allow_infinity=False)
)


@given(st.dictionaries(st.text(max_size=8), exact_values | st.lists(exact_values, max_size=3), max_size=6))
def test_bodies_are_the_bytes_the_reference_encoder_writes(body: dict[str, object]) -> None:
    agrees(encode_body, lambda: _REFERENCE(body).encode("utf-8"), body)


def agrees(
    write: Callable[[dict[str, object]], object], reference: Callable[[], object], body: dict[str, object]
) -> None:
    """``write(body)`` gives what ``reference()`` gives, or raises as it raises."""
    try:
        expected = reference()
    except (ValueError, UnicodeEncodeError) as e:
        with pytest.raises(type(e)):
            write(body)
        return
    assert write(body) == expected


sized_values = exact_values | st.text(min_size=240, max_size=1100) | st.integers(min_value=2**60, max_value=10**1100)


@given(st.dictionaries(st.text(max_size=8), sized_values | st.lists(exact_values, max_size=3), max_size=4))
def test_a_checked_body_is_the_encoded_body_or_why_not(body: dict[str, object]) -> None:
    agrees(checked_body, lambda: value_problem(body) or _REFERENCE(body).encode("utf-8"), body)


@pytest.mark.parametrize(
    "body",
    [
        {"n": 2**64},  # beyond orjson's integers
        {"n": -(2**63) - 1},
        {"s": "lone \ud800 half"},
        {"f": 1e16, "g": 1.5e-07, "h": 100.0},  # floats: orjson spells exponents otherwise
        {"d": Decimal("1e400")},  # out of a float's range: refused
        {"d": Decimal("12.50"), "e": Decimal("-0.0")},
    ],
)
def test_bodies_orjson_cannot_write_exactly_go_through_the_reference(body: dict[str, object]) -> None:
    agrees(encode_body, lambda: _REFERENCE(body).encode("utf-8"), body)


json_trees = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)


@given(json_trees, st.lists(st.integers(min_value=0, max_value=7), max_size=6))
def test_a_path_finds_what_walking_the_tree_finds(tree: object, choices: list[int]) -> None:
    path: list[str | int] = []
    value = tree
    for choice in choices:
        if isinstance(value, dict) and value:
            key = sorted(value)[choice % len(value)]
            path.append(key)
            value = value[key]
        elif isinstance(value, list) and value:
            path.append(choice % len(value))
            value = value[choice % len(value)]
    record = {"root": tree}
    assert follow(record, ("root", *path)) == value
    # One step more than the tree holds leads nowhere: past the end, or through a leaf.
    beyond = len(value) if isinstance(value, list) else "\x00missing"
    assert follow(record, ("root", *path, beyond)) is ABSENT


@pytest.mark.parametrize("zero", ["0", "0.0", "-0.0", "0e10", "0E-400"])
def test_a_zero_however_written_is_sent_as_zero(zero: str) -> None:
    mapped = RecordMapper("id", [FieldMapping("v", "v")]).map(0, {"id": 1, "v": Decimal(zero)})
    assert isinstance(mapped, PersonUpdate)
    assert json.loads(mapped.body)["v"] == 0

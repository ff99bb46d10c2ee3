"""Proposing a configuration from records: every key mapped, the id picked, casts only where
every sampled value agrees (cio_sync.propose)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cio_sync.input.config import MAX_ATTRIBUTES, config_from_dict
from cio_sync.input.convert import CASTS, Cast
from cio_sync.input.mapping import RecordMapper
from cio_sync.input.propose import MAX_PATH_STEPS, NothingToMap, fits, propose, propose_config
from cio_sync.input.schema import problems

ENV = {"CIO_SITE_ID": "site", "CIO_API_KEY": "key"}


def csv_rows(text: str) -> tuple[list[dict[str, str | None]], list[str]]:
    """Rows of a small CSV (no quoting) as the sampler reads them: text, None for an empty cell."""
    header, *lines = text.strip().split("\n")
    columns = header.split(",")
    return [dict(zip(columns, [c or None for c in line.split(",")], strict=True)) for line in lines], columns


def casts_of(config: dict[str, Any]) -> dict[str, str | None]:
    return {m["to"]: m.get("as") for m in config["mappings"]}


def assert_loads(config: dict[str, Any]) -> None:
    """The proposal is what a sync accepts: valid against the schema, and loaded by the loader."""
    assert problems("config.schema.json", config) == []
    config_from_dict(config, env=ENV)


# --- casts ---------------------------------------------------------------------------------------


def test_csv_text_gets_the_cast_every_value_agrees_on() -> None:
    rows, header = csv_rows(
        """
id,age,score,active,signed_up,zip,phone,notes,mixed,flag
1,36,1.5,true,2024-01-02T03:04:05Z,02139,+15550100,,4,1
2,-41,2,FALSE,2024-02-03,10001,+15550101,hi,x,0
3,0,-0.25,True,2024-02-03 10:00:00.123 UTC,94105,+15550102,,5,1
"""
    )
    config = propose_config(rows, header)
    assert casts_of(config) == {
        "id": None,  # the person id stays text, as it is in the request's path
        "age": "integer",
        "score": "number",
        "active": "boolean",
        "signed_up": "timestamp",
        "zip": None,  # "02139" would lose its zero
        "phone": None,
        "notes": None,
        "mixed": None,
        "flag": "integer",  # 1/0 could be a count as well as a flag: the number is kept
    }
    assert_loads(config)


@pytest.mark.parametrize(
    "values",
    [
        ["12345678901234567"],  # more digits than a double holds exactly: an id, not a count
        ["1e3"],
        ["1,5"],
        [" 42"],
        ["4.2", "yes"],
        ["2024-02-30"],  # not a date
        ["31/01/2024"],
        ["NaN"],
        ["yes", "no"],
        [""],
    ],
)
def test_text_that_is_not_plainly_one_type_is_left_as_text(values: list[str]) -> None:
    config = propose_config([{"id": str(i), "v": v} for i, v in enumerate(values)])
    assert casts_of(config)["v"] is None


def test_json_numbers_and_booleans_are_never_cast_but_json_text_is() -> None:
    records = [
        {"id": 1, "n": 5, "f": Decimal("1.5"), "b": True, "s": "12", "d": "2024-01-02", "seen": "2024-03-05T17:45:12Z"},
        {"id": 2, "n": 6, "f": Decimal("2.5"), "b": False, "s": 13, "d": None, "seen": 1709660712000},
    ]
    config = propose_config(records)
    assert casts_of(config) == {
        "id": None,
        "n": None,
        "f": None,
        "b": None,
        "s": "integer",
        "d": "timestamp",
        "seen": "timestamp",  # ISO text and milliseconds: both are timestamps
    }
    assert config["userId"] == "id"


def test_a_column_with_no_value_at_all_is_mapped_without_a_cast() -> None:
    rows, header = csv_rows("id,empty\n1,\n2,\n")
    assert propose_config(rows, header)["mappings"] == [{"from": "id", "to": "id"}, {"from": "empty", "to": "empty"}]


def test_a_header_alone_maps_every_column_without_casts() -> None:
    proposal = propose([], header=["email", "age"])
    assert proposal.config == {
        "parallelism": 10,
        "userId": "email",
        "mappings": [{"from": "email", "to": "email"}, {"from": "age", "to": "age"}],
    }
    assert proposal.records == 0


# Dates and date-times, valid or not (month 13, hour 25): the cast is what decides.
ISO_LIKE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2})?(Z|[+-][0-9]{2}:?[0-9]{2})?)?"
# The kinds of value a sampled column holds: text shaped like each cast, and anything else.
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.decimals(allow_nan=False, allow_infinity=False, places=3),
    st.from_regex(r"-?[0-9]{1,20}(\.[0-9]{1,5})?", fullmatch=True),
    st.from_regex(ISO_LIKE, fullmatch=True),
    st.sampled_from(["true", "false", "TRUE", "False", "1", "0", "yes", "", " 1", "1_000", "٣"]),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=2),
)


@given(st.lists(VALUES, min_size=1, max_size=30))
def test_a_proposed_cast_never_fails_on_a_sampled_value(values: list[object]) -> None:
    records = [{"id": str(i), "v": value} for i, value in enumerate(values)]
    config = propose_config(records)
    cast = casts_of(config)["v"]
    if cast is not None:
        for value in values:
            if value is not None:
                CASTS[Cast(cast)](value)  # raises CastError if the proposal were wrong
    # And a sync maps every sampled record with it: none is invalid for a cast.
    loaded = config_from_dict(config, env=ENV)
    mapper = RecordMapper.for_config(loaded)
    assert [type(mapper.map(i, r)).__name__ for i, r in enumerate(records)] == ["PersonUpdate"] * len(records)


@given(st.lists(st.integers(min_value=-(10**14), max_value=10**14), min_size=1, max_size=20))
def test_integers_as_text_are_proposed_as_integers(numbers: list[int]) -> None:
    config = propose_config([{"id": "x", "n": str(n)} for n in numbers])
    assert casts_of(config)["n"] == "integer"


@given(st.lists(st.datetimes(timezones=st.just(None)), min_size=1, max_size=20))
def test_iso_date_times_are_proposed_as_timestamps(moments: list[Any]) -> None:
    config = propose_config([{"id": "x", "at": m.isoformat()} for m in moments])
    assert casts_of(config)["at"] == "timestamp"


def test_fits_checks_the_real_cast_as_well_as_the_shape() -> None:
    assert fits(Cast.TIMESTAMP, "2024-01-02T03:04:05Z")
    assert not fits(Cast.TIMESTAMP, "2024-13-02")  # shaped like a date, but no such month
    assert not fits(Cast.INTEGER, True)
    assert not fits(Cast.BOOLEAN, 1)


# --- the id --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("columns", "chosen"),
    [
        (["name", "email", "id"], "id"),
        (["id", "user_id", "email"], "user_id"),  # in a joined export a bare id may be the row's
        (["Customer ID", "email"], "Customer ID"),
        (["EMAIL", "name"], "EMAIL"),
        (["USER-ID", "Id"], "USER-ID"),
        (["email_address", "uid"], "uid"),
    ],
)
def test_the_id_is_picked_by_name_case_insensitively(columns: list[str], chosen: str) -> None:
    record = {column: f"v{i}@x" for i, column in enumerate(columns)}
    proposal = propose([record])
    assert proposal.config["userId"] == chosen
    assert proposal.id_named


def test_an_id_in_every_record_wins_over_a_better_name_with_gaps() -> None:
    proposal = propose([{"user_id": "7", "email": "a@x.com"}, {"user_id": None, "email": "b@x.com"}])
    assert proposal.config["userId"] == "email"
    assert proposal.config["idType"] == "email"
    assert proposal.other_ids == (("user_id",),)
    assert proposal.id_missing == 0


def test_an_id_with_gaps_everywhere_is_still_picked_and_the_gaps_counted() -> None:
    proposal = propose([{"id": "1"}, {"id": ""}, {"id": 2.5}, {"name": "x"}])
    assert proposal.config["userId"] == "id"
    assert proposal.id_missing == 3


def test_an_email_id_gets_id_type_email_only_when_every_value_is_an_address() -> None:
    assert "idType" not in propose([{"email": "a@x.com"}, {"email": "b"}]).config
    assert propose([{"email": "a@x.com"}]).config["idType"] == "email"


def test_a_nested_id_counts_under_a_parent_that_names_a_person() -> None:
    proposal = propose([{"company": {"id": 5}, "user": {"id": "u-1", "email": "a@x.com"}}])
    assert proposal.config["userId"] == ["user", "id"]
    assert propose([{"company": {"id": 5}, "email": "a@x.com"}]).config["userId"] == "email"


def test_a_top_level_id_wins_over_a_nested_one_of_the_same_name() -> None:
    assert propose([{"user": {"id": "n"}, "user_id": "t"}]).config["userId"] == "user_id"


def test_without_an_id_name_the_first_key_with_an_id_in_every_record_is_picked() -> None:
    proposal = propose([{"note": None, "size": 1.5, "handle": "ada", "code": "x"}, {"handle": "bo", "code": "y"}])
    assert proposal.config["userId"] == "handle"
    assert not proposal.id_named


# --- keys and paths ------------------------------------------------------------------------------


def test_nested_keys_are_paths_named_by_their_last_key_unless_two_share_it() -> None:
    records = [
        {
            "user": {"id": "u-1", "email": "a@x.com"},
            "billing": {"address": {"city": "Paris"}},
            "shipping": {"address": {"city": "Lyon"}},
            "city": "Nice",
            "tags": ["a", "b"],
            "prefs": {},
        }
    ]
    assert propose_config(records)["mappings"] == [
        {"from": ["user", "id"], "to": "id"},
        {"from": ["user", "email"], "to": "email"},
        {"from": ["billing", "address", "city"], "to": "billing_address_city"},
        {"from": ["shipping", "address", "city"], "to": "shipping_address_city"},
        {"from": "city", "to": "city"},
        {"from": "tags", "to": "tags"},  # arrays are sent whole
        {"from": "prefs", "to": "prefs"},  # an object never seen with a key, whole too
    ]


def test_keys_first_seen_in_later_records_come_after_the_earlier_ones() -> None:
    config = propose_config([{"id": "1", "b": 1}, {"id": "2", "a": {"x": 1}}, {"id": "3", "b": 2, "c": 3}])
    assert [m["from"] for m in config["mappings"]] == ["id", "b", ["a", "x"], "c"]


def test_a_key_that_is_sometimes_an_object_and_sometimes_not_is_mapped_whole() -> None:
    config = propose_config([{"id": "1", "plan": {"name": "pro"}}, {"id": "2", "plan": "free"}])
    assert config["mappings"] == [{"from": "id", "to": "id"}, {"from": "plan", "to": "plan"}]


def test_an_object_nested_past_the_schemas_path_length_is_mapped_whole() -> None:
    deep: dict[str, Any] = {"leaf": 1}
    for i in range(MAX_PATH_STEPS + 8):
        deep = {f"k{i}": deep}
    config = propose_config([{"id": "1", "deep": deep}])
    path = config["mappings"][1]["from"]
    assert len(path) == MAX_PATH_STEPS
    assert_loads(config)


def test_names_that_clash_are_made_unique_and_kept_to_150_bytes() -> None:
    long = "é" * 100  # 200 bytes
    records = [{"id": "1", "a_b": 1, "a": {"b": 2}, "x": {"a_b": 3}, long: 4, "": 5}]
    config = propose_config(records)
    names = [m["to"] for m in config["mappings"]]
    assert len(set(names)) == len(names)
    assert all(0 < len(n.encode()) <= 150 for n in names)
    assert {"from": [""], "to": "unnamed"} in config["mappings"]
    assert_loads(config)


def test_more_keys_than_a_configuration_holds_are_listed_as_left_out() -> None:
    record = {"id": "1", **{f"k{i}": i for i in range(MAX_ATTRIBUTES + 5)}}
    proposal = propose([record])
    assert len(proposal.config["mappings"]) == MAX_ATTRIBUTES
    assert proposal.over_limit[0] == (f"k{MAX_ATTRIBUTES - 1}",)
    assert len(proposal.over_limit) == 6
    assert_loads(proposal.config)


def test_keys_with_values_too_large_to_send_are_named() -> None:
    proposal = propose([{"id": "1", "bio": "x" * 1001, "tags": list(range(400)), "ok": "y" * 1000}])
    assert proposal.oversize == (("bio",), ("tags",))


def test_a_key_that_is_not_unicode_text_is_left_out() -> None:
    proposal = propose([{"id": "1", "bad\ud800": 2}])
    assert proposal.unusable == (("bad\ud800",),)
    assert [m["from"] for m in proposal.config["mappings"]] == ["id"]


def test_records_that_are_not_objects_are_counted_and_nothing_to_map_is_refused() -> None:
    assert propose([{"id": "1"}, 5, "x", None]).not_objects == 3
    with pytest.raises(NothingToMap):
        propose([{}, [1], 2])
    with pytest.raises(NothingToMap):
        propose([])


# Records of nested objects with any keys: whatever their shape, the proposal loads.
KEYS = st.text(min_size=0, max_size=8)
LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10), st.lists(st.integers(), max_size=2))
RECORDS = st.dictionaries(
    KEYS, st.recursive(LEAVES, lambda inner: st.dictionaries(KEYS, inner, max_size=4), max_leaves=12), max_size=6
)


@given(st.lists(RECORDS, min_size=1, max_size=8))
@settings(max_examples=50, deadline=None)
def test_any_records_give_a_configuration_a_sync_loads(records: list[dict[str, Any]]) -> None:
    try:
        proposal = propose(records)
    except NothingToMap:
        assert all(not r for r in records)
        return
    assert_loads(proposal.config)

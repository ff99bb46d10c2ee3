"""Mappings beyond the plain form, end to end: paths, constants, casts, skipNull and userId paths."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cio_sync.emulator import Emulator

from .conftest import Files, Run, config_dict, people_puts, run_cli, unstamped

# A nested export as a warehouse writes it: ISO dates, numbers as text, nulls, arrays.
EXPORT: list[dict[str, Any]] = [
    {
        "user": {"id": "u-1", "email": "ada@example.com"},
        "profile": {"plan": "pro", "seats": "12", "ltv": "1520.50", "trial": "false"},
        "signed_up": "2024-01-02T09:30:00+01:00",
        "last_seen": "2024-03-05T17:45:12.875Z",
        "orders": [{"total": "31.5"}, {"total": "12"}],
        "company": None,
    },
    {
        "user": {"id": "u-2", "email": "grace@example.com"},
        "profile": {"plan": None, "seats": "3", "ltv": "0", "trial": "TRUE"},
        "signed_up": "2023-12-31",
        "last_seen": 1709660712000,
        "orders": [],
        "company": "Navy",
    },
]
EXPORT_MAPPINGS: list[dict[str, Any]] = [
    {"from": ["user", "email"], "to": "email"},
    {"from": ["profile", "plan"], "to": "plan", "skipNull": True},
    {"from": ["profile", "seats"], "to": "seats", "as": "integer"},
    {"from": ["profile", "ltv"], "to": "ltv", "as": "number"},
    {"from": ["profile", "trial"], "to": "on_trial", "as": "boolean"},
    {"from": "signed_up", "to": "created_at", "as": "timestamp"},
    {"from": "last_seen", "to": "last_seen_at", "as": "timestamp"},
    {"from": ["orders", 0, "total"], "to": "first_order", "as": "number"},
    {"from": "company", "to": "company"},
    {"value": "warehouse", "to": "source"},
]
# What each person of EXPORT is sent under EXPORT_MAPPINGS (the worked example of docs/mappings.md).
EXPORT_BODIES: dict[str, dict[str, Any]] = {
    "u-1": {
        "email": "ada@example.com",
        "plan": "pro",
        "seats": 12,
        "ltv": 1520.5,
        "on_trial": False,
        "created_at": 1704184200,
        "last_seen_at": 1709660712,
        "first_order": 31.5,
        "company": None,
        "source": "warehouse",
    },
    "u-2": {
        "email": "grace@example.com",
        "seats": 3,
        "ltv": 0,
        "on_trial": True,
        "created_at": 1703980800,
        "last_seen_at": 1709660712,
        "company": "Navy",
        "source": "warehouse",
    },
}


def sync_run(emulator: Emulator, files: Files, records: object, *extra: str, **config: Any) -> Run:
    """Sync ``records`` with the configuration ``config`` overrides, through the CLI."""
    path = files.config(config_dict(emulator.url, **config))
    return run_cli(["--config", path, "--data", files.data(records), *extra])


def bodies(emulator: Emulator) -> dict[str | None, Any]:
    """The body each person's PUT carried."""
    return {r.person_id: unstamped(r.body) for r in emulator.requests() if r.method == "PUT"}


def test_a_nested_export_with_dates_text_numbers_and_nulls(emulator: Emulator, files: Files) -> None:
    run = sync_run(emulator, files, EXPORT, userId=["user", "id"], mappings=EXPORT_MAPPINGS)
    assert run.code == 0, run.stderr
    assert bodies(emulator) == EXPORT_BODIES


def test_the_values_sent_have_the_cast_json_types(emulator: Emulator, files: Files) -> None:
    sync_run(emulator, files, EXPORT[:1], userId=["user", "id"], mappings=EXPORT_MAPPINGS)
    (raw,) = [r.body for r in emulator.requests() if r.method == "PUT"]
    assert type(raw["seats"]) is int and type(raw["on_trial"]) is bool and type(raw["created_at"]) is int


@pytest.mark.parametrize(
    ("path", "record", "sent"),
    [
        (["a", "b"], {"a": {"b": 1}}, 1),
        (["a", 1], {"a": ["x", "y"]}, "y"),
        (["a", 0, "b", 0], {"a": [{"b": [True]}]}, True),
        (["a.b"], {"a.b": "dotted key", "a": {"b": "nested"}}, "dotted key"),
        (["a", ""], {"a": {"": "empty key"}}, "empty key"),
        (["a", "b"], {"a": {"b": None}}, None),
        (["a", "b"], {"a": {"b": {"deep": [1]}}}, {"deep": [1]}),
        # JSON does not tell 1.0 from 1: a position written 1.0 is position 1.
        (["a", 1.0], {"a": ["x", "y"]}, "y"),
    ],
)
def test_paths_reach_nested_values(emulator: Emulator, files: Files, path: list[Any], record: Any, sent: Any) -> None:
    run = sync_run(emulator, files, [{"id": 1, **record}], mappings=[{"from": path, "to": "v"}])
    assert run.code == 0, run.stderr
    assert bodies(emulator) == {"1": {"v": sent}}


@pytest.mark.parametrize(
    ("path", "record"),
    [
        (["a", "b"], {}),
        (["a", "b"], {"a": {}}),
        (["a", "b", "c"], {"a": {"x": 1}}),
        (["a", 2], {"a": ["x", "y"]}),
        (["a", 0], {"a": []}),
        (["a", 0], {"a": {"0": "not an array"}}),
        (["a", "0"], {"a": ["not an object"]}),
        (["a", "b"], {"a": "a string"}),
        (["a", "b"], {"a": None}),
        (["a", "b"], {"a": [1, 2]}),
        (["a", 0], {"a": 5}),
    ],
)
def test_a_path_that_leads_nowhere_is_absent(emulator: Emulator, files: Files, path: list[Any], record: Any) -> None:
    mappings = [{"from": path, "to": "v"}, {"from": "name", "to": "name"}]
    run = sync_run(emulator, files, [{"id": 1, "name": "Ada", **record}], mappings=mappings)
    assert run.code == 0, run.stderr
    assert bodies(emulator)["1"] == {"name": "Ada"}


def test_constants_are_sent_to_everyone(emulator: Emulator, files: Files) -> None:
    mappings = [
        {"value": "warehouse", "to": "source"},
        {"value": 3, "to": "version"},
        {"value": None, "to": "cleared"},
        {"value": {"nested": [1, True]}, "to": "object"},
        {"value": "2024-01-02", "to": "imported_at", "as": "timestamp"},
        {"value": "7", "to": "seven", "as": "integer"},
    ]
    run = sync_run(emulator, files, [{"id": 1}, {"id": 2, "source": "ignored"}], mappings=mappings)
    assert run.code == 0, run.stderr
    expected = {
        "source": "warehouse",
        "version": 3,
        "cleared": None,
        "object": {"nested": [1, True]},
        "imported_at": 1704153600,
        "seven": 7,
    }
    assert bodies(emulator) == {"1": expected, "2": expected}


def test_skip_null_keeps_the_workspace_value(emulator: Emulator, files: Files) -> None:
    mappings = [{"from": "plan", "to": "plan", "skipNull": True}, {"from": "name", "to": "name"}]
    assert sync_run(emulator, files, [{"id": 1, "plan": "pro", "name": "Ada"}], mappings=mappings).code == 0
    run = sync_run(emulator, files, [{"id": 1, "plan": None, "name": None}], mappings=mappings)
    assert run.code == 0, run.stderr
    assert bodies(emulator)["1"] == {"name": None}
    assert emulator.people()["1"] == {"plan": "pro", "name": None}


def test_skip_null_false_is_the_json_default(emulator: Emulator, files: Files) -> None:
    mappings = [{"from": "plan", "to": "plan", "skipNull": False, "as": "integer"}]
    run = sync_run(emulator, files, [{"id": 1, "plan": None}], mappings=mappings)
    assert run.code == 0, run.stderr
    assert bodies(emulator) == {"1": {"plan": None}}


@pytest.mark.parametrize(
    ("cast", "value", "sent"),
    [
        ("integer", "42", 42),
        ("integer", "-42", -42),
        ("integer", "42.0", 42),
        ("integer", 7, 7),
        ("number", "3.5", 3.5),
        ("number", "42", 42),
        ("number", "-1e3", -1000.0),
        ("boolean", "true", True),
        ("boolean", "FALSE", False),
        ("boolean", "1", True),
        ("boolean", "0", False),
        ("boolean", 1, True),
        ("boolean", 0, False),
        ("string", 42, "42"),
        ("string", 2.5, "2.5"),
        ("string", True, "true"),
        ("string", "as is", "as is"),
        ("timestamp", "2024-01-02T03:04:05Z", 1704164645),
        ("timestamp", "2024-01-02T03:04:05+02:00", 1704157445),
        ("timestamp", "2024-01-02T03:04:05", 1704164645),
        ("timestamp", "2024-01-02", 1704153600),
        ("timestamp", "1969-12-31T23:59:59.5Z", -1),
        ("timestamp", "1950-06-15", -616896000),
        ("timestamp", 1704164645, 1704164645),
        ("timestamp", 1704164645.9, 1704164645),
        ("timestamp", "1704164645", 1704164645),
        ("timestamp", 1704164645123, 1704164645),
        ("timestamp", -0.5, -1),
    ],
)
def test_each_cast_end_to_end(emulator: Emulator, files: Files, cast: str, value: Any, sent: Any) -> None:
    run = sync_run(emulator, files, [{"id": 1, "v": value}], mappings=[{"from": "v", "to": "v", "as": cast}])
    assert run.code == 0, run.stderr
    (body,) = bodies(emulator).values()
    assert body == {"v": sent}
    assert type(body["v"]) is type(sent)


@pytest.mark.parametrize(
    ("cast", "value", "reason"),
    [
        ("integer", "4.2", 'mappings[1] ("v", as integer): the string "4.2" is not an integer'),
        ("integer", True, 'mappings[1] ("v", as integer): the boolean true is not an integer'),
        ("number", "3,5", 'mappings[1] ("v", as number): the string "3,5" is not a number'),
        ("boolean", "yes", 'mappings[1] ("v", as boolean): the string "yes" is not a boolean (true/false or 1/0)'),
        ("boolean", 2, 'mappings[1] ("v", as boolean): the number 2 is not a boolean'),
        ("string", {"a": 1}, 'mappings[1] ("v", as string): an object cannot be cast to a string'),
        ("timestamp", "31/01/2024", 'the string "31/01/2024" is not an ISO 8601 date or date-time, nor Unix seconds'),
        ("timestamp", "2024-02-30", 'mappings[1] ("v", as timestamp): the string "2024-02-30" is not a valid date'),
        ("timestamp", "2024-01-02T10:00:00+25:00", "has an invalid UTC offset"),
        ("timestamp", 1e300, "is out of range for a timestamp (years 1 to 9999)"),
    ],
)
def test_a_value_that_cannot_be_cast_makes_the_record_invalid(
    emulator: Emulator, files: Files, cast: str, value: Any, reason: str
) -> None:
    failed = files.root / "failed.json"
    mappings = [{"from": "name", "to": "name"}, {"from": "v", "to": "v", "as": cast}]
    records = [{"id": 1, "name": "Ada"}, {"id": 2, "name": "Bad", "v": value}, {"id": 3, "name": "Cy"}]
    run = sync_run(emulator, files, records, "--failed", str(failed), mappings=mappings)
    assert run.code == 1
    assert 'record 1 (id "2"): invalid: ' in run.stderr
    assert reason in run.stderr
    assert sorted(people_puts(emulator), key=str) == ["1", "3"]
    assert json.loads(failed.read_text()) == [records[1]]


def test_user_id_as_a_path(emulator: Emulator, files: Files) -> None:
    records = [
        {"user": {"id": "u1"}, "name": "Ada"},
        {"user": {"ids": ["u2"]}, "name": "Missing"},
        {"user": "flat", "name": "Not an object"},
        {"user": {"id": 5.5}, "name": "Float"},
        {"user": {"id": 7}, "name": "Int"},
    ]
    run = sync_run(emulator, files, records, userId=["user", "id"], mappings=[{"from": "name", "to": "name"}])
    assert run.code == 1
    assert emulator.people() == {"u1": {"name": "Ada"}, "7": {"name": "Int"}}
    assert 'record 1: invalid: nothing at ["user", "id"] for the person id' in run.stderr
    assert 'record 2: invalid: nothing at ["user", "id"] for the person id' in run.stderr
    assert 'record 3: invalid: ["user", "id"] must be a string or an integer, got the number 5.5' in run.stderr


@pytest.mark.parametrize("user_id", [["ids", 1], ["ids", 1.0]])
def test_user_id_path_into_an_array(emulator: Emulator, files: Files, user_id: list[Any]) -> None:
    records = [{"ids": ["first", "second"], "name": "Ada"}]
    run = sync_run(emulator, files, records, userId=user_id, mappings=[{"from": "name", "to": "name"}])
    assert run.code == 0, run.stderr
    assert emulator.people() == {"second": {"name": "Ada"}}


def test_dry_run_shows_the_converted_values_as_sent(emulator: Emulator, files: Files) -> None:
    run = sync_run(emulator, files, EXPORT, "--dry-run", userId=["user", "id"], mappings=EXPORT_MAPPINGS)
    assert run.code == 0, run.stderr
    assert emulator.requests() == []
    assert "would send: PUT " + emulator.url + "/api/v1/customers/u-1" in run.stderr
    line = next(x for x in run.stderr.splitlines() if x.strip().startswith('{"email":"ada@'))
    assert json.loads(line) == EXPORT_BODIES["u-1"]
    real = sync_run(emulator, files, EXPORT, userId=["user", "id"], mappings=EXPORT_MAPPINGS)
    assert real.code == 0
    (sent,) = [r for r in emulator.requests() if r.person_id == "u-1"]
    assert unstamped(sent.body) == json.loads(line)


@pytest.mark.parametrize(
    "change",
    [
        {"as": "string"},
        {"skipNull": True},
        {"from": ["nested", "v"]},
    ],
    ids=["cast", "skipNull", "path"],
)
def test_changing_a_mapping_resends_everyone(emulator: Emulator, files: Files, change: dict[str, Any]) -> None:
    state = str(files.root / "state.db")
    records = [{"id": i, "v": str(i)} for i in range(5)]
    mapping = {"from": "v", "to": "v", "as": "integer"}
    assert sync_run(emulator, files, records, "--state", state, mappings=[mapping]).code == 0
    again = sync_run(emulator, files, records, "--state", state, mappings=[mapping])
    assert "5 unchanged" in again.stderr
    before = len(people_puts(emulator))
    changed = sync_run(emulator, files, records, "--state", state, mappings=[{**mapping, **change}])
    assert changed.code == 0, changed.stderr
    assert len(people_puts(emulator)) - before == 5
    assert "made for another workspace or configuration" in changed.stderr


def test_changing_a_constant_resends_everyone(emulator: Emulator, files: Files) -> None:
    state = str(files.root / "state.db")
    records = [{"id": i} for i in range(3)]
    assert sync_run(emulator, files, records, "--state", state, mappings=[{"value": 1, "to": "v"}]).code == 0
    before = len(people_puts(emulator))
    run = sync_run(emulator, files, records, "--state", state, mappings=[{"value": 2, "to": "v"}])
    assert run.code == 0
    assert len(people_puts(emulator)) - before == 3
    assert all(p == {"v": 2} for p in emulator.people().values())

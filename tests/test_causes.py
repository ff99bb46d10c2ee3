"""Problems counted by cause: in the summary, the report and the JSON log, in bounded memory."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cio_sync.emulator import Emulator
from cio_sync.engine.causes import MAX_CAUSES, OTHER, Causes, IndexSet, cause_of
from cio_sync.input.schema import problems
from cio_sync.outcome import STOPPED_BEFORE_SENT, RecordOutcome, Status

from .conftest import Files, config_dict, run_cli

AGE = {"from": "age", "to": "age", "as": "integer"}


def run_args(emulator: Emulator, files: Files, data: object) -> list[str]:
    document = config_dict(emulator.url, mappings=[{"from": "name", "to": "name"}, AGE])
    return ["--config", files.config(document), "--data", files.data(data)]


def mixed() -> list[Any]:
    """160 bad ages (each value its own), 3 records with no id, 2 that are no object, 35 fine."""
    data: list[Any] = [{"id": i, "age": f"x{i}"} for i in range(160)]
    data += [{"age": 1}] * 3 + [[1], "text"] + [{"id": 1000 + i, "age": i} for i in range(35)]
    return data


def test_the_summary_groups_problems_by_cause(emulator: Emulator, files: Files) -> None:
    run = run_cli(run_args(emulator, files, mixed()))
    assert run.code == 1
    lines = run.stderr.splitlines()
    assert 'cio-sync: 160 records: mappings[1] ("age", as integer): not an integer, first at record 0' in lines
    assert 'cio-sync: 3 records: no "id" key for the person id, first at record 160' in lines
    assert "cio-sync: 1 record: not a JSON object (got an array), first at record 163" in lines
    # A few records as they were, no list of each one.
    assert run.stderr.count(": invalid: ") == 5
    assert (
        'cio-sync: record 0 (id "0"): invalid: mappings[1] ("age", as integer): the string "x0" is not an integer'
        in lines
    )
    assert "more" not in run.stderr
    assert lines[-1].startswith("cio-sync: 200 records: 35 synced, 0 failed, 165 invalid")


def test_a_few_problems_are_listed_without_counts(emulator: Emulator, files: Files) -> None:
    run = run_cli(run_args(emulator, files, [{"id": 1, "age": "x"}, {"id": 2, "age": 2}]))
    assert run.code == 1
    assert "first at record" not in run.stderr
    assert 'invalid: mappings[1] ("age", as integer): the string "x" is not an integer' in run.stderr


def test_the_report_counts_causes(emulator: Emulator, files: Files) -> None:
    emulator.add_fault(status=400, times=None, person="1001")
    report = files.root / "report.json"
    run = run_cli([*run_args(emulator, files, mixed()), "--report", str(report), "--retries", "0"])
    assert run.code == 1
    document = json.loads(report.read_text())
    assert problems("report.schema.json", document) == []
    causes = document["causes"]
    assert causes[0] == {
        "cause": 'mappings[1] ("age", as integer): not an integer',
        "outcome": "invalid",
        "count": 160,
        "first_index": 0,
        "first_reason": 'mappings[1] ("age", as integer): the string "x0" is not an integer',
    }
    assert [(c["outcome"], c["count"], c["first_index"]) for c in causes[1:]] == [
        ("invalid", 3, 160),
        ("invalid", 1, 163),
        ("invalid", 1, 164),
        ("failed", 1, 166),
    ]
    assert causes[-1]["cause"].startswith("HTTP 400: ")
    assert sum(c["count"] for c in causes) == len(document["problems"]) == 166


def test_a_dry_run_report_and_the_json_log_count_causes(emulator: Emulator, files: Files) -> None:
    report = files.root / "report.json"
    args = [*run_args(emulator, files, mixed()), "--report", str(report), "--log-format", "json"]
    for extra in ([], ["--dry-run"]):
        run = run_cli([*args, *extra])
        assert run.code == 1
        document = json.loads(report.read_text())
        assert problems("report.schema.json", document) == []
        assert [c["count"] for c in document["causes"]] == [160, 3, 1, 1]
        events = [json.loads(line) for line in run.stderr.splitlines()]
        (counted,) = [e for e in events if e["event"] == "causes"]
        assert counted["causes"] == document["causes"]
        assert events[-1]["event"] == "summary"


def test_causes_leave_out_what_is_particular_to_one_record() -> None:
    def cause(reason: str | None, status: Status = Status.FAILED) -> str:
        return cause_of(RecordOutcome(5, status, "p", reason))

    assert cause("HTTP 400: value for attribute 'bio' cannot be longer than 1000 bytes") == (
        "HTTP 400: value for attribute 'bio' cannot be longer than N bytes"
    )
    assert cause("HTTP 413: too large") != cause("HTTP 400: too large")
    assert cause('"id" must be a string or an integer, got the number 5.0 (a float id would name another person)') == (
        '"id" must be a string or an integer, got a number (a float id would name another person)'
    )
    unread = "the run stopped before it was read (with the 1,234 records after it)"
    assert cause(unread, Status.NOT_ATTEMPTED) == "the run stopped before it was read"
    # However a stop left a record unsent, the cause is one.
    assert cause(None, Status.NOT_ATTEMPTED) == cause(STOPPED_BEFORE_SENT, Status.NOT_ATTEMPTED) == STOPPED_BEFORE_SENT
    # A number standing alone is one record's; digits within a word or a name belong to the words.
    assert cause("line 12 is not valid JSON at byte offset 1,234; the row from line 7.") == (
        "line N is not valid JSON at byte offset N; the row from line N."
    )
    fixed = [
        "holds bytes that are not UTF-8 (save the export as UTF-8)",
        "holds the escape \\ud800: half of a UTF-16 surrogate pair",
        "HTTP 404: no such path: PUT /wrong/api/v1/customers",
    ]
    assert [cause(reason) for reason in fixed] == fixed
    # A value of one record, however it is written, is masked whole.
    too_small = [f"a mapped number is too small to send as JSON: {v} would arrive as 0" for v in ("1E-400", "2.5e-401")]
    assert {cause(reason) for reason in too_small} == {
        "a mapped number is too small to send as JSON: N would arrive as N"
    }
    assert (
        cause("HTTP 404: no such path: PUT /api/v1/customers/42") == "HTTP 404: no such path: PUT /api/v1/customers/N"
    )
    given = RecordOutcome(5, Status.INVALID, "p", 'the string "x" is not an integer', cause="not an integer")
    assert cause_of(given) == "not an integer"


def test_counting_holds_a_bounded_number_of_causes() -> None:
    causes = Causes()
    for i in range(10_000):
        causes.add(RecordOutcome(i, Status.FAILED, str(i), f"reason {i}", cause=f"cause {i}"))
    ranked = causes.ranked()
    assert len(ranked) == MAX_CAUSES + 1
    other = [c for c in ranked if c.cause == OTHER]
    assert [(c.count, c.first_index) for c in other] == [(10_000 - MAX_CAUSES, MAX_CAUSES)]
    assert ranked[0] == other[0]  # the most frequent first
    assert sum(c.count for c in ranked) == 10_000


def test_the_first_record_of_a_cause_is_the_first_in_the_file() -> None:
    causes = Causes()
    for index in (7, 3, 9):
        causes.add(RecordOutcome(index, Status.INVALID, None, f"r{index}", cause="same"))
    (counted,) = causes.ranked()
    assert (counted.count, counted.first_index, counted.first_reason) == (3, 3, "r3")


def test_an_index_set_is_a_bit_a_record() -> None:
    indexes = IndexSet()
    for index in (0, 9, 1_000_000):
        indexes.add(index)
    assert [i for i in (0, 1, 8, 9, 999_999, 1_000_000, 2_000_000, -1) if i in indexes] == [0, 9, 1_000_000]


@pytest.mark.parametrize(
    ("id_type", "ids", "expected"),
    [
        ("email", [f"user{i}" for i in range(30)], '"…" is not an email address (no "@"), and "idType" is "email"'),
        ("id", [f"u{i}@x.com" for i in range(30)], 'the v1 API would read the id "…" as an email address; use'),
    ],
)
def test_records_whose_ids_are_refused_alike_share_one_cause(
    emulator: Emulator, files: Files, id_type: str, ids: list[str], expected: str
) -> None:
    # The reason quotes each record's id; the cause quotes "…" in its place, so they count together.
    config = files.config(config_dict(emulator.url, idType=id_type))
    data = files.data([{"id": i, "name": "x"} for i in ids])
    report = files.root / "report.json"
    run = run_cli(["--config", config, "--data", data, "--dry-run", "--report", str(report)])
    assert run.code == 1
    (cause,) = json.loads(report.read_text())["causes"]
    assert cause["count"] == 30 and cause["cause"].startswith(expected)
    assert cause["first_reason"].startswith(expected.replace("…", ids[0]))

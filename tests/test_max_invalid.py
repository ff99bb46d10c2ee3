"""--max-invalid and maxInvalid: a run whose only problems are few enough invalid records exits 0,
and still reports them; anything else exits as before."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cio_sync.emulator import Emulator
from cio_sync.input.config import MaxInvalid, parse_max_invalid

from .conftest import Files, config_dict, run_cli

AGE = {"from": "age", "to": "age", "as": "integer"}


def people(count: int, invalid: int) -> list[dict[str, Any]]:
    """``count`` records, the first ``invalid`` of them with an age that is not an integer."""
    return [{"id": i, "age": "none" if i < invalid else i} for i in range(count)]


def sync(emulator: Emulator, files: Files, data: object, *extra: str, **config: Any) -> tuple[int, dict[str, Any]]:
    """A run of the command: its exit code and its report."""
    document = config_dict(emulator.url, mappings=[AGE], **config)
    report = files.root / "report.json"
    args = ["--config", files.config(document), "--data", files.data(data), "--report", str(report), *extra]
    run = run_cli(args)
    assert run.code in (0, 1), run.stderr
    parsed: dict[str, Any] = json.loads(report.read_text())
    assert parsed["exit_code"] == run.code
    return run.code, parsed


@pytest.mark.parametrize(("invalid", "code"), [(3, 0), (4, 1)])
def test_n_invalid_records_exit_0_and_one_more_exits_1(
    emulator: Emulator, files: Files, invalid: int, code: int
) -> None:
    failed = files.root / "failed.json"
    exit_code, report = sync(emulator, files, people(10, invalid), "--max-invalid", "3", "--failed", str(failed))
    assert exit_code == code
    assert report["counts"]["invalid"] == invalid
    assert report["counts"]["synced"] == 10 - invalid
    # Tolerated, the invalid records are still reported and written back to fix.
    assert [p["index"] for p in report["problems"]] == list(range(invalid))
    assert [r["id"] for r in json.loads(failed.read_text())] == list(range(invalid))


def test_a_tolerated_run_says_so(emulator: Emulator, files: Files) -> None:
    args = ["--config", files.config(config_dict(emulator.url, mappings=[AGE])), "--data", files.data(people(10, 2))]
    run = run_cli([*args, "--max-invalid", "20%"])
    assert run.code == 0
    lines = run.stderr.splitlines()
    assert "cio-sync: 2 invalid records, within --max-invalid 20%: the run succeeds (exit status 0)" in lines
    assert lines[-1].startswith("cio-sync: 10 records: 8 synced, 0 failed, 2 invalid")
    assert run_cli([*args, "--max-invalid", "20%", "--quiet"]).stderr == ""


@pytest.mark.parametrize(("invalid", "code"), [(1, 0), (2, 1)])
def test_a_share_at_its_boundary(emulator: Emulator, files: Files, invalid: int, code: int) -> None:
    # 2% of 50 records is exactly 1.
    assert sync(emulator, files, people(50, invalid), "--max-invalid", "2%")[0] == code


def test_a_share_is_of_the_records_read(emulator: Emulator, files: Files) -> None:
    # 2% of 49 records is 0.98: one invalid record is too many.
    assert sync(emulator, files, people(49, 1), "--max-invalid", "2%")[0] == 1


def test_the_configuration_key_and_the_option_that_wins(emulator: Emulator, files: Files) -> None:
    assert sync(emulator, files, people(10, 2), maxInvalid=2)[0] == 0
    assert sync(emulator, files, people(10, 2), maxInvalid="20%")[0] == 0
    assert sync(emulator, files, people(10, 2), "--max-invalid", "1", maxInvalid=5)[0] == 1
    assert sync(emulator, files, people(10, 2), "--max-invalid", "2", maxInvalid=0)[0] == 0


def test_records_held_back_behind_a_tolerated_invalid_record_are_tolerated(emulator: Emulator, files: Files) -> None:
    # Person 7's first record is invalid; their next two are held back behind it.
    data = [{"id": 7, "age": "x"}, {"id": 1, "age": 1}, {"id": 7, "age": 2}, {"id": 7, "age": 3}]
    code, report = sync(emulator, files, data, "--max-invalid", "1")
    assert code == 0
    assert report["counts"] == {"synced": 1, "unchanged": 0, "failed": 0, "invalid": 1, "not_attempted": 2}
    held = [c for c in report["causes"] if c["outcome"] == "not_attempted"]
    assert held == [
        {
            "cause": "held back: an earlier record of the same person was invalid",
            "outcome": "not_attempted",
            "count": 2,
            "first_index": 2,
            "first_reason": "held back: record 0 of the same person did not sync, and this one must not overtake it",
        }
    ]


def test_a_failed_record_is_never_tolerated(emulator: Emulator, files: Files) -> None:
    emulator.add_fault(status=400, times=None, person="5")
    code, report = sync(emulator, files, people(10, 1), "--max-invalid", "5", "--retries", "0")
    assert code == 1
    assert report["counts"]["failed"] == 1


def test_records_of_a_failed_write_are_not_tolerated(emulator: Emulator, files: Files) -> None:
    emulator.add_fault(status=400, times=None, person="5")
    data = [{"id": 5, "age": 1}, {"id": 5, "age": 2}, {"id": 6, "age": "x"}]
    code, report = sync(emulator, files, data, "--max-invalid", "100%", "--retries", "0")
    assert code == 1
    # Person 5's two records went in one write, and share its failure.
    assert (report["counts"]["failed"], report["counts"]["invalid"]) == (2, 1)


@pytest.mark.parametrize(("invalid", "code"), [(2, 0), (3, 1)])
def test_a_dry_run_exits_as_its_run_would(emulator: Emulator, files: Files, invalid: int, code: int) -> None:
    exit_code, report = sync(emulator, files, people(10, invalid), "--dry-run", "--max-invalid", "2")
    assert exit_code == code
    assert report["counts"]["invalid"] == invalid
    assert emulator.requests() == []


@pytest.mark.parametrize("value", ["-1", "101%", "two", "1.5", "%", "5 %"])
def test_a_bad_option_is_refused_before_anything_is_sent(emulator: Emulator, files: Files, value: str) -> None:
    args = ["--config", files.config(config_dict(emulator.url)), "--data", files.data(people(2, 0))]
    run = run_cli([*args, "--max-invalid", value])
    assert run.code == 2
    assert "--max-invalid" in run.stderr
    assert emulator.requests() == []


@pytest.mark.parametrize("value", [-1, "101%", "5", True, 1.5, "x%"])
def test_a_bad_configuration_key_is_refused(tmp_path: Path, emulator: Emulator, value: object) -> None:
    files = Files(tmp_path)
    args = ["--config", files.config(config_dict(emulator.url, maxInvalid=value)), "--data", files.data([])]
    run = run_cli(args)
    assert run.code == 2
    assert '"maxInvalid" must be a number of records' in run.stderr


def test_the_forms_and_their_exact_arithmetic() -> None:
    assert parse_max_invalid("0.5%") == parse_max_invalid(" 0.50% ")
    assert parse_max_invalid("0.5%").allows(1, 200) and not parse_max_invalid("0.5%").allows(2, 200)
    assert parse_max_invalid(3) == MaxInvalid(count=3) == parse_max_invalid("3")
    assert parse_max_invalid("100%").allows(7, 7)
    assert not parse_max_invalid("0%").allows(1, 10**9)
    assert str(parse_max_invalid("2.5%")) == "2.5%"

"""Reading the data file: structure checked up front, records streamed afterwards."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import pytest

from cio_sync import sync
from cio_sync.emulator import Emulator
from cio_sync.errors import DataFileChanged, DataFileError
from cio_sync.input.datafile import open_data_file
from cio_sync.outcome import StopReason

from .conftest import FAST, make_config


def test_counts_then_streams_the_records(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text('[{"id": 1, "v": 1.5}, "x", null, [1], {"id": 12345678901234567890}]')
    with open_data_file(str(path)) as data:
        assert data.count == 5
        records = list(data.records())
    assert records == [{"id": 1, "v": Decimal("1.5")}, "x", None, [1], {"id": 12345678901234567890}]


def test_records_can_be_read_twice(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text('[{"id": 1}]')
    with open_data_file(str(path)) as data:
        assert list(data.records()) == list(data.records()) == [{"id": 1}]


def test_a_byte_order_mark_and_whitespace_are_allowed(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_bytes(b'\xef\xbb\xbf \n [{"id": "\xc3\xbc"}] \n')
    with open_data_file(str(path)) as data:
        assert list(data.records()) == [{"id": "ü"}]


def test_stdin_is_spooled_so_it_can_be_read_twice() -> None:
    stdin = io.BytesIO(b'[{"id": 1}, {"id": 2}]')
    with open_data_file("-", stdin=stdin) as data:
        assert data.name == "<stdin>"
        assert data.count == 2
        assert [r["id"] for r in data.records() if isinstance(r, dict)] == [1, 2]


def test_an_empty_array_has_no_records(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text("[]")
    with open_data_file(str(path)) as data:
        assert data.count == 0
        assert list(data.records()) == []


def test_a_file_that_changes_between_the_passes_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text('[{"id": 1}, {"id": 2}]')
    with open_data_file(str(path)) as data:
        path.write_text('[{"id": 1}, {"id"')
        with pytest.raises(DataFileChanged, match="changed while being read") as caught:
            list(data.records())
    assert caught.value.exit_code == 1


def test_deeply_nested_records_are_refused_without_exhausting_memory(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text('[{"id": 1}, {"id": 2, "v": ' + "[" * 100_000 + "]" * 100_000 + "}]")
    with pytest.raises(DataFileError, match="record 1 is nested more than 500 levels deep"):
        open_data_file(str(path))


def test_nesting_up_to_the_limit_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "d.ndjson"
    path.write_text('{"id": 1, "v": ' + "[" * 499 + "]" * 499 + "}\n" + '{"id": 2}\n')
    with open_data_file(str(path)) as data:
        assert data.count == 2
        assert len(list(data.records())) == 2


@pytest.mark.parametrize(
    ("name", "text", "more"), [("d.ndjson", '{"id": 1}\n{"id": 2}\n', '{"id": 3}\n'), ("d.csv", "id\n1\n2\n", "3\n")]
)
def test_records_added_after_the_check_are_not_read_as_records(tmp_path: Path, name: str, text: str, more: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with open_data_file(str(path)) as data:
        with path.open("a") as f:
            f.write(more)
        records = data.records()
        assert len([next(records), next(records)]) == 2
        with pytest.raises(DataFileChanged, match=r"holds more than the 2 records its check counted"):
            next(records)
        assert list(records) == []


@pytest.mark.parametrize(
    ("name", "text", "cut"), [("d.ndjson", '{"id": 1}\n{"id": 2}\n', 10), ("d.csv", "id\n1\n2\n", 5)]
)
def test_a_file_cut_short_after_the_check_is_reported(tmp_path: Path, name: str, text: str, cut: int) -> None:
    path = tmp_path / name
    path.write_text(text)
    with open_data_file(str(path)) as data:
        with path.open("r+") as f:
            f.truncate(cut)
        records = data.records()
        assert len([next(records)]) == 1
        with pytest.raises(DataFileChanged, match=r"it now holds 1 of the 2 records its check counted"):
            next(records)
        assert list(records) == []


def test_a_run_reads_no_more_records_than_checked_and_says_the_file_grew(tmp_path: Path, emulator: Emulator) -> None:
    path = tmp_path / "d.ndjson"
    path.write_text("".join(f'{{"id": {i}, "name": "n{i}"}}\n' for i in range(5)))
    with open_data_file(str(path)) as data:
        with path.open("a") as f:
            f.write('{"id": 99, "name": "appended"}\n')
        result = sync(make_config(emulator.url), data.records(), http=FAST)
    assert result.stopped is StopReason.DATA_FILE_CHANGED
    assert result.error is not None and "holds more than the 5 records" in result.error
    # What was sent before the stop is counted; the appended record is never read as one.
    assert result.total == result.synced + result.not_attempted == 5
    assert "99" not in emulator.people()
    assert len(emulator.people()) == result.synced

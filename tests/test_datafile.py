"""Reading the data file: structure checked up front, records streamed afterwards."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import pytest

from cio_sync.datafile import open_data_file
from cio_sync.errors import DataFileChanged, DataFileError


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

"""Reading the data file: structure checked up front, records streamed afterwards."""

from __future__ import annotations

import io
import os
from decimal import Decimal
from pathlib import Path

import pytest

from cio_sync import sync
from cio_sync.emulator import Emulator
from cio_sync.errors import DataFileChanged, DataFileError
from cio_sync.input import datafile
from cio_sync.input.datafile import UnreadableRecord, open_data_file
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


@pytest.mark.parametrize(
    ("data", "records"),
    [
        (b"\xef\xbb\xbfid,name\n1,Ada\n", [{"id": "1", "name": "Ada"}]),
        # Only the mark at the very start is skipped: a U+FEFF after it is a cell's text.
        (b"\xef\xbb\xbf\xef\xbb\xbfid,name\n1,Ada\n", [{"\ufeffid": "1", "name": "Ada"}]),
        (b"\xef\xbb\xbf\xef\xbb\xbf\n\xef\xbb\xbf\n", [{"\ufeff": "\ufeff"}]),
        (b'"\xef\xbb\xbfid",name\n\xef\xbb\xbf1,Ada\n', [{"\ufeffid": "\ufeff1", "name": "Ada"}]),
    ],
)
def test_a_csv_byte_order_mark_is_skipped_and_u_feff_after_it_is_text(
    tmp_path: Path, data: bytes, records: list[dict[str, str]]
) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(data)
    with open_data_file(str(path)) as table:
        assert list(table.records()) == records


def test_a_csv_file_that_is_only_a_byte_order_mark_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(b"\xef\xbb\xbf")
    with pytest.raises(DataFileError, match=r"d\.csv: the data file is empty; a CSV file needs a header row"):
        open_data_file(str(path))


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


def test_a_deeply_nested_record_is_invalid_and_the_others_read(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text('[{"id": 1}, {"id": 2, "v": ' + "[" * 100_000 + "]" * 100_000 + '}, {"id": 3}]')
    with open_data_file(str(path)) as data:
        first, deep, last = data.records()
    assert (first, last) == ({"id": 1}, {"id": 3})
    assert isinstance(deep, UnreadableRecord)
    assert deep.reason() == "is nested more than 500 levels deep"


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
        # The block the records are in is no longer the one checked: none is read from it.
        with pytest.raises(DataFileChanged, match=r"its bytes differ from those its check read"):
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
        with pytest.raises(DataFileChanged, match=r"its bytes differ from those its check read"):
            next(records)
        assert list(records) == []


def test_records_are_read_up_to_the_block_that_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datafile, "_CHUNK", 64)
    path = tmp_path / "d.ndjson"
    text = "".join(f'{{"id": {i}, "v": "old"}}\n' for i in range(20))
    path.write_text(text)
    with open_data_file(str(path)) as data:
        with path.open("r+") as f:
            f.seek(64 * 3 + 5)  # in the fourth block
            f.write("X")
        records = data.records()
        # Each record whose line break comes before the changed block, and not one more.
        whole = text.count("\n", 0, 64 * 3)
        read = [next(records) for _ in range(whole)]
        with pytest.raises(DataFileChanged, match="changed while being read"):
            next(records)
    assert read == [{"id": i, "v": "old"} for i in range(whole)]


def test_a_change_the_size_and_time_do_not_show_is_found(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text('[{"id": 1, "v": "old"}, {"id": 2, "v": "old"}]')
    before = os.stat(path)
    with open_data_file(str(path)) as data:
        path.write_text('[{"id": 1, "v": "new"}, {"id": 2, "v": "new"}]')
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        with pytest.raises(DataFileChanged, match="its bytes differ from those its check read"):
            next(data.records())


def test_a_file_that_grew_at_its_end_is_reported_once_its_records_are_read(tmp_path: Path) -> None:
    path = tmp_path / "d.ndjson"
    path.write_text('{"id": 1}\n{"id": 2}\n')
    with open_data_file(str(path)) as data:
        records = data.records()
        assert next(records) == {"id": 1}
        with path.open("a") as f:
            f.write('{"id": 3}\n')
        assert next(records) == {"id": 2}  # from the block as checked, read before the change
        with pytest.raises(DataFileChanged, match="its bytes differ from those its check read"):
            next(records)


def test_a_run_reads_nothing_from_a_block_that_grew_and_says_the_file_changed(
    tmp_path: Path, emulator: Emulator
) -> None:
    path = tmp_path / "d.ndjson"
    path.write_text("".join(f'{{"id": {i}, "name": "n{i}"}}\n' for i in range(5)))
    with open_data_file(str(path)) as data:
        with path.open("a") as f:
            f.write('{"id": 99, "name": "appended"}\n')
        result = sync(make_config(emulator.url), data.records(), http=FAST)
    assert result.stopped is StopReason.DATA_FILE_CHANGED
    assert result.error is not None and "changed while being read" in result.error
    # The records share their block with the appended one: none is read from bytes since changed.
    assert result.total == 0
    assert emulator.people() == {}

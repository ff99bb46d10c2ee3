"""The CSV reader and writer on their own: what is written reads back as the same records."""

from __future__ import annotations

import io

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from cio_sync.errors import DataFileError
from cio_sync.input import csvfile
from cio_sync.input.csvfile import CsvRecords, CsvRow, CsvWriter, RaggedRow

text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)


def write(header: list[str], records: list[object]) -> bytes:
    out = io.StringIO(newline="")
    writer = CsvWriter(out, header)
    for record in records:
        writer.write(record)
    return out.getvalue().encode("utf-8")


def read(data: bytes) -> tuple[tuple[str, ...], int, list[object]]:
    table = CsvRecords(io.BytesIO(data), "test.csv")
    count = table.check()
    return table.header, count, list(table.rows())


@given(
    st.lists(text, min_size=1, max_size=5, unique=True).flatmap(
        lambda h: st.tuples(st.just(h), st.lists(st.lists(text, min_size=len(h), max_size=len(h)), max_size=6))
    )
)
# A first column name that is, or begins with, U+FEFF: written bare, its bytes were a byte order mark.
@example(table=(["\ufeff"], []))
@example(table=(["\ufeffid", "name"], [["\ufeff1", "\ufeff"]]))
@example(table=(["\ufeff\ufeff", "a,b"], [["x", "y"]]))
def test_rows_written_read_back_as_the_same_records(table: tuple[list[str], list[list[str]]]) -> None:
    header, rows = table
    records: list[object] = [CsvRow(zip(header, [c or None for c in row], strict=True)) for row in rows]
    read_header, count, read_records = read(write(header, records))
    assert read_header == tuple(header)
    assert read_records == records
    assert count == len(records)


@given(st.lists(text, min_size=2, max_size=4, unique=True), st.lists(text, min_size=1, max_size=6))
def test_ragged_rows_are_written_back_ragged(header: list[str], cells: list[str]) -> None:
    assume(len(cells) != len(header))
    (record,) = read(write(header, [RaggedRow(2, tuple(cells), len(header))]))[2]
    assert isinstance(record, RaggedRow)
    assert (record.cells, record.expected) == (tuple(cells), len(header))


@pytest.mark.parametrize(
    ("data", "header"),
    [
        # A byte order mark at the very start is the encoding's mark, not part of the header.
        (b"\xef\xbb\xbfid,name\r\n", ("id", "name")),
        # Only the first: U+FEFF after it is the column name's text, as anywhere else in a cell.
        (b"\xef\xbb\xbf\xef\xbb\xbfid,name\r\n", ("\ufeffid", "name")),
        (b"\xef\xbb\xbf\xef\xbb\xbf\r\n", ("\ufeff",)),
        (b'"\xef\xbb\xbfid",name\r\n', ("\ufeffid", "name")),
        (b"id,\xef\xbb\xbfname\r\n", ("id", "\ufeffname")),
    ],
)
def test_a_byte_order_mark_is_skipped_and_u_feff_after_it_is_text(data: bytes, header: tuple[str, ...]) -> None:
    assert read(data)[0] == header


def test_a_file_that_is_only_a_byte_order_mark_is_empty() -> None:
    with pytest.raises(DataFileError, match="the data file is empty; a CSV file needs a header row"):
        read(b"\xef\xbb\xbf")


def test_a_first_column_name_beginning_with_u_feff_is_written_quoted() -> None:
    # Bare, the file would begin with the bytes of a byte order mark, which a reader drops.
    record = CsvRow({"\ufeffid": "1", "name": None})
    assert write(["\ufeffid", "name"], [record]) == b'"\xef\xbb\xbfid","name"\r\n1,\r\n'
    assert write(["id", "\ufeffname"], []) == b"id,\xef\xbb\xbfname\r\n"


def test_a_long_cell_in_an_unmapped_column_does_not_refuse_the_file() -> None:
    data = b"id,notes\r\n1," + b"x" * 500_000 + b"\r\n2,short\r\n"
    _, count, records = read(data)
    assert count == 2
    assert records[1] == {"id": "2", "notes": "short"}


class CountingReads(io.BytesIO):
    """A file that counts the reads made of it."""

    reads = 0

    def read(self, size: int | None = -1, /) -> bytes:
        self.reads += 1
        return super().read(size)


def test_a_run_of_cr_line_ends_is_read_in_chunks_not_a_byte_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # Blank lines ended by CR alone: a chunk that ends in CR looks one byte further for the LF of
    # a CRLF. A whole run of them must not be read (and the chunk copied) one byte at a time,
    # which made a 400 KB file of them take seconds and a few MB of them minutes.
    monkeypatch.setattr(csvfile, "_CHUNK", 64)
    data = b"id\r" + b"\r" * 64_000 + b"1\r\n2\r"
    stream = CountingReads(data)
    table = CsvRecords(stream, "test.csv")
    assert table.check() == 2
    assert stream.reads <= 2 * len(data) // 64 + 4
    assert list(table.rows()) == [{"id": "1"}, {"id": "2"}]


@pytest.mark.parametrize("cell", [10, 20_000])
def test_the_check_and_the_records_cut_runs_of_long_rows_short(cell: int) -> None:
    # 1,024 rows at most, and fewer where they are long (64 KB of them): in the check's runs, as
    # in the records pass's, so that neither holds a thousand rows of 20 KB.
    data = ("id,note\n" + "".join(f"{n},{'x' * cell}\n" for n in range(3000))).encode()
    table = CsvRecords(io.BytesIO(data), "d.csv")
    noted: list[int] = []
    assert table.check(lambda run: noted.append(len(run))) == 3000
    read = [len(run) for run in table.rows(io.BytesIO(data)).runs()]
    assert sum(noted) == sum(read) == 3000
    most = 1024 if cell == 10 else 65_536 // (cell + 6) + 1
    assert max(noted) == max(read) == most

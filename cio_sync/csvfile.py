"""CSV data files: RFC 4180 with a header row, read as records of text, and written back alike."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO

from .errors import DataFileError

_ENCODING = "utf-8-sig"  # UTF-8, with or without a byte order mark
# The csv module refuses cells over 128 KiB by default, which would refuse a whole export for one
# long note in a column nobody maps. A row is held whole while read, so keep a bound all the same.
MAX_CELL = 16 * 1024 * 1024


class CsvRow(dict[str, "str | None"]):
    """One CSV row as a record: each header name to its cell's text, or None for an empty cell.

    A mapping leaves an empty cell out of the body unless it says ``"skipNull": false``.
    """

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class RaggedRow:
    """A CSV row with more or fewer cells than the header: an invalid record, kept as read."""

    line: int
    cells: tuple[str, ...]
    expected: int

    def reason(self) -> str:
        """Why the row cannot be used, with its line number."""
        count = len(self.cells)
        cells = "1 cell" if count == 1 else f"{count} cells"
        return f"the row on line {self.line} has {cells}; the header has {self.expected}"


class CsvRecords:
    """The header and rows of a CSV file read from ``stream`` (binary, at its start).

    ``check`` reads the whole file once to refuse a broken one before anything is sent;
    ``rows`` then streams its records. Raises :class:`DataFileError` (from ``check``) or
    ``ValueError`` (from ``rows``: the file changed in between).
    """

    def __init__(self, stream: IO[bytes], name: str) -> None:
        # A process-wide setting: only ever raised, never lowered below what someone else set.
        csv.field_size_limit(max(csv.field_size_limit(), MAX_CELL))
        self._stream = stream
        self._name = name
        self.header: tuple[str, ...] = ()

    def check(self) -> int:
        """Read the header and count the rows; raise :class:`DataFileError` if the file is broken."""
        count = 0
        line = 0
        try:
            with _text(self._stream) as text:
                reader = csv.reader(text, strict=True)
                header = _first_row(reader)
                if header is None:
                    raise DataFileError(f"{self._name}: the data file is empty; a CSV file needs a header row")
                self.header = _header(header, self._name)
                line = reader.line_num
                for row in reader:
                    line = reader.line_num
                    if row:
                        count += 1
        except csv.Error as e:
            raise DataFileError(f"{self._name}: not valid CSV in the row from line {line + 1}: {e}") from None
        except UnicodeDecodeError:
            # Text is decoded ahead of the rows read, so the row reached says nothing: look again.
            where = _undecodable_line(self._stream)
            raise DataFileError(
                f"{self._name}: not UTF-8 text: line {where} holds bytes that are not UTF-8 (save the export as UTF-8)"
            ) from None
        except OSError as e:
            raise DataFileError(f"{self._name}: cannot read the data file: {e.strerror}") from None
        return count

    def rows(self) -> Iterator[CsvRow | RaggedRow]:
        """Each row after the header, in file order; blank lines are skipped."""
        self._stream.seek(0)
        width = len(self.header)
        with _text(self._stream) as text:
            reader = csv.reader(text, strict=True)
            if _first_row(reader) is None:
                raise ValueError("the header row is gone")
            line = reader.line_num
            for row in reader:
                start, line = line + 1, reader.line_num
                if not row:
                    continue
                if len(row) != width:
                    yield RaggedRow(start, tuple(row), width)
                else:
                    yield CsvRow(zip(self.header, [cell or None for cell in row], strict=True))


def _undecodable_line(stream: IO[bytes]) -> int:
    """The number of the first line of ``stream`` that is not UTF-8 (lines end with LF)."""
    stream.seek(0)
    line = 1
    pending = b""
    while True:
        chunk = stream.read(1 << 16)
        data = pending + chunk
        try:
            # Leaves a character cut at the end of the chunk undecoded, for the next round.
            _, used = codecs.utf_8_decode(data, "strict", not chunk)
        except UnicodeDecodeError as e:
            return line + data.count(b"\n", 0, e.start)
        line += data.count(b"\n", 0, used)
        pending = data[used:]
        if not chunk:
            return line


def _first_row(reader: Iterator[list[str]]) -> list[str] | None:
    """The first row that is not a blank line (the header), or None at the end of the file."""
    return next((row for row in reader if row), None)


class _text:  # noqa: N801 - used as a context manager, like open()
    """A text view of a binary stream that leaves the stream open when done."""

    def __init__(self, stream: IO[bytes]) -> None:
        # newline="" hands line endings to the csv module, so a quoted "\r\n" stays in its cell.
        self.wrapper = io.TextIOWrapper(stream, encoding=_ENCODING, newline="")

    def __enter__(self) -> io.TextIOWrapper:
        return self.wrapper

    def __exit__(self, *exc: object) -> None:
        self.wrapper.detach()


def _header(names: list[str], name: str) -> tuple[str, ...]:
    seen: set[str] = set()
    for column in names:
        if column in seen:
            raise DataFileError(f'{name}: the header row names the column "{column}" twice')
        seen.add(column)
    return tuple(names)


class CsvWriter:
    """Writes records back as CSV with ``header``: what a CSV data file read becomes again.

    Empty cells (None) are written empty, and ragged rows exactly as they were read, so the
    file reads back to the same records.
    """

    def __init__(self, stream: IO[str], header: Sequence[str]) -> None:
        # RFC 4180 ends lines with CRLF; cells with commas, quotes or line breaks are quoted.
        self._writer = csv.writer(stream, lineterminator="\r\n")
        self._writer.writerow(header)

    def write(self, record: object) -> None:
        """Write one record read from a CSV file."""
        if isinstance(record, RaggedRow):
            self._writer.writerow(record.cells)
        elif isinstance(record, dict):
            self._writer.writerow(["" if cell is None else str(cell) for cell in record.values()])
        else:
            raise TypeError(f"not a CSV record: {type(record).__name__}")

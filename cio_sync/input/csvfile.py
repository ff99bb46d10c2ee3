"""CSV data files: RFC 4180 with a header row, read as records of text, and written back alike."""

from __future__ import annotations

import codecs
import csv
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any, Protocol

from ..errors import DataFileError
from . import runs
from .runs import RECORDS_A_RUN, in_runs

_BOM = b"\xef\xbb\xbf"  # UTF-8 with or without a byte order mark, which is not part of the header
_CHUNK = 1 << 16
_LINE_ENDS = (b"\n", b"\r")
# The csv module refuses cells over 128 KiB by default, which would refuse a whole export for one
# long note in a column nobody maps. A row is held whole while read, so keep a bound all the same.
MAX_CELL = 16 * 1024 * 1024
# A line is gathered whole before the csv module sees it: without a bound, a file with no line
# break would be held whole, and a few times over. Room for the longest cell and more besides.
MAX_LINE = 2 * MAX_CELL


class Readable(Protocol):
    """What a CSV file is read from: a binary stream that can tell and change its position."""

    def read(self, size: int = -1, /) -> bytes: ...

    def tell(self) -> int: ...

    def seek(self, offset: int, /) -> int: ...


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


@dataclass(frozen=True, slots=True)
class UnreadableRow:
    """A CSV row holding bytes that are not UTF-8: an invalid record, its bounds known all the same.

    Its cells hold each such byte as a lone surrogate (U+DC80 to U+DCFF), which a
    :class:`CsvWriter` writes back as the byte it was: a rerun finds the row as it was.
    """

    line: int
    cells: tuple[str, ...]
    # The row by the header's columns when it has one cell per column (else None): its id cell may
    # still name a person.
    value: CsvRow | None = None

    def reason(self) -> str:
        """Why the row cannot be used, with its line number."""
        return f"the row on line {self.line} holds bytes that are not UTF-8 (save the export as UTF-8)"


def _as_row(header: tuple[str, ...], cells: list[str]) -> CsvRow:
    """``cells`` by the ``header``'s columns, an empty cell as None."""
    return CsvRow(zip(header, [cell or None for cell in cells], strict=True))


class CsvRecords:
    """The header and rows of a CSV file read from ``stream`` (binary, at its start).

    ``check`` reads the whole file once to refuse a broken one before anything is sent;
    ``rows`` then streams its records. Raises :class:`DataFileError` (from ``check``) or
    ``ValueError`` (from ``rows``: the file changed in between).
    """

    def __init__(self, stream: Readable, name: str) -> None:
        # A process-wide setting: only ever raised, never lowered below what someone else set.
        csv.field_size_limit(max(csv.field_size_limit(), MAX_CELL))
        self._stream = stream
        self._name = name
        self.header: tuple[str, ...] = ()
        # Where the line after the header row begins (found by ``check``).
        self.body_start = 0

    def check(self, note: Callable[[Sequence[object]], None] | None = None) -> int:
        """Read the header and count the rows; raise :class:`DataFileError` if the file is broken.
        ``note`` is shown the rows of the header's width as :class:`CsvRow`, a run of them at a time."""
        count = 0
        line = 0
        run: list[object] = []
        try:
            lines = _Lines(self._stream)
            reader = csv.reader(lines, strict=True)
            self.header = _read_header(lines, reader, self._name, lambda: _undecodable_line(self._stream))
            self.body_start = lines.end
            line = reader.line_num
            width = len(self.header)
            begun = lines.end
            for row in reader:
                line = reader.line_num
                if row:
                    count += 1
                    # As the records pass reads it: a row with bytes that are not UTF-8 names the
                    # person of its id cell (when that cell is whole), as any row of the header's width.
                    if note is not None and len(row) == width:
                        run.append(_as_row(self.header, row))
                    # A run as the records pass cuts one: so many rows, or fewer long ones.
                    if run and (len(run) == RECORDS_A_RUN or lines.end - begun >= runs.RUN_CHARACTERS):
                        assert note is not None
                        note(run)
                        run, begun = [], lines.end
            if note is not None and run:
                note(run)
        except csv.Error as e:
            raise DataFileError(f"{self._name}: not valid CSV in the row from line {line + 1}: {e}") from None
        except OSError as e:
            raise DataFileError(f"{self._name}: cannot read the data file: {e.strerror}") from None
        return count

    def rows(self, stream: Readable | None = None) -> CsvRows:
        """Each row after the header, in file order; blank lines are skipped. Read from
        ``stream`` (the same file, read anew) when given."""
        return CsvRows(stream if stream is not None else self._stream, self.header, self.body_start)


class CsvRows(Iterator[CsvRow | RaggedRow | UnreadableRow]):
    """The rows of a CSV file after its header, read from the start of ``stream`` when first
    asked for, and where the rows not yet handed out begin.

    ``end`` is the byte offset just past the last row handed out (``body_start`` before the
    first): a stopped run's unread rows are the bytes from there to the end of the file, copied
    without being parsed. It is exact because the csv module is fed one line at a time and asks
    for the next line only while a row is unfinished. None once reading has ended, or failed
    (the file changed): then no place can be vouched for.
    """

    def __init__(self, stream: Readable, header: tuple[str, ...], body_start: int) -> None:
        self.end: int | None = body_start
        self._rows = self._read(stream, header)

    def __iter__(self) -> CsvRows:
        return self

    def __next__(self) -> CsvRow | RaggedRow | UnreadableRow:
        return next(self._rows)

    def runs(self) -> Iterator[list[CsvRow | RaggedRow | UnreadableRow]]:
        """The rows a run at a time: :data:`RECORDS_A_RUN` of them, fewer where they are long
        (a run ends with the row that ends :data:`RUN_CHARACTERS` bytes past its start). Where
        reading raises, the rows read before come first, as a run of their own; the error follows."""
        return in_runs(self, RECORDS_A_RUN, first=RECORDS_A_RUN, at=lambda: self.end or 0)

    def _read(self, stream: Readable, header: tuple[str, ...]) -> Iterator[CsvRow | RaggedRow | UnreadableRow]:
        try:
            stream.seek(0)
            lines = _Lines(stream)
            reader = csv.reader(lines, strict=True)
            if _first_row(reader) is None:
                raise ValueError("the header row is gone")
            for record in _records(lines, reader, header):
                # Paused just after its row: the lines read so far end where the next row begins.
                self.end = lines.end
                yield record
        finally:
            self.end = None


def sample_rows(stream: Readable, name: str) -> tuple[tuple[str, ...], Iterator[CsvRow | RaggedRow | UnreadableRow]]:
    """The header and rows of the CSV file ``stream`` (at its start; it need not seek), read as a
    sync reads them but without its check, which reads the whole file first: for a sample of a
    file's first records, which must read them as the sync it proposes for will. Raises
    :class:`DataFileError` for a header a sync refuses; reading the rows raises ``csv.Error``
    where the file is not CSV, as a sync's check refuses it."""
    csv.field_size_limit(max(csv.field_size_limit(), MAX_CELL))
    lines = _Lines(stream)
    reader = csv.reader(lines, strict=True)
    try:
        header = _read_header(lines, reader, name, lambda: reader.line_num)
    except csv.Error as e:
        raise DataFileError(f"{name}: not valid CSV in the header row: {e}") from None
    except OSError as e:
        raise DataFileError(f"{name}: cannot read the data file: {e.strerror}") from None
    return header, _refused_at(_records(lines, reader, header), reader, name)


def _refused_at(
    rows: Iterator[CsvRow | RaggedRow | UnreadableRow], reader: Any, name: str
) -> Iterator[CsvRow | RaggedRow | UnreadableRow]:
    """``rows``, where the file stops being CSV refused as the check refuses it, naming the line."""
    line = reader.line_num
    try:
        for row in rows:
            yield row
            line = reader.line_num
    except csv.Error as e:
        raise DataFileError(f"{name}: not valid CSV in the row from line {line + 1}: {e}") from None


def _read_header(lines: _Lines, reader: Iterator[list[str]], name: str, line: Callable[[], int]) -> tuple[str, ...]:
    """The header row, refused when it is missing, not UTF-8 (on the ``line`` given), or names a
    column twice."""
    header = _first_row(reader)
    if header is None:
        raise DataFileError(f"{name}: the data file is empty; a CSV file needs a header row")
    if lines.undecodable:
        # Column names are matched against the configuration and shown: they must be text.
        raise DataFileError(
            f"{name}: not UTF-8 text: the header row on line {line()} holds bytes that are not UTF-8 "
            "(save the export as UTF-8)"
        )
    return _header(header, name)


def _records(lines: _Lines, reader: Any, header: tuple[str, ...]) -> Iterator[CsvRow | RaggedRow | UnreadableRow]:
    """The rows after the header: records, or invalid rows kept as read (``reader`` is a
    ``csv.reader`` of ``lines``, whose type is not importable)."""
    width = len(header)
    line = reader.line_num
    undecodable = lines.undecodable
    for row in reader:
        start, line = line + 1, reader.line_num
        if not row:
            continue
        if lines.undecodable != undecodable:
            undecodable = lines.undecodable
            yield UnreadableRow(start, tuple(row), _as_row(header, row) if len(row) == width else None)
        elif len(row) != width:
            yield RaggedRow(start, tuple(row), width)
        else:
            yield _as_row(header, row)


class _Lines:
    """The lines of a binary stream, from where it stands, as text for the csv module.

    Split where a text file opened with ``newline=""`` splits them (LF, CR or CRLF, each kept, so
    that a quoted line break stays in its cell), after a byte order mark at the start. ``end`` is
    the byte offset just past the last line handed out: the csv module pulls lines only as it
    needs them, so after it returns a row, ``end`` is exactly where the next row begins (a text
    wrapper reads ahead and cannot tell this).
    """

    def __init__(self, stream: Readable) -> None:
        self._stream = stream
        self.end = stream.tell()
        # How many lines handed out held bytes that are not UTF-8.
        self.undecodable = 0
        # Read ahead and not yet handed out: what was read to look for a byte order mark (when it
        # was something else), or for the LF after a chunk's last CR (when it was not one).
        self._head = b""
        if self.end == 0:
            head = stream.read(len(_BOM))
            if head == _BOM:
                self.end = len(_BOM)
            else:
                self._head = head

    def __iter__(self) -> Iterator[str]:
        pending: list[bytes] = []  # a line begun in earlier chunks, not ended yet
        held = 0  # its length so far
        while chunk := self._chunk():
            if b"\n" not in chunk and b"\r" not in chunk:
                pending.append(chunk)  # joined once the line ends: no quadratic rejoining
                held += len(chunk)
                if held > MAX_LINE:
                    raise csv.Error(f"a line is longer than {MAX_LINE:,} bytes, the most cio-sync reads")
                continue
            lines = chunk.splitlines(keepends=True)
            if pending:
                pending.append(lines[0])
                lines[0] = b"".join(pending)
                pending = []
            if not lines[-1].endswith(_LINE_ENDS):
                pending.append(lines.pop())
            held = len(pending[0]) if pending else 0
            for raw in lines:
                self.end += len(raw)
                yield self._decode(raw)
        if pending:
            raw = b"".join(pending)
            self.end += len(raw)
            yield self._decode(raw)

    def _decode(self, raw: bytes) -> str:
        # A line ends at an ASCII byte, never inside a UTF-8 sequence: each decodes alone.
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            # Its row is invalid, not the file: the bytes are kept, as lone surrogates.
            self.undecodable += 1
            return raw.decode("utf-8", "surrogateescape")

    def _chunk(self) -> bytes:
        """The next piece of the stream, never ending between the CR and LF of a CRLF."""
        chunk = self._head + self._stream.read(_CHUNK)
        self._head = b""
        if chunk.endswith(b"\r"):
            # One byte tells: an LF joins the chunk, anything else starts the next one (a run of
            # CRs is then still read a chunk at a time, not a byte at a time).
            more = self._stream.read(1)
            if more == b"\n":
                chunk += more
            else:
                self._head = more
        return chunk


def _undecodable_line(stream: Readable) -> int:
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


def _header(names: list[str], name: str) -> tuple[str, ...]:
    seen: set[str] = set()
    for column in names:
        if column in seen and not column:
            # As spreadsheets export trailing empty columns: say which, and what to do.
            unnamed = [str(i + 1) for i, n in enumerate(names) if not n]
            shown = ", ".join(unnamed[:5]) + (f" and {len(unnamed) - 5:,} more" if len(unnamed) > 5 else "")
            raise DataFileError(
                f"{name}: the header row has more than one column without a name (at columns {shown}): "
                "name them, or remove the empty columns; a record's cells are told apart by their column's name"
            )
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
        # A row read with bytes that are not UTF-8 holds them as lone surrogates: they are
        # written back as those bytes, and nothing else can hold a lone surrogate.
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="surrogateescape")
        # RFC 4180 ends lines with CRLF; cells with commas, quotes or line breaks are quoted.
        self._writer = csv.writer(stream, lineterminator="\r\n")
        if header and header[0].startswith("\ufeff"):
            # Written bare, a first column name that begins with U+FEFF would begin the file with
            # the bytes of a byte order mark, which every reader drops. Quoted, it is the name's
            # text to every reader, with a byte order mark or without.
            csv.writer(stream, lineterminator="\r\n", quoting=csv.QUOTE_ALL).writerow(header)
        else:
            self._writer.writerow(header)

    def write(self, record: object) -> None:
        """Write one record read from a CSV file."""
        if isinstance(record, (RaggedRow, UnreadableRow)):
            self._writer.writerow(record.cells)
        elif isinstance(record, dict):
            self._writer.writerow(["" if cell is None else str(cell) for cell in record.values()])
        else:
            raise TypeError(f"not a CSV record: {type(record).__name__}")

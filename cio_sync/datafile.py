"""Reading the data file (a JSON array, NDJSON or CSV) record by record, checked whole before use."""

from __future__ import annotations

import csv
import shutil
import sys
import tempfile
from collections.abc import Iterator
from types import TracebackType
from typing import IO

import ijson

from .csvfile import CsvRecords
from .errors import DataFileChanged, DataFileError

JSON = "json"
NDJSON = "ndjson"
CSV = "csv"
NDJSON_SUFFIXES = (".ndjson", ".jsonl")
CSV_SUFFIXES = (".csv",)
_BOM = b"\xef\xbb\xbf"
# Records nested deeper than this are refused with the file: no real data comes close.
MAX_DEPTH = 500
_OPENS = frozenset({"start_map", "start_array"})
_CLOSES = frozenset({"end_map", "end_array"})
_CHUNK = 1 << 16


class DataFile:
    """An open data file whose structure has been checked, ready to stream its records.

    The whole file is parsed once up front (without keeping it in memory) so that a file that is
    not JSON, not an array, or truncated is refused before a single request is sent. Reading the
    records then parses it a second time, one record at a time. Standard input is spooled to a
    temporary file first, because it can be read only once.
    """

    def __init__(
        self,
        name: str,
        stream: IO[bytes],
        start: int,
        count: int,
        format: str = JSON,  # noqa: A002
        table: CsvRecords | None = None,
    ) -> None:
        self.name = name
        self.count = count
        self.format = format
        self._stream = stream
        self._start = start
        self._table = table

    @property
    def header(self) -> tuple[str, ...] | None:
        """A CSV file's column names (None for JSON and NDJSON)."""
        return self._table.header if self._table is not None else None

    def records(self) -> Iterator[object]:
        """Each record in file order: parsed JSON (non-integers as ``Decimal``), or for CSV a
        :class:`~cio_sync.csvfile.CsvRow` of text (None for an empty cell) or a ragged row."""
        if self.count == 0:
            return
        self._stream.seek(self._start)
        try:
            if self._table is not None:
                yield from self._table.rows()
            else:
                yield from _elements(self._stream, self.format)
        except (ijson.JSONError, csv.Error, ValueError, OSError) as e:
            raise DataFileChanged(
                f"{self.name}: changed while being read ({_first_line(e)}); records up to there were processed"
            ) from None

    def close(self) -> None:
        """Close the file (and remove the spooled copy of standard input)."""
        self._stream.close()

    def __enter__(self) -> DataFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def data_format(path: str, format: str | None = None) -> str:  # noqa: A002
    """The format to read ``path`` in: ``format`` when given, else by suffix (JSON by default)."""
    if format is not None:
        return format
    lowered = path.lower()
    if lowered.endswith(CSV_SUFFIXES):
        return CSV
    return NDJSON if lowered.endswith(NDJSON_SUFFIXES) else JSON


def open_data_file(path: str, format: str | None = None, stdin: IO[bytes] | None = None) -> DataFile:  # noqa: A002
    """Open and check the data file at ``path``; ``-`` reads standard input (or ``stdin``).

    ``format`` is ``json`` (one array of objects), ``ndjson`` (one object per line) or ``csv``
    (RFC 4180 with a header row); by default it follows the suffix: ``.ndjson`` and ``.jsonl``
    are NDJSON, ``.csv`` is CSV. Raises :class:`DataFileError` when the file cannot be read, is
    not JSON (or CSV), is not an array (for ``json``), or is truncated.
    """
    kind = data_format(path, format)
    if path == "-":
        name = "<stdin>"
        stream: IO[bytes] = _spool(stdin if stdin is not None else sys.stdin.buffer)
    else:
        name = path
        try:
            stream = open(path, "rb")  # noqa: SIM115 - DataFile owns and closes it
        except FileNotFoundError:
            raise DataFileError(f"{name}: no such data file") from None
        except IsADirectoryError:
            raise DataFileError(f"{name}: is a directory, not a data file") from None
        except OSError as e:
            raise DataFileError(f"{name}: cannot read the data file: {e.strerror}") from None
    if kind == CSV:
        table = CsvRecords(stream, name)
        try:
            count = table.check()
        except BaseException:
            stream.close()
            raise
        return DataFile(name, stream, 0, count, kind, table)
    try:
        start = _array_start(stream, name) if kind == JSON else _skip_bom(stream)
        # NDJSON with no lines at all is an empty data set, not a broken file.
        count = 0 if kind == NDJSON and _blank(stream, start) else _count_elements(stream, name, start, kind)
    except BaseException:
        stream.close()
        raise
    return DataFile(name, stream, start, count, kind)


def _spool(source: IO[bytes]) -> IO[bytes]:
    spooled = tempfile.TemporaryFile(prefix="cio-sync-stdin-")  # noqa: SIM115 - DataFile closes it
    try:
        shutil.copyfileobj(source, spooled, _CHUNK)
        spooled.seek(0)
    except OSError as e:
        spooled.close()
        raise DataFileError(f"<stdin>: cannot read standard input: {e.strerror}") from None
    return spooled


def _array_start(stream: IO[bytes], name: str) -> int:
    """Skip a UTF-8 byte order mark and check that the document opens an array."""
    try:
        head = stream.read(_CHUNK)
    except OSError as e:
        raise DataFileError(f"{name}: cannot read the data file: {e.strerror}") from None
    start = len(_BOM) if head.startswith(_BOM) else 0
    body = head[start:].lstrip(b" \t\r\n")
    if not body:
        raise DataFileError(f"{name}: the data file is empty; it must be a JSON array of objects")
    if body[:1] != b"[":
        kind = {b"{": "an object", b'"': "a string", b"n": "null", b"t": "a boolean", b"f": "a boolean"}.get(
            body[:1], "a number" if body[:1] in b"-0123456789" else "not JSON"
        )
        detail = "is not JSON" if kind == "not JSON" else f"holds {kind}"
        hint = " (for one object per line, use --format ndjson)" if kind == "an object" else ""
        raise DataFileError(f"{name}: must be a JSON array of objects, but the file {detail}{hint}")
    return start


def _skip_bom(stream: IO[bytes]) -> int:
    return len(_BOM) if stream.read(len(_BOM)) == _BOM else 0


def _blank(stream: IO[bytes], start: int) -> bool:
    stream.seek(start)
    while chunk := stream.read(_CHUNK):
        if chunk.strip(b" \t\r\n"):
            return False
    return True


def _elements(stream: IO[bytes], kind: str) -> Iterator[object]:
    if kind == NDJSON:
        # Any run of whitespace separates values, so this reads NDJSON and JSON Lines alike.
        return ijson.items(stream, "", multiple_values=True)  # type: ignore[no-any-return]
    return ijson.items(stream, "item")  # type: ignore[no-any-return]


def _count_elements(stream: IO[bytes], name: str, start: int, kind: str) -> int:
    # Counted from raw parser events rather than built records: building a record costs memory
    # quadratic in its nesting depth, so a hostile file could exhaust memory before any check.
    stream.seek(start)
    count = 0
    depth = 0
    top = 1 if kind == JSON else 0
    try:
        for event, _ in ijson.basic_parse(stream, multiple_values=kind == NDJSON):
            if event in _OPENS:
                depth += 1
                if depth - top > MAX_DEPTH:
                    raise DataFileError(f"{name}: record {count} is nested more than {MAX_DEPTH} levels deep")
                continue
            if event in _CLOSES:
                depth -= 1
            elif event == "map_key":
                continue
            if depth == top:
                count += 1
    except ijson.JSONError as e:
        raise DataFileError(f"{name}: not valid JSON after {count} complete records: {_first_line(e)}") from None
    except OSError as e:
        raise DataFileError(f"{name}: cannot read the data file: {e.strerror}") from None
    return count


def _first_line(error: Exception) -> str:
    # The C parser's messages are multi-line (a caret under the text), sometimes as bytes.
    message = error.args[0] if error.args else ""
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    lines = text.strip().splitlines()
    return lines[0] if lines else type(error).__name__

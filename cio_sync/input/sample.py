"""Reading the first records of a data file (JSON, NDJSON or CSV) without reading the rest."""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterator
from types import TracebackType
from typing import IO, Any

import ijson

from ..errors import DataFileError
from .csvfile import MAX_CELL, MAX_LINE
from .datafile import CSV, NDJSON, UnreadableRecord, data_format, ndjson_records, open_file

# Enough to see every key of a regular export, few enough to take a moment on any file.
DEFAULT_SAMPLE = 1000
# After this many bytes the sample ends however few records it holds: a file of huge records
# is not read whole either.
MAX_SAMPLE_BYTES = 64 * 1024 * 1024
# Containers nested deeper than this are not built: a proposal maps an object 32 levels down
# whole and never looks inside it, and a hostile file cannot make the reading recurse.
MAX_BUILT_DEPTH = 34
_BOM = b"\xef\xbb\xbf"
_CHUNK = 1 << 16
# Leading white space looked through to tell an empty file; past this, the file is not empty.
_MAX_HEAD = 1 << 20
_SPACE = b" \t\r\n"
_OPENS = frozenset({"start_map", "start_array"})
_CLOSES = frozenset({"end_map", "end_array"})

Event = tuple[str, object]


class Sample:
    """The first ``limit`` records of the data file at ``path`` (``-``: standard input), read
    as they are asked for. Once they are, ``reached_end`` says whether that was the whole file.

    ``format`` is ``json``, ``ndjson`` or ``csv``; by default it follows the suffix, as a sync
    reads it. Raises :class:`DataFileError` for a file that is missing, unreadable or empty (on
    opening) or that is not what its format says (while reading). Only the sample is checked: a
    sync checks the whole file before it sends anything. An NDJSON line that cannot be read (bytes
    that are not UTF-8, not JSON) is read past and counted in ``unreadable``, as a sync reads it
    as an invalid record and syncs the others.
    """

    def __init__(self, path: str, format: str | None = None, limit: int = DEFAULT_SAMPLE) -> None:  # noqa: A002 - the keyword is named for the --format option
        self.format = data_format(path, format)
        self.name = "<stdin>" if path == "-" else path
        self.limit = limit
        self.read = 0
        # CSV rows skipped for having more or fewer cells than the header.
        self.ragged = 0
        # NDJSON lines skipped for being unreadable, and the first one's number and problem.
        self.unreadable = 0
        self.first_unreadable: tuple[int, str] | None = None
        self.reached_end = False
        self.header: tuple[str, ...] | None = None
        raw, self._owned = _open(path, self.name)
        try:
            head = _head(raw, self.name)
            if not head.strip(_SPACE):
                what = "a CSV file needs a header row" if self.format == CSV else "there is nothing to propose from"
                raise DataFileError(f"{self.name}: the data file is empty; {what}")
            if self.format != CSV:
                # The parser takes no byte order mark; CSV's text reader drops it itself.
                head = head.removeprefix(_BOM)
                if self.format != NDJSON and head.lstrip(_SPACE)[:1] != b"[":
                    hint = " (for one object per line, use --format ndjson)" if head.lstrip(_SPACE)[:1] == b"{" else ""
                    raise DataFileError(f"{self.name}: must be a JSON array of objects{hint}")
            self._counted = _Counted(raw, head)
            self._stream = io.BufferedReader(self._counted, _CHUNK)
            if self.format == CSV:
                self._rows = _csv_rows(self._stream)
                self.header = self._csv_header()
        except BaseException:
            self.close()
            raise

    def records(self) -> Iterator[object]:
        """The records of the sample in file order: parsed JSON (non-integers as ``Decimal``),
        or for CSV a dict of each column's text (None for an empty cell). Rows with more or
        fewer cells than the header are skipped and counted in ``ragged``; so are unreadable
        NDJSON lines, in ``unreadable``."""
        source: Iterator[object]
        if self.format == CSV:
            source = self._csv_records()
        else:
            source = self._ndjson_records() if self.format == NDJSON else self._json_records()
        # One record past the sample is read to tell whether the file goes on.
        for record in source:
            if self.read >= self.limit or self._counted.count > MAX_SAMPLE_BYTES:
                return
            if isinstance(record, UnreadableRecord):
                # Not counted in the sample's records: a file of them is still bounded by bytes.
                if self.first_unreadable is None:
                    self.first_unreadable = (self.read + self.unreadable, record.problem)
                self.unreadable += 1
                continue
            self.read += 1
            yield record
        self.reached_end = True

    def _csv_header(self) -> tuple[str, ...]:
        with self._csv_errors():
            header = next((row for row in self._rows if row), None)
        if header is None:
            raise DataFileError(f"{self.name}: the data file is empty; a CSV file needs a header row")
        seen: set[str] = set()
        for column in header:
            if column in seen:
                raise DataFileError(f'{self.name}: the header row names the column "{column}" twice')
            seen.add(column)
        return tuple(header)

    def _csv_records(self) -> Iterator[dict[str, str | None]]:
        header = self.header or ()
        with self._csv_errors():
            for row in self._rows:
                if len(row) == len(header):
                    yield dict(zip(header, [cell or None for cell in row], strict=True))
                elif row:  # a blank line is no row at all
                    self.ragged += 1

    def _csv_errors(self) -> _CsvErrors:
        return _CsvErrors(self.name, self._rows)

    def _ndjson_records(self) -> Iterator[object]:
        # Each line read as a sync reads it (one reading for both, so that no line a sync syncs
        # is refused here), an unreadable one as an UnreadableRecord: a line break always ends a
        # record, so one line that cannot be read leaves the others' bounds known.
        try:
            yield from ndjson_records(self._stream)
        except OSError as e:
            raise DataFileError(f"{self.name}: cannot read the data file: {e.strerror}") from None

    def _json_records(self) -> Iterator[object]:
        try:
            events: Iterator[Event] = ijson.basic_parse(self._stream, buf_size=_CHUNK)
            next(events)  # the array's opening bracket, seen before
            for first in events:
                if first[0] == "end_array":
                    return
                yield _built(first, events)
        except (ijson.JSONError, ValueError, ArithmeticError) as e:
            complete = f"{self.read:,} complete record" + ("" if self.read == 1 else "s")
            raise DataFileError(f"{self.name}: not valid JSON after {complete}: {_first_line(e)}") from None
        except OSError as e:
            raise DataFileError(f"{self.name}: cannot read the data file: {e.strerror}") from None

    def close(self) -> None:
        """Close the file (standard input is left open)."""
        if self._owned is not None:
            self._owned.close()

    def __enter__(self) -> Sample:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class _CsvErrors:
    """Turns what the csv module and the decoder raise into a :class:`DataFileError` that names the line."""

    def __init__(self, name: str, rows: _Reader) -> None:
        self._name = name
        self._rows = rows

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        if isinstance(value, csv.Error):
            line = self._rows.line_num + 1
            raise DataFileError(f"{self._name}: not valid CSV in the row from line {line}: {value}") from None
        if isinstance(value, UnicodeDecodeError):
            raise DataFileError(f"{self._name}: not UTF-8 text (save the export as UTF-8)") from None
        if isinstance(value, OSError):
            raise DataFileError(f"{self._name}: cannot read the data file: {value.strerror}") from None


class _Reader(Iterator[list[str]]):
    """What ``csv.reader`` returns (its type is not importable)."""

    line_num: int


def _csv_rows(stream: IO[bytes]) -> _Reader:
    # The module's default refuses a cell over 128 KiB; raised as a sync raises it, never lowered.
    csv.field_size_limit(max(csv.field_size_limit(), MAX_CELL))
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    reader: _Reader = csv.reader(_lines(text), strict=True)  # type: ignore[assignment]  # _csv.reader is not importable
    return reader


def _lines(text: IO[str]) -> Iterator[str]:
    """The lines of ``text`` as the csv module wants them, none longer than a sync reads: a file
    with no line break is not held whole."""
    while line := text.readline(MAX_LINE + 1):
        if len(line) > MAX_LINE:
            raise csv.Error(f"a line is longer than {MAX_LINE:,} characters, the most cio-sync reads")
        yield line


def _open(path: str, name: str) -> tuple[IO[bytes], IO[bytes] | None]:
    """The stream to read, and the same stream when it is ours to close (not standard input)."""
    if path == "-":
        if sys.stdin is None:
            raise DataFileError("<stdin>: standard input is closed")
        return sys.stdin.buffer, None
    stream = open_file(path, name)
    return stream, stream


def _head(stream: IO[bytes], name: str) -> bytes:
    """The start of ``stream``: at least its first byte that is not white space, if it has one."""
    head = b""
    try:
        while len(head) < _MAX_HEAD:
            chunk = stream.read(_CHUNK)
            head += chunk
            if not chunk or chunk.strip(_SPACE):
                break
    except OSError as e:
        raise DataFileError(f"{name}: cannot read the data file: {e.strerror}") from None
    return head


class _Counted(io.RawIOBase):
    """``head``, then the rest of ``stream``, counting the bytes handed out."""

    def __init__(self, stream: IO[bytes], head: bytes) -> None:
        super().__init__()
        self._stream = stream
        self._head = memoryview(head)
        self.count = 0

    def readable(self) -> bool:
        return True

    # Any: the stubs name this parameter's type in _typeshed, which exists for type checkers only
    # and is no package a user could install.
    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        if self._head:
            size = min(len(target), len(self._head))
            target[:size] = self._head[:size]
            self._head = self._head[size:]
        else:
            data = self._stream.read(len(target))
            size = len(data)
            target[:size] = data
        self.count += size
        return size


def _built(first: Event, events: Iterator[Event]) -> object:
    """The value whose first parser event is ``first``, read from ``events`` to its end.

    Containers deeper than :data:`MAX_BUILT_DEPTH` are skipped and stand as an empty one.
    """
    kind, value = first
    if kind not in _OPENS:
        return value
    root: dict[str, object] | list[object] = {} if kind == "start_map" else []
    stack: list[tuple[dict[str, object] | list[object], list[str]]] = [(root, [""])]
    for kind, value in events:
        container, key = stack[-1]
        if kind == "map_key":
            key[0] = str(value)
            continue
        if kind in _CLOSES:
            stack.pop()
            if not stack:
                return root
            continue
        if kind in _OPENS:
            child: dict[str, object] | list[object] = {} if kind == "start_map" else []
            if len(stack) < MAX_BUILT_DEPTH:
                stack.append((child, [""]))
            else:
                _skip(events)
            value = child
        if isinstance(container, dict):
            container[key[0]] = value
        else:
            container.append(value)
    raise ijson.IncompleteJSONError("the data ended inside a record")


def _skip(events: Iterator[Event]) -> None:
    """Read ``events`` to the end of the container just opened."""
    depth = 1
    for kind, _ in events:
        depth += (kind in _OPENS) - (kind in _CLOSES)
        if depth == 0:
            return


def _first_line(error: Exception) -> str:
    # The C parser's messages run over several lines (a caret under the text), sometimes as bytes.
    message = error.args[0] if error.args else ""
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    lines = text.strip().splitlines()
    return lines[0] if lines else type(error).__name__

"""Reading the data file (a JSON array, NDJSON or CSV) record by record, checked whole before use."""

from __future__ import annotations

import codecs
import csv
import itertools
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import IO

import ijson

from ..errors import DataFileChanged, DataFileError
from .convert import MAX_INTEGER_DIGITS
from .csvfile import CsvRecords, CsvRows

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
# The parser is fed this much at a time. It re-reads a value split across reads from its start,
# so a value costs time quadratic in its length (bounded by MAX_VALUE_BYTES: under a second).
_CHUNK = 1 << 16
# A single value (string, number or key) longer than this is refused with the file. No id or
# attribute value can be a thousandth of it, and it bounds the time the parser spends on one.
MAX_VALUE_BYTES = 10_000_000
# Digits as "0" and everything else as ".", to find long runs of digits at the speed of bytes.find.
_DIGIT_MASK = bytes(48 if 48 <= b <= 57 else 46 for b in range(256))
_LONG_DIGITS = b"0" * (MAX_INTEGER_DIGITS + 1)
_SPACE = b" \t\r\n"
# \u escapes of UTF-16 surrogates: high halves, low halves, pairs; one with the low half after it.
_HIGH_SURROGATE = re.compile(rb"\\u[dD][89abAB]")
_LOW_SURROGATE = re.compile(rb"\\u[dD][c-fC-F]")
_SURROGATE_PAIR = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F]")
_SURROGATE_ESCAPE = re.compile(rb"\\u([dD][89a-fA-F][0-9a-fA-F]{2})(\\u[dD][c-fC-F][0-9a-fA-F]{2})?")


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
        format: str = JSON,  # noqa: A002 - the keyword is named for the --format option
        table: CsvRecords | None = None,
        *,
        checked_as: tuple[int, int] | None,
    ) -> None:
        self.name = name
        self.count = count
        self.format = format
        self._stream = stream
        self._start = start
        self._table = table
        # The file as it was when its check began: a stop copies its unread records by position
        # only while it is so.
        self._checked_as = checked_as

    @property
    def header(self) -> tuple[str, ...] | None:
        """A CSV file's column names (None for JSON and NDJSON)."""
        return self._table.header if self._table is not None else None

    def records(self) -> Records:
        """Each record in file order: parsed JSON (non-integers as ``Decimal``), or for CSV a
        :class:`~cio_sync.csvfile.CsvRow` of text (None for an empty cell) or a ragged row."""
        # Checked again, as the file may have changed since: the parser must never see what it
        # mishandles.
        reader = _CheckedReader(self._stream, self.name, self._start, self.format, limit_values=False)
        rows = self._table.rows() if self._table is not None else None
        return Records(self, reader, self._parse(reader, rows), rows)

    def _parse(self, reader: _CheckedReader, rows: CsvRows | None) -> Iterator[object]:
        if self.count == 0:
            return
        self._stream.seek(self._start)
        try:
            if rows is not None:
                yield from rows
            else:
                yield from _elements(reader, self.format)
        except (ijson.JSONError, csv.Error, OSError, ValueError, ArithmeticError, DataFileError, _IntegerTooLong) as e:
            checked = isinstance(e, (DataFileError, _IntegerTooLong))
            raise self.changed("it no longer reads as it did" if checked else _first_line(e)) from None

    def changed(self, what: str) -> DataFileChanged:
        """The error for a file that no longer reads as its check found it, ``what`` saying how."""
        return DataFileChanged(f"{self.name}: changed while being read ({what}); records up to there were processed")

    @property
    def stream_for_tail(self) -> IO[bytes]:
        """The open file, for copying an unread tail."""
        return self._stream

    def unchanged_size(self) -> int | None:
        """The file's size, if it still has the size and modification time it had when checked
        (and can be read by position at all): only then do positions found while reading hold.
        None otherwise."""
        if self._checked_as is None or _identity(self._stream) != self._checked_as:
            return None
        return self._checked_as[0]

    def close(self) -> None:
        """Close the file (and remove the spooled copy of standard input)."""
        self._stream.close()

    def __enter__(self) -> DataFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


@dataclass(frozen=True)
class UnreadTail:
    """The records a stopped run never read, as they stand in the data file: ``count`` records
    from number ``first`` on, in the bytes from ``start`` to ``end`` (a JSON array's elements
    without its closing bracket, NDJSON lines, or CSV rows after the header)."""

    first: int
    count: int
    stream: IO[bytes]
    start: int
    end: int

    def chunks(self) -> Iterator[str]:
        """The tail's text, a piece at a time (the file was checked to be UTF-8)."""
        decoder = codecs.getincrementaldecoder("utf-8")()
        at = self.start
        while at < self.end:
            data = os.pread(self.stream.fileno(), min(_CHUNK * 16, self.end - at), at)
            if not data:
                break
            at += len(data)
            yield decoder.decode(data)
        yield decoder.decode(b"", final=True)


class Records(Iterator[object]):
    """The records of a :class:`DataFile`, in file order, counting those handed out."""

    def __init__(
        self, data_file: DataFile, reader: _CheckedReader, parsed: Iterator[object], rows: CsvRows | None
    ) -> None:
        self._file = data_file
        self._reader = reader
        self._parsed = parsed
        self._rows = rows
        self.handed = 0
        self._ended = False

    def __iter__(self) -> Records:
        return self

    def __next__(self) -> object:
        # Exactly the records the check counted: a file that grew or shrank since (rows appended
        # to NDJSON or CSV, lines cut off) reads as valid, and would otherwise be synced short or
        # long while the totals still spoke of the file as checked.
        # Once it said so, the file has no more records to give.
        if self._ended:
            raise StopIteration
        count = self._file.count
        try:
            record = next(self._parsed)
        except StopIteration:
            self._ended = True
            if self.handed < count:
                what = f"it now holds {self.handed:,} of the {count:,} records its check counted"
                raise self._file.changed(what) from None
            raise
        except DataFileChanged:
            self._ended = True
            raise
        if self.handed >= count:
            self._ended = True
            raise self._file.changed(f"it holds more than the {count:,} records its check counted")
        self.handed += 1
        return record

    def unread(self) -> tuple[Iterator[object], UnreadTail | None]:
        """After a stop: the records the parser holds already, then the rest of the file unread.

        Reading every remaining record one by one takes time in proportion to the file; this
        takes the time of one record, so a stop is quick however large the file is. None for
        the tail when nothing is left, or when its place cannot be told (the file changed since
        its check): then read on.
        """
        data_file = self._file
        size = data_file.unchanged_size() if self.handed < data_file.count else None
        if size is None:
            return self, None
        stream = data_file.stream_for_tail
        if self._rows is not None:
            # The CSV reader holds no row it has not handed out: the tail starts after the last.
            if self._rows.end is None:
                return self, None
            return iter(()), UnreadTail(self.handed, data_file.count - self.handed, stream, self._rows.end, size)
        self._reader.stopping = True
        held: list[object] = []
        try:
            while True:
                held.append(next(self))
        except StopIteration:
            return iter(held), None
        except _Stopped:
            pass
        left = data_file.count - self.handed
        start = self._reader.unread_start(data_file.format) if left > 0 else None
        if start is None:
            # Read on from a fresh parse: slow, and only for a place the lexer cannot tell.
            rest = data_file.records()
            for _ in range(self.handed):
                next(rest)
            return itertools.chain(held, rest), None
        end = _elements_end(stream, data_file.format, size)
        return iter(held), UnreadTail(self.handed, left, stream, start, end)


def _identity(stream: IO[bytes]) -> tuple[int, int] | None:
    """A file's size and modification time; None for a stream that is not a file."""
    try:
        status = os.fstat(stream.fileno())
    except (OSError, ValueError):  # io.UnsupportedOperation (no descriptor) is both
        return None
    return status.st_size, status.st_mtime_ns


def data_format(path: str, format: str | None = None) -> str:  # noqa: A002 - the keyword is named for the --format option
    """The format to read ``path`` in: ``format`` when given, else by suffix (JSON by default)."""
    if format is not None:
        return format
    lowered = path.lower()
    if lowered.endswith(CSV_SUFFIXES):
        return CSV
    return NDJSON if lowered.endswith(NDJSON_SUFFIXES) else JSON


def open_data_file(path: str, format: str | None = None, stdin: IO[bytes] | None = None) -> DataFile:  # noqa: A002 - the keyword is named for the --format option
    """Open and check the data file at ``path``; ``-`` reads standard input (or ``stdin``).

    ``format`` is ``json`` (one array of objects), ``ndjson`` (one object per line) or ``csv``
    (RFC 4180 with a header row); by default it follows the suffix: ``.ndjson`` and ``.jsonl``
    are NDJSON, ``.csv`` is CSV. Raises :class:`DataFileError` when the file cannot be read, is
    not JSON (or CSV), is not an array (for ``json``), or is truncated.
    """
    kind = data_format(path, format)
    if path == "-":
        name = "<stdin>"
        if stdin is None and sys.stdin is None:
            raise DataFileError("<stdin>: standard input is closed")
        stream: IO[bytes] = _spool(stdin if stdin is not None else sys.stdin.buffer, name)
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
        if not stream.seekable():
            # A pipe, a FIFO or <(command): it can be read once only, as standard input can.
            with stream:
                stream = _spool(stream, name)
    # Taken before the check: a change made while it reads must not pass for the file it checked.
    checked_as = _identity(stream)
    if kind == CSV:
        table = CsvRecords(stream, name)
        try:
            count = table.check()
        except BaseException:
            stream.close()
            raise
        return DataFile(name, stream, 0, count, kind, table, checked_as=checked_as)
    try:
        start = _array_start(stream, name) if kind == JSON else _skip_bom(stream)
        # NDJSON with no lines at all is an empty data set, not a broken file.
        count = 0 if kind == NDJSON and _blank(stream, start) else _count_elements(stream, name, start, kind)
    except BaseException:
        stream.close()
        raise
    return DataFile(name, stream, start, count, kind, checked_as=checked_as)


def _spool(source: IO[bytes], name: str) -> IO[bytes]:
    spooled = tempfile.TemporaryFile(prefix="cio-sync-stdin-")  # noqa: SIM115 - DataFile closes it
    try:
        shutil.copyfileobj(source, spooled, _CHUNK)
        spooled.seek(0)
    except OSError as e:
        spooled.close()
        raise DataFileError(f"{name}: cannot read it: {e.strerror}") from None
    except BaseException:
        spooled.close()
        raise
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
        kind = {b"{": "an object", b'"': "a string"}.get(body[:1], "a number" if body[:1] in b"-0123456789" else "")
        for word, named in ((b"null", "null"), (b"true", "a boolean"), (b"false", "a boolean")):
            # Only the whole word: "nope" or "trux" is not null or a boolean, but not JSON at all.
            if body.startswith(word) and body[len(word) : len(word) + 1] in (b"", b" ", b"\t", b"\r", b"\n"):
                kind = named
        kind = kind or "not JSON"
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


def _elements(stream: IO[bytes] | _CheckedReader, kind: str) -> Iterator[object]:
    if kind == NDJSON:
        # Any run of whitespace separates values, so this reads NDJSON and JSON Lines alike.
        return ijson.items(stream, "", multiple_values=True, buf_size=_CHUNK)  # type: ignore[no-any-return]  # ijson ships no type hints
    return ijson.items(stream, "item", buf_size=_CHUNK)  # type: ignore[no-any-return]  # ijson ships no type hints


class _CheckedReader:
    """The data file as the check pass reads it, watching for what the parser would mishandle.

    The parser turns a lone surrogate escape (``"\\ud800"``, half of a UTF-16 pair) into another
    character or fails on it, so such escapes are looked for in the raw bytes. And it spends time
    quadratic in a value's length, so a value that keeps it reading for too long without producing
    anything is refused: the check pass resets ``unparsed`` at each parser event.
    """

    def __init__(self, stream: IO[bytes], name: str, start: int, kind: str, limit_values: bool = True) -> None:
        self._stream = stream
        self._name = name
        self._ndjson = kind == NDJSON
        self._limit_values = limit_values
        self._start = start
        # Once set, a read raises _Stopped instead: the records the parser holds are drained.
        self.stopping = False
        # Where each piece handed to the parser starts, with the nesting depth and whether a
        # string is open there: where a stopped run's unread records begin is found from these.
        self.marks: list[tuple[int, int, bool]] = []
        self._depth = 0
        self._in_string = False
        self.unparsed = 0
        # The last bytes handed to the parser, the context of a run of digits at the start of a read.
        self._previous = b""
        # Bytes kept from the last read that might begin an escape, and where they start.
        self._tail = b""
        self._tail_at = start

    def read(self, size: int = -1) -> bytes:
        if size == 0:
            return b""
        if self.stopping:
            raise _Stopped
        while True:
            chunk = self._stream.read(size if size > 0 else _CHUNK)
            data = self._tail + chunk
            keep = self._checked_end(data, final=not chunk)
            if keep or not chunk:
                break
            if len(data) > MAX_VALUE_BYTES and self._limit_values:
                raise _ValueTooLong
            self._tail = data
        self._check_integers(data, keep)
        if not self._limit_values and keep:
            self.marks.append((self._tail_at, self._depth, self._in_string))
            self._depth, self._in_string = _advance(data[:keep], self._depth, self._in_string)
        self._tail_at += keep
        self._tail = data[keep:]
        self.unparsed += keep
        if self.unparsed > MAX_VALUE_BYTES and self._limit_values:
            raise _ValueTooLong
        return data[:keep]

    def _checked_end(self, data: bytes, final: bool) -> int:
        """How much of ``data`` the parser may have, having checked its surrogate escapes.

        The parser gets only bytes checked already, up to a point where no escape (nor pair of
        them) and no run of backslashes or digits is cut in two; the rest waits for the next read.
        ``data`` starts where no escape is under way, so replacing its backslashes two by two from
        the left leaves exactly those that start an escape.
        """
        # A backslash is rare in exports: looking for one is far quicker than a replace that finds none.
        plain = data.replace(b"\\\\", b"__") if b"\\" in data else data
        end = len(data)
        if not final:
            end = len(data[: max(0, end - 16)].rstrip(b"\\0123456789"))
            near = plain.find(b"\\u", max(0, end - 12), end)
            if near != -1:
                pair = near >= 6 and _HIGH_SURROGATE.match(plain, near - 6) and _LOW_SURROGATE.match(plain, near)
                end = near - 6 if pair else near
        checked = plain[:end]
        if b"\\u" not in checked:
            return end
        pairs = len(_SURROGATE_PAIR.findall(checked))
        if len(_HIGH_SURROGATE.findall(checked)) == pairs == len(_LOW_SURROGATE.findall(checked)):
            return end
        for match in _SURROGATE_ESCAPE.finditer(checked):
            if match.group(1)[:1].lower() in b"cdef" or match.group(2) is None:
                raise DataFileError(
                    f"{self._name}: holds the escape \\u{match.group(1).decode().lower()} at byte offset "
                    f"{self._tail_at + match.start():,}: half of a UTF-16 surrogate pair without its other "
                    "half, which is not a character; it cannot be sent without changing it"
                )
        return end

    def _check_integers(self, data: bytes, end: int) -> None:
        """Refuse an integer of more digits than Python reads, before the parser sees its end.

        The C parser mishandles Python's refusal to read one (up to a crash), so such a run of
        digits must never reach it as a number. A run inside a string is harmless: the parser turns
        a run into a number only where JSON allows a value, after ``[``, ``,`` or ``:`` (in NDJSON
        also at the top level), so a run after any other byte is text.
        """
        digits = data[:end].translate(_DIGIT_MASK)
        at = digits.find(_LONG_DIGITS)
        while at != -1:
            after = digits.find(b".", at)
            if after == -1:  # the run ends the checked part; what follows it is in ``data``
                after = end
            if data[after : after + 1] not in (b".", b"e", b"E"):  # those make it a decimal, read exactly
                # What precedes the run, past a minus sign and up to 64 bytes of whitespace;
                # nothing at all (the start, or more whitespace) counts as a value's place.
                context = (self._previous + data[max(0, at - 66) : at])[-66:]
                before = context.removesuffix(b"-").rstrip(_SPACE)[-1:]
                value_ends = b'"]}el' if self._ndjson else b""
                if before in (b"", b"[", b",", b":") or before in value_ends:
                    raise _IntegerTooLong
            at = digits.find(_LONG_DIGITS, after)
        self._previous = (self._previous + data[:end])[-66:] if end < 66 else data[end - 66 : end]

    def unread_start(self, kind: str) -> int | None:
        """Where the first record the parser did not complete begins: the one it was reading
        when reads stopped, or the next one. None when that cannot be told."""
        top = 0 if kind == NDJSON else 1
        handed = self._tail_at
        fd = self._stream.fileno()
        for offset, depth, in_string in reversed(self.marks):
            piece = os.pread(fd, handed - offset, offset)
            before = os.pread(fd, 1, offset - 1) if offset > self._start else b""
            starts = _element_starts(piece, depth, in_string, top, continues=_is_scalar(before))
            if starts:
                last = offset + starts[-1]
                if not _complete(os.pread(fd, handed - last, last), top):
                    return last
                return _next_start(fd, handed, top)
        return None


def _is_scalar(byte: bytes) -> bool:
    return bool(byte) and byte not in b' \t\r\n[]{},:"'


# JSON tokens, for finding where records begin: a string (maybe cut short), a bracket, a
# separator, a run of scalar characters (a number, true, false, null), whitespace.
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*("?)|[\[{]|[\]}]|[,:]|[^\s\[\]{},:"]+|\s+')
_REST_OF_STRING = re.compile(rb'(?:[^"\\]|\\.)*"')
_LITERALS = (b"null", b"true", b"false")
# Every byte but quotes and brackets, deleted to follow the nesting at the speed of bytes.translate.
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')


def _advance(data: bytes, depth: int, in_string: bool) -> tuple[int, bool]:
    """The nesting depth and open string after ``data``, without a loop in Python."""
    # With escaped quotes blanked, every quote opens or closes a string. Only quotes and brackets
    # matter, and two quotes side by side (a string with no bracket in it, or the space between
    # two strings) change nothing: what remains is split at its quotes into pieces that alternate
    # between outside and inside a string. An open string is a quote before the first piece.
    plain = data.replace(b"\\\\", b"__").replace(b'\\"', b"__") if b"\\" in data else data
    marks = ((b'"' if in_string else b"") + plain.translate(None, _NOT_STRUCTURE)).replace(b'""', b"")
    pieces = marks.split(b'"')
    outside = b"".join(pieces[::2])
    depth += outside.count(b"[") + outside.count(b"{") - outside.count(b"]") - outside.count(b"}")
    # An odd number of quotes (an even number of pieces) leaves a string open.
    return depth, len(pieces) % 2 == 0


def _element_starts(data: bytes, depth: int, in_string: bool, top: int, continues: bool) -> list[int]:
    """Where records begin in ``data``, which starts at ``depth`` (in a string if ``in_string``;
    inside a scalar if ``continues``)."""
    starts: list[int] = []
    at = 0
    if in_string:
        rest = _REST_OF_STRING.match(data)
        if rest is None:
            return starts
        at = rest.end()
    for token in _TOKEN.finditer(data, at):
        first = token.group()[:1]
        if first in b"[{":
            if depth == top:
                starts.append(token.start())
            depth += 1
        elif first in b"]}":
            depth -= 1
        elif first in b",: \t\r\n":
            pass
        elif depth == top and not (continues and token.start() == 0):
            starts.append(token.start())
    return starts


def _complete(data: bytes, top: int) -> bool:
    """Whether the record that ``data`` starts with ends within it."""
    depth = top
    for token in _TOKEN.finditer(data):
        first = token.group()[:1]
        if first in b"[{":
            depth += 1
        elif first in b"]}":
            depth -= 1
        elif first == b'"':
            if depth == top:
                return bool(token.group(1))
        elif first not in b",: \t\r\n" and depth == top:
            # A number may go on in the next read, so the parser holds it back; a literal is
            # whole once its last letter is read, and the parser hands it out at once.
            return token.end() < len(data) or token.group() in _LITERALS
        if depth == top:
            return True
    return False


def _next_start(fd: int, at: int, top: int) -> int | None:
    """Where the record after ``at`` begins (``at`` is between records): past whitespace and a
    comma. None when the records end there."""
    while True:
        data = os.pread(fd, 4096, at)
        stripped = data.lstrip(b" \t\r\n,")
        if not data:
            return None
        if stripped:
            return None if top and stripped[:1] == b"]" else at + len(data) - len(stripped)
        at += len(data)


def _elements_end(stream: IO[bytes], kind: str, size: int) -> int:
    """The end of a data file's records (``size`` bytes long): before a JSON array's closing
    bracket, or the end."""
    if kind == NDJSON:
        return size
    at = size
    while at > 0:
        data = os.pread(stream.fileno(), min(4096, at), at - min(4096, at))
        stripped = data.rstrip(b" \t\r\n")
        if stripped:
            return at - len(data) + len(stripped) - 1
        at -= len(data)
    return 0


class _Stopped(BaseException):
    """Raised by a read once a stopped run has asked for no more records."""


class _IntegerTooLong(Exception):
    """The file holds an integer longer than Python reads."""


class _ValueTooLong(Exception):
    """The parser read more than MAX_VALUE_BYTES without producing a single event."""


def _count_elements(stream: IO[bytes], name: str, start: int, kind: str) -> int:
    # Counted from raw parser events rather than built records: building a record costs memory
    # quadratic in its nesting depth, so a hostile file could exhaust memory before any check.
    stream.seek(start)
    reader = _CheckedReader(stream, name, start, kind)
    count = 0
    depth = 0
    top = 1 if kind == JSON else 0
    try:
        for event, _ in ijson.basic_parse(reader, multiple_values=kind == NDJSON, buf_size=_CHUNK):
            reader.unparsed = 0
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
        complete = f"{count:,} complete record" + ("" if count == 1 else "s")
        if kind == NDJSON:
            line = _line_of_value(stream, start, count)
            raise DataFileError(f"{name}: line {line:,}: not valid JSON (after {complete}): {_first_line(e)}") from None
        raise DataFileError(f"{name}: not valid JSON after {complete}: {_first_line(e)}") from None
    except OSError as e:
        raise DataFileError(f"{name}: cannot read the data file: {e.strerror}") from None
    except _ValueTooLong:
        raise DataFileError(
            f"{name}: record {count} holds a single value longer than {MAX_VALUE_BYTES:,} bytes, "
            "the most cio-sync reads (no id or attribute can hold one)"
        ) from None
    except ArithmeticError:  # the decimal module's InvalidOperation
        raise DataFileError(
            f"{name}: record {count} holds a number whose exponent is out of range (no attribute can hold it)"
        ) from None
    except _IntegerTooLong:
        raise DataFileError(
            f"{name}: record {count} holds an integer of more than {MAX_INTEGER_DIGITS:,} digits, "
            "more than Python reads (no id or attribute can hold one)"
        ) from None
    return count


def _line_of_value(stream: IO[bytes], start: int, index: int) -> int:
    """The line (from 1) where NDJSON value ``index`` (from 0) starts: the index-th line not blank.

    Read again only once the parser has failed, so that a good file costs nothing for it.
    """
    stream.seek(start)
    seen = 0
    for number, line in enumerate(stream, start=1):
        if line.strip(b" \t\r\n"):
            if seen == index:
                return number
            seen += 1
    return number if seen else 1


def _first_line(error: Exception) -> str:
    # The C parser's messages are multi-line (a caret under the text), sometimes as bytes.
    message = error.args[0] if error.args else ""
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    lines = text.strip().splitlines()
    return lines[0] if lines else type(error).__name__

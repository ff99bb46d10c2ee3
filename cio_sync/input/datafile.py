"""Reading the data file (a JSON array, NDJSON or CSV) record by record, checked whole before use."""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from types import TracebackType
from typing import IO, Protocol

from ..errors import DataFileChanged, DataFileError
from .convert import MAX_INTEGER_DIGITS
from .csvfile import CsvRecords, CsvRows
from .runs import (
    MAX_DEPTH,
    SURROGATE,
    SURROGATE_ESCAPE,
    Scan,
    depth,
    end_of,
    end_of_lines,
    in_runs,
    run_of_elements,
    run_of_lines,
)

JSON = "json"
NDJSON = "ndjson"
CSV = "csv"
NDJSON_SUFFIXES = (".ndjson", ".jsonl")
CSV_SUFFIXES = (".csv",)
# The file is read, and its digests taken, this much at a time.
_CHUNK = 1 << 16
# A record longer than this (in characters) is invalid and skipped without being held, so that
# one enormous record cannot exhaust memory. No request can carry a thousandth of it.
MAX_RECORD_LENGTH = 10_000_000
_DIGEST_SIZE = 16
_SPACE = " \t\r\n"
_WHITESPACE = re.compile(r"[ \t\r\n]*")
# What the scan for a record's end stops at: structure outside strings, the rest of a string, the
# end of a number or literal.
_STRUCTURE = re.compile(r'["\[\]{}]')
_STRING_REST = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*')
_SCALAR_END = re.compile(r'[\s\[\]{},:"]')


class _Source(Protocol):
    """What the records are read from: a :class:`_BlockReader`, or any stream of bytes."""

    def read(self, size: int, /) -> bytes: ...


@dataclass(frozen=True, slots=True)
class UnreadableRecord:
    """A record of a JSON array or NDJSON file whose bounds are known but whose content cannot be
    read as it stands (bytes that are not UTF-8, a lone surrogate escape, an integer too long to
    read, nesting too deep): an invalid record, not a broken file.

    ``text`` is the record as it stands in the file, bytes that are not UTF-8 held as the lone
    surrogates they are read as (None when too long to keep); ``problem`` says why.
    ``value`` is what could be read of it all the same (None when nothing could): its id may
    still name a person.
    """

    text: str | None
    problem: str
    value: object = None

    def reason(self) -> str:
        """Why the record cannot be used."""
        return self.problem

    def __str__(self) -> str:
        return self.text if self.text is not None else ""


class DataFile:
    """An open data file whose structure has been checked, ready to stream its records.

    The whole file is parsed once up front (without keeping it in memory) so that a file that is
    not JSON, not an array, or truncated is refused before a single request is sent. That pass
    takes a digest of each block of the file; reading the records parses it a second time, one
    record at a time, and checks each block against its digest before parsing anything in it, so
    that nothing is read from bytes other than those checked. Standard input is spooled to a
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
        digests: _Digests | None = None,
    ) -> None:
        self.name = name
        self.count = count
        self.format = format
        self._stream = stream
        # Where the records begin: after a JSON array's opening bracket, or a byte order mark.
        self._start = start
        self._table = table
        # The file as it was when its check began: a stop copies its unread records by position
        # only while it is so.
        self._checked_as = checked_as
        self._digests = digests

    @property
    def header(self) -> tuple[str, ...] | None:
        """A CSV file's column names (None for JSON and NDJSON)."""
        return self._table.header if self._table is not None else None

    def records(self) -> Records:
        """Each record in file order: parsed JSON (non-integers as ``Decimal``), an
        :class:`UnreadableRecord`, or for CSV a :class:`~cio_sync.csvfile.CsvRow` of text (None
        for an empty cell) or a ragged row."""
        reader = _BlockReader(self._stream, self._digests, verify=True)
        if self._table is not None:
            return Records(self, None, self._table.rows(reader))
        return Records(self, _Elements(reader, self.format), None)

    def changed(self, what: str) -> DataFileChanged:
        """The error for a file that no longer reads as its check found it, ``what`` saying how."""
        return DataFileChanged(f"{self.name}: changed while being read ({what}); records up to there were processed")

    @property
    def start(self) -> int:
        """Where the records begin in the file."""
        return self._start

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
        """The tail's text, a piece at a time. A record may hold bytes that are not UTF-8 (it is
        then invalid), and must be invalid again when read back: they are read as lone
        surrogates, which the ``--failed`` file writes as the bytes they were."""
        decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        at = self.start
        while at < self.end:
            data = os.pread(self.stream.fileno(), min(_CHUNK * 16, self.end - at), at)
            if not data:
                break
            at += len(data)
            yield decoder.decode(data)
        yield decoder.decode(b"", final=True)


class Records(Iterator[object]):
    """The records of a :class:`DataFile`, in file order, counting those handed out: one at a
    time, or the rest of the run they were read in (:meth:`next_run`)."""

    def __init__(self, data_file: DataFile, elements: _Elements | None, rows: CsvRows | None) -> None:
        self._file = data_file
        self._elements = elements
        self._rows = rows
        # Runs as they are read; and to hand out one record, the run it is read in. A JSON or
        # NDJSON record is read in a run of its neighbours (the offset of each is found again),
        # a CSV row alone, so that the place after it is known.
        empty: Iterator[Sequence[object]] = iter(())
        if not data_file.count:
            self._runs = self._alone = empty
        elif rows is not None:
            self._runs, self._alone = rows.runs(), in_runs(rows, 1)
        else:
            assert elements is not None
            self._runs = self._alone = elements.runs()
        # The run read last, and how many of it were handed out.
        self._run: Sequence[object] = ()
        self._at = 0
        self.handed = 0
        self._ended = False
        # The file holds more records than its check counted: said once those counted are handed out.
        self._more = False

    def __iter__(self) -> Records:
        return self

    def __next__(self) -> object:
        if self._at == len(self._run):
            self._run, self._at = self._read(self._alone), 0
            if not self._run:
                raise StopIteration
        record = self._run[self._at]
        self._at += 1
        self.handed += 1
        return record

    def next_run(self) -> Sequence[object]:
        """The records after those handed out, up to the end of the run they were read in; empty
        once there are none. Raises :class:`DataFileChanged` as iterating does."""
        run = self._read(self._runs) if self._at == len(self._run) else self._run[self._at :]
        self._run, self._at = (), 0
        self.handed += len(run)
        return run

    def _read(self, runs: Iterator[Sequence[object]]) -> Sequence[object]:
        # Exactly the records the check counted: a file that grew or shrank since (rows appended
        # to NDJSON or CSV, lines cut off) reads as valid, and would otherwise be synced short or
        # long while the totals still spoke of the file as checked.
        # Once it said so, the file has no more records to give.
        if self._ended:
            return ()
        count = self._file.count
        if self._more:
            self._ended = True
            raise self._file.changed(f"it holds more than the {count:,} records its check counted")
        try:
            run = next(runs)
        except StopIteration:
            self._ended = True
            if self.handed < count:
                what = f"it now holds {self.handed:,} of the {count:,} records its check counted"
                raise self._file.changed(what) from None
            return ()
        except DataFileChanged:
            self._ended = True
            raise
        except (_Changed, _Syntax, csv.Error, OSError, ValueError, DataFileError) as e:
            # Caught here rather than around the reader: a generator between the two cost a
            # tenth of reading a small record.
            self._ended = True
            raise self._file.changed(_how_it_changed(e)) from None
        if self.handed + len(run) > count:
            # Those counted are handed out first, as they were checked.
            self._more = True
            run = run[: count - self.handed]
            if not run:
                return self._read(runs)
        return run

    def again(self) -> Records:
        """The same records, read anew from the start (checked against the same digests)."""
        return self._file.records()

    def unread(self) -> tuple[Iterator[object], UnreadTail | None]:
        """After a stop: the records not handed out, as the rest of the file unread.

        Reading every remaining record one by one takes time in proportion to the file; this
        takes no time at all, so a stop is quick however large the file is. None for the tail
        when nothing is left, or when its place cannot be told (the file changed since its
        check, or holds more records than it counted): then read on.
        """
        data_file = self._file
        unhanded = len(self._run) - self._at
        unchanged = self.handed < data_file.count and not self._ended and not self._more
        size = data_file.unchanged_size() if unchanged else None
        if size is None:
            return self, None
        stream = data_file.stream_for_tail
        left = data_file.count - self.handed
        if self._rows is not None:
            # The CSV reader holds no row it has not handed out: the tail starts after the last.
            if self._rows.end is None:
                return self, None
            self._run, self._at = (), 0
            return iter(()), UnreadTail(self.handed, left, stream, self._rows.end, size)
        assert self._elements is not None
        # The next record begins after the last handed out, within the run read last or after it.
        after = self._elements.offset(unhanded) if self.handed else data_file.start
        top = 0 if data_file.format == NDJSON else 1
        start = _next_start(stream.fileno(), after, top)
        if start is None:
            return self, None
        end = _elements_end(stream, data_file.format, size)
        self._run, self._at = (), 0
        return iter(()), UnreadTail(self.handed, left, stream, start, end)


def _how_it_changed(error: Exception) -> str:
    """What the reader's ``error`` says of how the data file changed since its check."""
    if isinstance(error, _Changed):
        return "its bytes differ from those its check read"
    if isinstance(error, _Syntax):
        return "it no longer reads as it did"
    return str(error).splitlines()[0] if str(error) else type(error).__name__


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


def open_data_file(
    path: str,
    format: str | None = None,  # noqa: A002 - the keyword is named for the --format option
    stdin: IO[bytes] | None = None,
    *,
    note: Callable[[Sequence[object]], None] | None = None,
) -> DataFile:
    """Open and check the data file at ``path``; ``-`` reads standard input (or ``stdin``).

    ``format`` is ``json`` (one array of objects), ``ndjson`` (one object per line) or ``csv``
    (RFC 4180 with a header row); by default it follows the suffix: ``.ndjson`` and ``.jsonl``
    are NDJSON, ``.csv`` is CSV. Raises :class:`DataFileError` when the file cannot be read, is
    not JSON (or CSV), is not an array (for ``json``), or is truncated. A record that cannot be
    read although its bounds are known is not an error here: it is read as an
    :class:`UnreadableRecord`. ``note`` is shown the records the check reads, a run at a time (of
    CSV, the rows of the header's width), so that a caller can learn about the records without
    reading them again.
    """
    kind = data_format(path, format)
    name, stream = _open_stream(path, stdin)
    # Taken before the check: a change made while it reads must not pass for the file it checked.
    checked_as = _identity(stream)
    digests = _Digests()
    reader = _BlockReader(stream, digests, verify=False)
    try:
        if kind == CSV:
            table = CsvRecords(reader, name)
            count = table.check(note)
            return DataFile(name, stream, 0, count, kind, table, checked_as=checked_as, digests=digests)
        elements = _Elements(reader, kind)
        count = _check_elements(elements, name, note)
        return DataFile(name, stream, elements.first, count, kind, checked_as=checked_as, digests=digests)
    except _Changed:
        stream.close()
        raise DataFileError(f"{name}: changed while being checked; run again once it is written") from None
    except OSError as e:
        stream.close()
        raise DataFileError(f"{name}: cannot read the data file: {e.strerror}") from None
    except BaseException:
        stream.close()
        raise


def open_file(path: str, name: str) -> IO[bytes]:
    """The data file at ``path`` open for reading (the caller closes it), or
    :class:`DataFileError` saying, of ``name``, why it cannot be."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise DataFileError(f"{name}: no such data file") from None
    except IsADirectoryError:
        raise DataFileError(f"{name}: is a directory, not a data file") from None
    except OSError as e:
        raise DataFileError(f"{name}: cannot read the data file: {e.strerror}") from None


def _open_stream(path: str, stdin: IO[bytes] | None) -> tuple[str, IO[bytes]]:
    """The data file's name in messages, and the file, open at its start and seekable."""
    if path == "-":
        if stdin is None and sys.stdin is None:
            raise DataFileError("<stdin>: standard input is closed")
        return "<stdin>", _spool(stdin if stdin is not None else sys.stdin.buffer, "<stdin>")
    stream = open_file(path, path)
    if not stream.seekable():
        # A pipe, a FIFO or <(command): it can be read once only, as standard input can.
        with stream:
            return path, _spool(stream, path)
    return path, stream


def _spool(source: IO[bytes], name: str) -> IO[bytes]:
    # A private, unlinked file: nothing else can change it between the check and the records.
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


def _check_elements(elements: _Elements, name: str, note: Callable[[Sequence[object]], None] | None) -> int:
    """Count the records of a JSON array or NDJSON file, refusing an array that is not JSON (an
    NDJSON line that is not is an unreadable record: its bounds are known)."""
    try:
        return _count_elements(elements, note)
    except _Syntax as e:
        raise _not_json(e, elements.count, name) from None


def _not_json(error: _Syntax, complete: int, name: str) -> DataFileError:
    """The refusal of an array whose syntax breaks after ``complete`` records."""
    if error.whole is not None:
        return DataFileError(f"{name}: {error.whole}")
    records = f"{complete:,} complete record" + ("" if complete == 1 else "s")
    where = f" at byte offset {error.offset:,}" if error.offset is not None else ""
    return DataFileError(f"{name}: not valid JSON after {records}: {error.message}{where}")


def _count_elements(elements: _Elements, note: Callable[[Sequence[object]], None] | None) -> int:
    for records in elements.runs():
        if note is not None:
            note(records)
    return elements.count


class _Digests:
    """A digest of each block of a file as its check read it: 16 bytes per block, however large
    the file, so the records pass can tell any block that changed since."""

    def __init__(self) -> None:
        self.block = _CHUNK
        self.table = bytearray()


class _BlockReader:
    """A data file read from its start in whole blocks, each digested (the check pass) or checked
    against the digest the check took of it before any of it is handed out (the records pass).

    A change to the file, in place or not, with its modification time kept or not, then stops the
    records where it begins, instead of records being read from bytes the check never saw.
    """

    def __init__(self, stream: IO[bytes], digests: _Digests | None, verify: bool) -> None:
        self._stream = stream
        self._digests = digests if digests is not None else _Digests()
        self._verify = verify and digests is not None
        self._size = self._digests.block
        self._block = b""
        self._at = 0  # the read position within _block
        self._index = 0  # the number of _block (its offset is _index * _size)
        self._loaded = False
        self._ended = False

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (the rest of a block at most); empty at the end of the file."""
        if not self._loaded or self._at >= len(self._block):
            if self._loaded and len(self._block) < self._size:
                if self._verify and not self._ended:
                    # The last block ends where the check found the file's end: bytes added
                    # to it since are a change too, though no record is read from them.
                    self._ended = True
                    self._stream.seek(self.tell())
                    if self._stream.read(1):
                        raise _Changed
                return b""  # the last block, read to its end
            self._load(self._index + 1 if self._loaded else self._index)
            if not self._block:
                return b""
        end = len(self._block) if size < 0 else min(len(self._block), self._at + size)
        piece = self._block[self._at : end]
        self._at = end
        return piece

    def tell(self) -> int:
        """The offset of the next byte :meth:`read` hands out."""
        return self._index * self._size + self._at

    def seek(self, offset: int) -> int:
        """Move to ``offset``; the block there is read (and checked) again."""
        self._load(offset // self._size)
        self._at = offset % self._size
        return offset

    def _load(self, index: int) -> None:
        offset = index * self._size
        self._stream.seek(offset)
        parts: list[bytes] = []
        got = 0
        while got < self._size:
            part = self._stream.read(self._size - got)
            if not part:
                break
            parts.append(part)
            got += len(part)
        data = b"".join(parts)
        table = self._digests.table
        at = index * _DIGEST_SIZE
        if data or at < len(table):
            digest = hashlib.blake2b(data, digest_size=_DIGEST_SIZE).digest()
            if at < len(table):
                if table[at : at + _DIGEST_SIZE] != digest:
                    raise _Changed
            elif self._verify or at != len(table):
                raise _Changed  # a block the check never read: the file grew
            else:
                table += digest
        self._block, self._at, self._index, self._loaded = data, 0, index, True


class _Changed(Exception):
    """A block of the data file differs from the one its check read."""


class _Syntax(Exception):
    """The data file is not JSON: bounds of records are lost from ``offset`` on (None: at the end)."""

    def __init__(self, record: int, offset: int | None, message: str, whole: str | None = None) -> None:
        super().__init__(message)
        self.record = record
        self.offset = offset
        self.message = message
        # The message for a file that is not a JSON array at all.
        self.whole = whole


class _NotJson(ValueError):
    """NaN, Infinity or -Infinity: Python reads them, JSON has no such values."""


def _refuse_constant(name: str) -> object:
    raise _NotJson(f"{name} is not a JSON number")


class _Text:
    """The text of a JSON array or NDJSON file as read so far from a :class:`_BlockReader`, held
    from the record being read on, and the byte offset of any place in it."""

    def __init__(self, reader: _Source) -> None:
        self._read = reader.read
        # Bytes that are not UTF-8 are decoded as lone surrogates, one per byte: the record that
        # holds them is then told apart from the others, and their offsets found again.
        self._decode = codecs.getincrementaldecoder("utf-8")("surrogateescape").decode
        self._text = ""
        self._pos = 0
        self._base = 0  # the byte offset of _text[0]
        self._lines = 0  # the line breaks before _text[0]
        self._eof = False
        # Nothing that may parse as a lone surrogate before this index of _text.
        self._clean_to = 0

    def offset(self) -> int:
        """The byte offset where the last record read ends."""
        return self._offset(self._pos)

    def _offset(self, index: int) -> int:
        return self._base + len(self._text[:index].encode("utf-8", "surrogateescape"))

    def _line(self, index: int) -> int:
        """The line (from 1) that ``_text[index]`` is on."""
        return self._lines + self._text.count("\n", 0, index) + 1

    def _more(self) -> bool:
        """Read on; False at the end of the file."""
        if self._eof:
            return False
        data = self._read(_CHUNK)
        if not data:
            self._eof = True
            rest = self._decode(b"", True)
            self._text += rest
            return bool(rest)
        self._text += self._decode(data)
        return True

    def _drop(self) -> None:
        """Forget the text before the read position."""
        done = self._text[: self._pos]
        self._base += len(done.encode("utf-8", "surrogateescape"))
        self._lines += done.count("\n")
        self._text = self._text[self._pos :]
        self._clean_to = max(0, self._clean_to - self._pos)
        self._pos = 0

    def _skip(self) -> bool:
        """Move past whitespace; False at the end of the file."""
        while True:
            match = _WHITESPACE.match(self._text, self._pos)
            assert match is not None  # the pattern matches the empty string
            self._pos = match.end()
            if self._pos < len(self._text):
                return True
            if self._pos > _CHUNK:
                self._drop()
            if not self._more():
                return False

    def _find_end(self, start: int) -> int | None:
        """Where the record at ``start`` ends, reading on as needed: past its closing bracket or
        quote, or where a number or literal stops; the end of the file if that comes first. None
        for a record longer than MAX_RECORD_LENGTH: it is skipped, and the read position is left
        after it."""
        first = self._text[start]
        at, depth, in_string = start + (first == '"'), 0, first == '"'
        scalar = first not in '[{"'
        skipping = False
        while True:
            at, depth, in_string, done = _scan(self._text, at, depth, in_string, scalar)
            if done:
                break
            if skipping or at - start > MAX_RECORD_LENGTH:
                # Only the scan's place is kept from here: what was scanned is let go.
                skipping = True
                self._pos = at
                self._drop()
                at = start = 0
            if not self._more():
                if skipping:
                    raise self._syntax(len(self._text), "the file ends inside a record")
                return len(self._text)
        if skipping:
            self._pos = at
            return None
        return at

    def _line_end(self, start: int) -> int | None:
        """Where the line from ``start`` ends (its line break, or the end of the file), reading
        on as needed. None for a line longer than MAX_RECORD_LENGTH: it is skipped, and the
        read position is left at its end."""
        at, skipping = start, False
        while (end := self._text.find("\n", at)) == -1:
            at = len(self._text)
            if skipping or at - start > MAX_RECORD_LENGTH:
                skipping = True
                self._pos = at
                self._drop()
                at = start = 0
            if not self._more():
                end = len(self._text)
                break
        if skipping:
            self._pos = end
            return None
        return end

    def _syntax(self, index: int, message: str, record: int | None = None) -> _Syntax:
        if index >= len(self._text) and self._eof:
            message = "the file ends inside a record" if record is not None else message
        offset = self._offset(min(index, len(self._text)))
        return _Syntax(self._offset(record) if record is not None else offset, offset, message)


def _scan(text: str, at: int, depth: int, in_string: bool, scalar: bool) -> tuple[int, int, bool, bool]:
    """Scan ``text`` from ``at`` for the end of a record (``depth`` brackets open, maybe in a
    string, or in a number or literal): where the scan stands, the depth, whether in a string,
    and whether the record ended there."""
    while True:
        if in_string:
            match = _STRING_REST.match(text, at)
            assert match is not None  # the pattern matches the empty string
            at = match.end()
            if at >= len(text) or text[at] != '"':
                return at, depth, True, False  # before a backslash the text ends on, if any
            at += 1
            in_string = False
            if depth == 0:
                return at, depth, False, True
        elif scalar:
            found = _SCALAR_END.search(text, at)
            return (found.start(), depth, False, True) if found else (len(text), depth, False, False)
        else:
            found = _STRUCTURE.search(text, at)
            if found is None:
                return len(text), depth, False, False
            at = found.end()
            mark = found.group()
            if mark == '"':
                in_string = True
            elif mark in "[{":
                depth += 1
            else:
                depth -= 1
                if depth <= 0:
                    return at, depth, False, True


class _Values(_Text):
    """Records read from a :class:`_Text`, and what makes one unreadable: a value no attribute
    can carry, a lone surrogate, bytes that are not UTF-8, nesting too deep."""

    def __init__(self, reader: _Source) -> None:
        super().__init__(reader)
        self.count = 0
        # Where the records begin (after a JSON array's opening bracket).
        self.first = 0
        self._problems: list[str] = []
        # Every record is read with the first, at C speed; one it cannot read is read again with
        # the second, slower and more forgiving, which tells why.
        fast = json.JSONDecoder(parse_float=Decimal, parse_constant=_refuse_constant)
        tolerant = json.JSONDecoder(parse_float=self._float, parse_int=self._int, parse_constant=_refuse_constant)
        self._scan: Scan = fast.scan_once  # type: ignore[attr-defined]  # set by the constructor, not declared
        self._tolerant: Scan = tolerant.scan_once  # type: ignore[attr-defined]

    def _suspect(self, start: int, end: int) -> bool:
        """Whether ``_text[start:end]`` may hold a lone surrogate once parsed: searched for once
        per read, at the speed of the regular expression engine, not once per record."""
        if self._clean_to < end:
            text = self._text
            found = SURROGATE_ESCAPE.search(text, start)
            self._clean_to = found.start() if found else len(text)
            if not text.isascii():
                raw = SURROGATE.search(text, start, self._clean_to)
                self._clean_to = raw.start() if raw else self._clean_to
        return self._clean_to < end

    def _lone_surrogate(self, start: int, end: int, value: object) -> str | None:
        """Why ``value``, read from ``_text[start:end]``, cannot be sent, if it holds a lone surrogate."""
        lone = _lone_surrogate(value)
        if lone is None:
            return None
        raw = SURROGATE.search(self._text, start, end)
        if raw is not None:
            where = self._offset(raw.start())
            return f"holds bytes that are not UTF-8 at byte offset {where:,} (save the export as UTF-8)"
        return (
            f"holds the escape \\u{ord(lone):04x}: half of a UTF-16 surrogate pair without its other half, "
            "which is not a character; it cannot be sent without changing it"
        )

    def _checked(self, start: int, end: int, value: object, problem: str | None) -> object:
        """``value``, read from ``_text[start:end]``, or the record made unreadable by what it holds."""
        text = self._text
        # Counting brackets (those in strings too) is quick, and rules out nearly every record.
        brackets = text.count("[", start, end) + text.count("{", start, end)
        if problem is None and brackets > MAX_DEPTH and depth(value) > MAX_DEPTH:
            problem = f"is nested more than {MAX_DEPTH} levels deep"
        if problem is None and self._suspect(start, end):
            problem = self._lone_surrogate(start, end, value)
        self._pos = end
        self.count += 1
        if problem is None:
            return value
        raw = text[start:end]
        return UnreadableRecord(raw, problem, value)

    def _int(self, text: str) -> object:
        if len(text) - text.startswith("-") > MAX_INTEGER_DIGITS:
            self._problems.append(
                f"holds an integer of more than {MAX_INTEGER_DIGITS:,} digits (no attribute can hold one)"
            )
            return None
        return int(text)

    def _float(self, text: str) -> object:
        try:
            return Decimal(text)
        except ArithmeticError:  # the decimal module's InvalidOperation: an exponent beyond its range
            self._problems.append("holds a number whose exponent is out of range (no attribute can hold it)")
            return None

    def _bad_line(self, start: int) -> object:
        """The NDJSON line from ``start``, which the fast decoder could not read as one value."""
        line = self._line(start)
        end = self._line_end(start)
        if end is None:
            self.count += 1
            return UnreadableRecord(None, f"line {line:,} is longer than {MAX_RECORD_LENGTH:,} characters")
        text = self._text[start:end]
        self._problems.clear()
        value: object = None
        try:
            value, stop = self._tolerant(text, 0)
            after = None if not text[stop:].strip(" \t\r") else (stop, "more follows the value on its line")
        except RecursionError:
            after = None
            self._problems.append(f"is nested more than {MAX_DEPTH} levels deep")
        except StopIteration as e:
            after = (int(e.value), "expected a value")
        except json.JSONDecodeError as e:
            after = (e.pos, e.msg)
        except _NotJson as e:
            after = (0, str(e))
        if after is not None:
            where = self._offset(start + min(after[0], len(text)))
            self._problems.insert(0, f"line {line:,} is not valid JSON: {after[1]} at byte offset {where:,}")
            value = None  # a line that is not one value may be anyone's, whatever it begins with
        return self._checked(start, end, value, self._problems[0] if self._problems else None)

    def _slow(self, start: int) -> object:
        """The array element at ``start``, which the fast decoder could not read."""
        offset = self._offset(start)
        end = self._find_end(start)
        if end is None:
            self.count += 1
            too_long = f"is longer than {MAX_RECORD_LENGTH:,} characters (at byte offset {offset:,})"
            return UnreadableRecord(None, too_long)
        self._problems.clear()
        try:
            value, end = self._tolerant(self._text, start)
        except RecursionError:
            return self._checked(start, end, None, f"is nested more than {MAX_DEPTH} levels deep")
        except StopIteration as e:
            raise self._syntax(int(e.value), "expected a value", start) from None
        except json.JSONDecodeError as e:
            raise self._syntax(e.pos, e.msg, start) from None
        except _NotJson as e:
            raise self._syntax(start, str(e), start) from None
        return self._checked(start, end, value, self._problems[0] if self._problems else None)


class _Elements(_Values):
    """The records of a JSON array or NDJSON file, read one at a time from a :class:`_BlockReader`.

    Each record is parsed on its own by Python's JSON decoder, from text held only until it is
    read. Where that fails, the record's end is found (for an array element, by a scan of its
    strings and brackets; for NDJSON, its line break), so the bounds of a record are known
    whatever its values hold, and the record is read again to tell why: a value no attribute can
    carry makes it an :class:`UnreadableRecord`, and so does an NDJSON line that is not JSON; a
    break in an array's syntax (where the bounds of its elements are lost) makes the file not JSON.

    Records are read a run at a time where that reads them exactly alike (see
    :mod:`cio_sync.input.runs`), and one by one where it does not.
    """

    def __init__(self, reader: _Source, kind: str) -> None:
        super().__init__(reader)
        self._array = kind == JSON
        # Elements before this index of the text are read one by one: no run could be read there.
        self._one_by_one_to = 0
        # While a run's elements are being handed out: where it begins, and the count before it.
        self._run_from: int | None = None
        self._run_first = 0
        self._run_end = 0

    def offset(self, unhanded: int = 0) -> int:
        """The byte offset where the last record handed out ends, the last ``unhanded`` of the
        run read last not handed out (within a run, found again)."""
        if self._run_from is None:
            assert not unhanded  # a record read alone is handed out at once
            return super().offset()
        handed = self.count - self._run_first - unhanded
        if self._array:
            return self._offset(end_of(self._text, self._run_from, handed, self._scan))
        return self._offset(end_of_lines(self._text, self._run_from, handed))

    def _drop(self) -> None:
        dropped = self._pos
        super()._drop()
        self._one_by_one_to = max(0, self._one_by_one_to - dropped)

    def __iter__(self) -> Iterator[object]:
        for records in self.runs():
            yield from records

    def runs(self) -> Iterator[Sequence[object]]:
        """The records a run at a time (see :mod:`cio_sync.input.runs`), or alone (a run of one)
        where they are read one by one; :attr:`count` counts a run as it is handed out."""
        while not self._text and self._more():
            pass
        if self._text.startswith("\ufeff"):  # a byte order mark, not part of the document
            self._pos = 1
        if self._array:
            self._open()
        else:
            self.first = self._offset(self._pos)
        while True:
            if not self._skip():
                if self._array:
                    raise self._syntax(self._pos, "the file ends before the array is closed")
                return
            if self._array and self.count:
                if self._text[self._pos] == "]":
                    self._close()
                    return
                if self._text[self._pos] != ",":
                    raise self._syntax(self._pos, f"expected a comma or ] after record {self.count - 1}")
                self._pos += 1
                if not self._skip():
                    raise self._syntax(self._pos, "the file ends before the array is closed")
            elif self._array and self._text[self._pos] == "]":
                self._close()
                return
            if (values := self._run()) is None:
                yield (self._element() if self._array else self._line_element(),)
            else:
                self._run_from, self._run_first = self._pos, self.count
                self.count += len(values)
                yield values
                self._pos, self._run_from = self._run_end, None

    def _open(self) -> None:
        if not self._skip():
            raise _Syntax(0, None, "", "the data file is empty; it must be a JSON array of objects")
        body = self._text[self._pos : self._pos + 8]
        if body[:1] != "[":
            raise _Syntax(0, None, "", _not_an_array(body))
        self._pos += 1
        self.first = self._offset(self._pos)

    def _close(self) -> None:
        self._pos += 1
        if self._skip():
            raise self._syntax(self._pos, "more follows the array's closing bracket")

    def _run(self) -> list[object] | None:
        """The elements of a run from the read position (:attr:`_run_end` is after the last); None
        when the next element is to be read alone."""
        if self._pos < self._one_by_one_to:
            return None
        if self._pos > _CHUNK:
            self._drop()
        read = run_of_elements if self._array else run_of_lines
        found = read(self._text, self._pos, self._scan)
        if isinstance(found, int):
            self._one_by_one_to = found
            return None
        values, self._run_end = found
        return values

    def _element(self) -> object:
        if self._pos > _CHUNK:
            self._drop()
        start = self._pos
        while True:
            try:
                value, end = self._scan(self._text, start)
            except (StopIteration, ValueError, ArithmeticError, RecursionError):
                # Cut short by the end of what was read, or a value Python will not read.
                return self._slow(start)
            # A number at the end of what was read may go on in the next read ("12" of "12.5e3",
            # read as far as "12." or "12e"); an object, an array or a string cannot.
            text = self._text
            if text[start] in "{[" or (text[start] == '"' and end < len(text)):
                break
            if _SCALAR_END.search(text, end) is not None or not self._more():
                break
        return self._checked(start, end, value, None)

    def _line_element(self) -> object:
        """The NDJSON record at the read position: the value its line holds, or the line as an
        unreadable record. A line break always ends a record (JSON strings cannot hold one), so
        a line that is not JSON leaves the bounds of the others known."""
        if self._pos > _CHUNK:
            self._drop()
        start = self._pos
        while True:
            try:
                value, end = self._scan(self._text, start)
            except (StopIteration, ValueError, ArithmeticError, RecursionError):
                break
            text = self._text
            newline = text.find("\n", end)
            if newline == -1 and self._more():
                continue  # a number may go on, and the line must end with nothing more on it
            newline = len(text) if newline == -1 else newline
            if text.find("\n", start, end) == -1 and not text[end:newline].strip(" \t\r"):
                return self._checked(start, end, value, None)
            break
        return self._bad_line(start)


def sample_records(stream: IO[bytes], kind: str, name: str) -> Iterator[object]:
    """The records of a JSON array or NDJSON ``stream`` (``kind``), read as a sync reads them
    but without its check, which reads the whole file first: each record's value, or an
    :class:`UnreadableRecord` for one that cannot be read (bytes that are not UTF-8, a value no
    attribute can carry, an NDJSON line that is not JSON...). Raises :class:`DataFileError` where
    an array's syntax breaks. For a sample of a file's first records, which must read them as the
    sync it proposes for will."""
    elements = _Elements(stream, kind)
    try:
        yield from elements
    except _Syntax as e:
        raise _not_json(e, elements.count, name) from None


def _not_an_array(body: str) -> str:
    """What a data file that should be a JSON array holds instead, from its first characters."""
    kind = {"{": "an object", '"': "a string"}.get(body[:1], "a number" if body[:1] in "-0123456789" else "")
    for word, named in (("null", "null"), ("true", "a boolean"), ("false", "a boolean")):
        # Only the whole word: "nope" or "trux" is not null or a boolean, but not JSON at all.
        if body.startswith(word) and body[len(word) : len(word) + 1] in ("", *_SPACE):
            kind = named
    kind = kind or "not JSON"
    detail = "is not JSON" if kind == "not JSON" else f"holds {kind}"
    hint = " (for one object per line, use --format ndjson)" if kind == "an object" else ""
    return f"must be a JSON array of objects, but the file {detail}{hint}"


def _lone_surrogate(value: object) -> str | None:
    """The first lone surrogate in a string or key of ``value``, if any."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found = SURROGATE.search(item)
            if found is not None:
                return found.group()
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _next_start(fd: int, at: int, top: int) -> int | None:
    """Where the record after ``at`` begins (``at`` is between records): past whitespace, and in
    a JSON array (``top``) the comma between elements. None when the records end there.

    An NDJSON line keeps its commas: a line that begins with one is not JSON, and must go back to
    --failed unreadable still, not read back as a record the file never held."""
    skipped = b" \t\r\n," if top else b" \t\r\n"
    while True:
        data = os.pread(fd, 4096, at)
        stripped = data.lstrip(skipped)
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

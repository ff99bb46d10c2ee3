"""Reading the first records of a data file (JSON, NDJSON or CSV) without reading the rest."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from types import TracebackType
from typing import IO, Any

from ..errors import DataFileError
from .csvfile import CsvRow, RaggedRow, UnreadableRow, sample_rows
from .datafile import CSV, NDJSON, UnreadableRecord, data_format, open_file, sample_records

# Enough to see every key of a regular export, few enough to take a moment on any file.
DEFAULT_SAMPLE = 1000
# After this many bytes the sample ends however few records it holds: a file of huge records
# is not read whole either.
MAX_SAMPLE_BYTES = 64 * 1024 * 1024
_BOM = b"\xef\xbb\xbf"
_CHUNK = 1 << 16
# Leading white space looked through to tell an empty file; past this, the file is not empty.
_MAX_HEAD = 1 << 20
_SPACE = b" \t\r\n"


class Sample:
    """The first ``limit`` records of the data file at ``path`` (``-``: standard input), read
    as they are asked for. Once they are, ``reached_end`` says whether that was the whole file.

    ``format`` is ``json``, ``ndjson`` or ``csv``; by default it follows the suffix, as a sync
    reads it. Raises :class:`DataFileError` for a file that is missing, unreadable or empty (on
    opening) or that is not what its format says (while reading). Only the sample is checked: a
    sync checks the whole file before it sends anything. A record that cannot be read (bytes that
    are not UTF-8, a value no attribute can carry, an NDJSON line that is not JSON) is read past
    and counted in ``unreadable``, as a sync reads it as an invalid record and syncs the others.
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
        # True when reading stopped at the bound in the middle of a record (or of skipped rows).
        self.cut = False
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
                self.header, self._rows = sample_rows(self._stream, self.name)
        except BaseException:
            self.close()
            raise

    def records(self) -> Iterator[object]:
        """The records of the sample in file order: parsed JSON (non-integers as ``Decimal``),
        or for CSV a dict of each column's text (None for an empty cell). Rows with more or
        fewer cells than the header are skipped and counted in ``ragged``; so are unreadable
        records, in ``unreadable``."""
        source: Iterator[object] = self._csv_records() if self.format == CSV else self._records()
        # One record past the sample is read to tell whether the file goes on.
        try:
            for record in source:
                if self.read >= self.limit:
                    return
                if isinstance(record, UnreadableRecord):
                    # Not counted in the sample's records: a file of them is still bounded by bytes.
                    if self.first_unreadable is None:
                        self.first_unreadable = (self.read + self.unreadable + self.ragged, record.problem)
                    self.unreadable += 1
                elif self._counted.count <= MAX_SAMPLE_BYTES:
                    self.read += 1
                    yield record
                if self._counted.count > MAX_SAMPLE_BYTES:
                    return
        except _SampleFull:
            # A record, or a run of rows that are skipped, goes on past the bound: the sample
            # ends there, its file not read to the end.
            self.cut = True
            return
        self.reached_end = True

    def _csv_records(self) -> Iterator[CsvRow | UnreadableRecord]:
        try:
            for row in self._rows:
                if isinstance(row, RaggedRow):
                    self.ragged += 1
                elif isinstance(row, UnreadableRow):
                    yield UnreadableRecord(None, row.reason())
                else:
                    yield row
        except OSError as e:
            raise DataFileError(f"{self.name}: cannot read the data file: {e.strerror}") from None

    def _records(self) -> Iterator[object]:
        # Each record read as a sync reads it (one reading for both, so that no record a sync
        # syncs is refused here, and no value reads differently), an unreadable one as an
        # UnreadableRecord.
        try:
            yield from sample_records(self._stream, self.format, self.name)
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


class _SampleFull(Exception):
    """The sample's bytes are read: nothing past :data:`MAX_SAMPLE_BYTES` (and the read ahead
    of one chunk) is read, however long the record being read goes on."""


class _Counted(io.RawIOBase):
    """``head``, then the rest of ``stream``, counting the bytes handed out; past the sample's
    bound, :class:`_SampleFull` rather than more."""

    def __init__(self, stream: IO[bytes], head: bytes) -> None:
        super().__init__()
        self._stream = stream
        self._head = memoryview(head)
        self.count = 0

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        """Bytes handed out so far: where the stream stands (a CSV reader asks, to find the rows)."""
        return self.count

    # Any: the stubs name this parameter's type in _typeshed, which exists for type checkers only
    # and is no package a user could install.
    def readinto(self, buffer: Any) -> int:
        if self.count > MAX_SAMPLE_BYTES + _CHUNK:
            raise _SampleFull
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

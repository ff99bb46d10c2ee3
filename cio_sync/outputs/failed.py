"""The ``--failed`` file: every record that was not synced, as a data file to run again."""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal

from ..errors import OutputError, OutputLost
from ..input.csvfile import CsvWriter
from ..input.datafile import CSV, JSON, NDJSON, UnreadableRecord, UnreadTail
from ..input.datafile import data_format as format_of
from ..outcome import DONE, RecordOutcome
from .atomic import AtomicFile


def _record_json(value: object) -> str:
    """A record as JSON text, its numbers exactly as they were read.

    The data file's non-integers arrive as ``Decimal``: they are written in their own
    digits, so ``1e400`` stays a JSON number and ``0.1000000000000000000001`` keeps every digit,
    where a float would overflow to a string or round.
    """
    parts: list[str] = []
    _encode_into(value, parts)
    return "".join(parts)


def _encode_into(value: object, parts: list[str]) -> None:
    if isinstance(value, str):
        parts.append(_string(value))
    elif value is None or value is True or value is False or type(value) is int:
        parts.append(_plain(value))
    elif isinstance(value, dict):
        parts.append("{")
        for n, (key, item) in enumerate(value.items()):
            parts.append(("" if n == 0 else ", ") + _string(str(key)) + ": ")
            _encode_into(item, parts)
        parts.append("}")
    elif isinstance(value, list):
        parts.append("[")
        for n, item in enumerate(value):
            if n:
                parts.append(", ")
            _encode_into(item, parts)
        parts.append("]")
    elif isinstance(value, Decimal) and value.is_finite():
        parts.append(str(value))
    else:
        # Only records built in Python rather than read from a file get here (floats and the like).
        parts.append(_plain(value))


_string = json.encoder.encode_basestring  # the C-accelerated string escaper json.dumps itself uses
_plain = json.JSONEncoder(ensure_ascii=False, default=str).encode


def check_failed_format(path: str, data_format: str) -> None:
    """Refuse a ``--failed`` path whose name would be read in another format than the data file's.

    The file is written in the data file's format; fed back with the same flags (no ``--format``),
    its name must lead to that format again. Raises :class:`~cio_sync.errors.OutputError`.
    """
    read_as = format_of(path)
    if read_as != data_format:
        suffix = {JSON: ".json", NDJSON: ".ndjson", CSV: ".csv"}[data_format]
        raise OutputError(
            f"--failed {path}: it is written as {data_format.upper()}, like the data file, but a file of that "
            f"name is read as {read_as.upper()}: name it *{suffix}, or give --format"
        )


class FailedRecordsFile:
    """Collects every record that was not synced, unchanged, as a data file cio-sync can read.

    ``cio-sync --data PATH`` with the same configuration then retries exactly those records.
    Records of one person keep their file order.
    """

    def __init__(self, path: str, ndjson: bool = False, csv_header: Sequence[str] | None = None) -> None:
        if path == "-":
            raise OutputError("--failed needs a file path: standard output is kept for --report -")
        # A record read with bytes that are not UTF-8 holds each as a lone surrogate: written back
        # as that byte. An escape written instead could pair with one before it (\ud83d\udcff is
        # a character) or follow a backslash, and read back as a valid record that is not the one
        # in the file. What this writer makes itself never holds a lone surrogate.
        self._file = AtomicFile(path, "--failed", errors="surrogateescape")
        self.path = path
        # Why the file could not be written (a full disk): it is then left as it was before.
        self._lost: str | None = None
        self._ndjson = ndjson
        self._first = True
        # CSV comes back as CSV with the same header: its cells are text, and stay so.
        self._csv = CsvWriter(self._file.stream, csv_header) if csv_header is not None else None
        if not ndjson and self._csv is None:
            self._file.stream.write("[")

    def add(self, outcome: RecordOutcome) -> None:
        """Keep ``outcome``'s record if it was not synced."""
        if outcome.status in DONE or self._lost is not None:
            return
        try:
            self._add(outcome)
        except OSError as e:  # a full disk: the run goes on, and commit() says so
            self._lost = e.strerror or type(e).__name__

    def _add(self, outcome: RecordOutcome) -> None:
        if isinstance(outcome.record, UnreadTail):
            self._add_tail(outcome.record)
            return
        if self._csv is not None:
            self._csv.write(outcome.record)
            return
        record = outcome.record
        if isinstance(record, UnreadableRecord) and record.text is not None:
            # As it stands in the data file, bytes that are not UTF-8 included (written back as
            # the bytes they were), so that a rerun finds it invalid for the same reason.
            # Only JSON's own whitespace is taken off: another space character is what made an
            # NDJSON line unreadable, and must go back with it.
            text = record.text.strip(" \t\r\n")
        else:
            text = _record_json(record)
        if self._ndjson:
            self._file.stream.write(text + "\n")
        else:
            self._file.stream.write(("\n  " if self._first else ",\n  ") + text)
        self._first = False

    def _add_tail(self, tail: UnreadTail) -> None:
        """Copy ``tail`` as it stands in the data file: records of the same format, in file order."""
        json_array = not self._ndjson and self._csv is None
        if json_array:
            self._file.stream.write("\n  " if self._first else ",\n  ")
        last = ""
        for text in tail.chunks():
            self._file.stream.write(text)
            last = text[-1:] or last
        if self._ndjson:
            self._file.stream.write("\n")
        elif self._csv is not None and last not in ("\n", "\r"):
            # The data file's last row may lack a line break; a row written after it needs one.
            self._file.stream.write("\r\n")
        self._first = False

    def commit(self) -> None:
        """Finish the file and move it into place; :class:`OutputLost` when it could not be
        written (nothing is then left at the path)."""
        if self._lost is None:
            try:
                if not self._ndjson and self._csv is None:
                    self._file.stream.write("]\n" if self._first else "\n]\n")
                self._file.commit()
                return
            except OSError as e:
                self._lost = e.strerror or type(e).__name__
        self._file.discard()
        raise OutputLost(f"--failed {self.path}: could not be written ({self._lost})")

    def discard(self) -> None:
        """Remove the unfinished file."""
        self._file.discard()

    def abandon(self) -> None:
        """Remove the unfinished file, and nothing else: the process is about to exit at once."""
        self._file.abandon()

"""The ``--failed`` file: every record that was not synced, as a data file to run again."""

from __future__ import annotations

import json
from decimal import Decimal

from .atomic import AtomicFile
from .errors import OutputError
from .outcome import RecordOutcome, Status

# Outcomes whose records need nothing more.
_DONE = frozenset({Status.SYNCED, Status.UNCHANGED})


def _number(value: object) -> object:
    # ijson reads non-integers as Decimal; a float that overflows is written as its text.
    if isinstance(value, Decimal):
        number = float(value)
        return number if abs(number) != float("inf") else str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


_record_json = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "), default=_number).encode


class FailedRecordsFile:
    """Collects every record that was not synced, unchanged, as a data file cio-sync can read.

    ``cio-sync --data PATH`` with the same configuration then retries exactly those records.
    Records of one person keep their file order.
    """

    def __init__(self, path: str, ndjson: bool = False) -> None:
        if path == "-":
            raise OutputError("--failed needs a file path: standard output is kept for --report -")
        self._file = AtomicFile(path, "--failed")
        self._ndjson = ndjson
        self._first = True
        if not ndjson:
            self._file.stream.write("[")

    def add(self, outcome: RecordOutcome) -> None:
        """Keep ``outcome``'s record if it was not synced."""
        if outcome.status in _DONE:
            return
        text = _record_json(outcome.record)
        if self._ndjson:
            self._file.stream.write(text + "\n")
        else:
            self._file.stream.write(("\n  " if self._first else ",\n  ") + text)
        self._first = False

    def commit(self) -> None:
        """Finish the file and move it into place."""
        if not self._ndjson:
            self._file.stream.write("]\n" if self._first else "\n]\n")
        self._file.commit()

    def discard(self) -> None:
        """Remove the unfinished file."""
        self._file.discard()

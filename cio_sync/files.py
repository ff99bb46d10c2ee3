"""The files for machines: ``--failed`` (records to retry) and ``--report`` (a JSON summary)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from .errors import OutputError
from .report import RecordOutcome, Status, SyncResult

REPORT_VERSION = 1
# Outcomes whose records need nothing more.
_DONE = frozenset({Status.SYNCED, Status.UNCHANGED})


def _number(value: object) -> object:
    # ijson reads non-integers as Decimal; a float that overflows is written as its text.
    if isinstance(value, Decimal):
        number = float(value)
        return number if abs(number) != float("inf") else str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


_record_json = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "), default=_number).encode


class _AtomicFile:
    """A file written beside its final path and renamed over it only when complete.

    A run that dies half-way leaves the previous file (or none), never a truncated one.
    """

    def __init__(self, path: str, option: str) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise OutputError(f"{option} {path}: is a directory")
        try:
            fd, self._temp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        except OSError as e:
            raise OutputError(f"{option} {path}: cannot write there: {e.strerror}") from None
        self.stream: IO[str] = os.fdopen(fd, "w", encoding="utf-8")

    def commit(self) -> None:
        """Flush to disk and move the file into place."""
        self.stream.flush()
        os.fsync(self.stream.fileno())
        self.stream.close()
        os.replace(self._temp, self.path)

    def discard(self) -> None:
        """Remove the unfinished file."""
        self.stream.close()
        Path(self._temp).unlink(missing_ok=True)


class FailedRecordsFile:
    """Collects every record that was not synced, unchanged, as a data file cio-sync can read.

    ``cio-sync --data PATH`` with the same configuration then retries exactly those records.
    Records of one person keep their file order.
    """

    def __init__(self, path: str, ndjson: bool = False) -> None:
        if path == "-":
            raise OutputError("--failed needs a file path: standard output is kept for --report -")
        self._file = _AtomicFile(path, "--failed")
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


class ReportFile:
    """A JSON report of the run: counts, statuses, resends, rate and every record not synced.

    Problems are spooled to a temporary file as they arrive, so a run with a million failures
    needs no more memory than one with none. ``-`` writes the report to standard output.
    """

    def __init__(self, path: str) -> None:
        # Opened now, so that an unwritable path is refused before anything is sent.
        self._target = None if path == "-" else _AtomicFile(path, "--report")
        self._problems = tempfile.TemporaryFile("w+", encoding="utf-8", prefix="cio-sync-report-")  # noqa: SIM115
        self._count = 0

    def add(self, outcome: RecordOutcome) -> None:
        """Note ``outcome`` if its record was not synced."""
        if outcome.status in _DONE:
            return
        entry = {
            "index": outcome.index,
            "id": outcome.person_id,
            "outcome": outcome.status.value,
            "status": outcome.http_status,
            "reason": outcome.reason,
        }
        self._problems.write(("," if self._count else "") + "\n    " + json.dumps(entry, ensure_ascii=False))
        self._count += 1

    def commit(self, head: dict[str, Any]) -> None:
        """Write ``head`` (see :func:`run_summary`) and the problems: to the file atomically, or
        to standard output for ``-``."""
        text = json.dumps({"version": REPORT_VERSION, **head}, indent=2, ensure_ascii=False)
        if self._target is None:
            self._write(sys.stdout, text)
            sys.stdout.flush()
        else:
            self._write(self._target.stream, text)
            self._target.commit()
        self._problems.close()
        self._target = None

    def fail(self, message: str, exit_code: int, dry_run: bool) -> None:
        """Write a report of a run that could not go on (no stale report is left behind)."""
        self._problems.seek(0)
        self._problems.truncate()
        self._count = 0
        self.commit({"dry_run": dry_run, "exit_code": exit_code, "error": message, "total": 0, "counts": {}})

    def discard(self) -> None:
        """Drop what was collected, and the unfinished file (a no-op once committed)."""
        if self._target is not None:
            self._target.discard()
        self._problems.close()

    def _write(self, out: IO[str], head: str) -> None:
        out.write(head[:-2] + ',\n  "problems": [')
        self._problems.seek(0)
        while chunk := self._problems.read(1 << 16):
            out.write(chunk)
        out.write("\n  ]\n}\n" if self._count else "]\n}\n")


def run_summary(result: SyncResult, exit_code: int) -> dict[str, Any]:
    """The report's fields for a run: exit code, counts, statuses, resends, time and rate."""
    return {
        "dry_run": False,
        "exit_code": exit_code,
        "stopped": result.stopped,
        "elapsed_seconds": round(result.elapsed, 3),
        "records_per_second": round(result.rate, 1),
        "total": result.total,
        "counts": {
            "synced": result.synced,
            "unchanged": result.unchanged,
            "failed": result.failed,
            "invalid": result.invalid,
            "not_attempted": result.not_attempted,
        },
        "http_statuses": {str(k): v for k, v in result.statuses.items()},
        "retries": result.retries,
    }

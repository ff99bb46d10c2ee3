"""The ``--report`` file: a JSON account of a run, a dry run, or a run that could not go on.

Its form is ``schemas/report.schema.json``; every report is built here.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any

from ..engine.causes import cause_entries
from ..engine.mirror import MirrorResult
from ..engine.plan import Plan
from ..engine.tally import SyncResult
from ..errors import OutputError, OutputLost
from ..outcome import DONE, RecordOutcome
from ..redact import NO_SECRETS
from .atomic import AtomicFile
from .removals import removal_report
from .terminal import json_line

REPORT_VERSION = 1
# Outside JSON's syntax, which is ASCII, these only occur within strings, where \u escapes stand for them.
_NOT_ASCII = re.compile(r"[^\x00-\x7f]")


class ReportFile:
    """A JSON report of the run: counts, statuses, resends, rate and every record not synced.

    Problems are spooled to a temporary file as they arrive, so a run with a million failures
    needs no more memory than one with none. ``-`` writes the report to standard output, as
    UTF-8 whatever its encoding. Every reason and error passes through ``redact``, so the report
    holds no credential whatever a server or the data file said.
    """

    def __init__(self, path: str, redact: Callable[[str], str] = NO_SECRETS) -> None:
        # Opened now, so that an unwritable path is refused before anything is sent.
        if path == "-" and sys.stdout is None:
            raise OutputError("--report -: standard output is closed")
        self._target = None if path == "-" else AtomicFile(path, "--report")
        self._path = path
        self._redact = redact
        self._lost = False
        self._lost_why = ""
        self._committed = False
        self._problems = tempfile.TemporaryFile("w+", encoding="utf-8", prefix="cio-sync-report-")  # noqa: SIM115 - closed by commit or discard
        self._count = 0

    def add(self, outcome: RecordOutcome) -> None:
        """Note ``outcome`` if its record was not synced."""
        if outcome.status in DONE or self._lost:
            return
        entry = {
            "index": outcome.index,
            "id": outcome.person_id,
            "outcome": outcome.status.value,
            "status": outcome.http_status,
            "reason": None if outcome.reason is None else self._redact(outcome.reason),
        }
        try:
            self._problems.write(("," if self._count else "") + "\n    " + _dumps(entry))
        except OSError as e:  # a full disk: the run goes on, and the commit says so
            self._lost = True
            self._lost_why = e.strerror or type(e).__name__
        self._count += 1

    def commit_run(self, result: SyncResult, exit_code: int, error: str | None = None) -> None:
        """Write the report of a finished (or stopped) run; ``error`` when it could not go on."""
        self._commit(
            {
                **({"error": self._redact(error)} if error is not None else {}),
                "dry_run": False,
                "exit_code": exit_code,
                "stopped": result.stopped.value if result.stopped is not None else None,
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
                "requests": result.requests,
                "http_statuses": {str(k): v for k, v in result.statuses.items()},
                "retries": result.retries,
                "causes": cause_entries(result.causes, self._redact),
                **_removals(result.mirror, result.unsuppressed, self._redact),
            }
        )

    def commit_plan(self, plan: Plan, exit_code: int) -> None:
        """Write the report of a dry run: with a ledger, how the valid records compare with it."""
        counts: dict[str, int] = {"valid": plan.valid, "invalid": plan.invalid, "held_back": plan.held_back}
        counts |= {"people": plan.people, "to_send": plan.to_send}
        if plan.new is not None:
            counts |= {"new": plan.new, "changed": plan.changed or 0, "unchanged": plan.unchanged or 0}
        causes = cause_entries(plan.causes, self._redact)
        head = {"dry_run": True, "exit_code": exit_code, "total": plan.total, "counts": counts, "causes": causes}
        self._commit({**head, **_removals(plan.mirror, plan.unsuppressed, self._redact)})

    def fail(self, message: str, exit_code: int, dry_run: bool) -> None:
        """Write the report of a run that could not go on (no stale report is left behind)."""
        if self._lost or self._committed:  # the report could not be written, or was already
            return
        self._problems.seek(0)
        self._problems.truncate()
        self._count = 0
        error = self._redact(message)
        self._commit({"dry_run": dry_run, "exit_code": exit_code, "error": error, "total": 0, "counts": {}})

    def discard(self) -> None:
        """Drop what was collected, and the unfinished file (a no-op once committed)."""
        if self._target is not None:
            self._target.discard()
        self._problems.close()

    def abandon(self) -> None:
        """Remove the unfinished file, and nothing else: the process is about to exit at once."""
        if self._target is not None:
            self._target.abandon()

    def _commit(self, head: dict[str, Any]) -> None:
        text = _dumps({"version": REPORT_VERSION, **head}, indent=2)
        if self._lost:  # the problems could not be spooled: the report would not be whole
            if self._target is not None:
                self._target.discard()
            raise OutputLost(f"--report {self._path}: could not be written ({self._lost_why})")
        if self._target is None:
            try:
                self._write_stdout(text)
            except (OSError, ValueError) as e:  # a closed pipe (the reader went away), a full disk
                self._lost = True
                _silence_stdout()
                reason = e.strerror if isinstance(e, OSError) else "it is closed"
                raise OutputLost(f"--report -: cannot write the report to standard output: {reason}") from None
        else:
            try:
                self._write(self._target.stream, text)
                self._target.commit()
            except OSError as e:
                self._lost = True
                self._target.discard()
                raise OutputLost(f"--report {self._path}: could not be written ({e.strerror})") from None
        self._committed = True
        self._problems.close()
        self._target = None

    def _write(self, out: IO[str], head: str) -> None:
        for part in self._parts(head):
            out.write(part)

    def _write_stdout(self, head: str) -> None:
        """The report on standard output, as UTF-8 bytes: JSON is UTF-8 by definition, and
        standard output's own encoding (ASCII, say) may not hold every id."""
        stdout = sys.stdout
        binary: IO[bytes] | None = getattr(stdout, "buffer", None)
        if binary is None:  # a text-only stream stands in for it: escapes keep any id intact
            for part in self._parts(head):
                stdout.write(_NOT_ASCII.sub(lambda m: json.dumps(m.group()).strip('"'), part))
            stdout.flush()
            return
        stdout.flush()  # anything written as text before must come first
        for part in self._parts(head):
            binary.write(part.encode("utf-8"))
        binary.flush()

    def _parts(self, head: str) -> Iterator[str]:
        """The report's text in pieces: the head, then the spooled problems."""
        yield head[:-2] + ',\n  "problems": ['
        self._problems.seek(0)
        while chunk := self._problems.read(1 << 16):
            yield chunk
        yield "\n  ]\n}\n" if self._count else "]\n}\n"


def _removals(mirror: MirrorResult | None, unsuppressed: Sequence[str], redact: Callable[[str], str]) -> dict[str, Any]:
    """The ``removals`` key, when mirroring or a comeback has anything to say."""
    section = removal_report(mirror, unsuppressed, redact)
    return {} if section is None else {"removals": section}


def _dumps(value: object, indent: int | None = None) -> str:
    """JSON text as the report holds it: UTF-8 characters as they are, the characters that could
    mislead a terminal (and lone surrogates, which UTF-8 cannot hold) as escapes."""
    return json_line(json.dumps(value, indent=indent, ensure_ascii=False))


def _silence_stdout() -> None:
    """Point standard output at /dev/null, so that the interpreter's last flush cannot fail too
    (it would print a traceback-like warning and change the exit status)."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError):
        return

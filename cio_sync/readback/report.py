"""What ``verify`` tells the user: the summary line, the first differences, and the ``--report`` file."""

from __future__ import annotations

import json
import sys
from typing import IO, Any

from ..errors import OutputLost
from ..outputs.atomic import AtomicFile
from .expected import Verdict
from .verify import Difference, VerifyResult


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``1 person``, ``5,000 people``."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def summary(result: VerifyResult) -> str:
    """``5,000 people: 4,993 hold the file, 5 differ, 2 missing`` (and what was not read back)."""
    line = (
        f"{count(result.checked, 'person', 'people')}: {result.matching:,} "
        f"{'holds' if result.matching == 1 else 'hold'} the file, {result.differing:,} "
        f"{'differs' if result.differing == 1 else 'differ'}, {result.missing:,} missing"
    )
    if result.unchecked:
        line += f"; {result.unchecked:,} not read back"
    if result.sample is not None and result.chosen < result.people:
        line += (
            f" (a sample of {result.chosen:,} of the file's {result.people:,} people; "
            f"--sample {result.sample} --seed {result.seed} repeats it)"
        )
    return line


def finding(person: str, verdict: Verdict, difference: Difference | None) -> str:
    """One finding in one line: a person missing, or one attribute's two values."""
    if verdict is Verdict.MISSING or difference is None:
        return f"{person}: missing from the workspace"
    held = (
        "nothing" if difference.workspace_value is None else json.dumps(difference.workspace_value, ensure_ascii=False)
    )
    return f'{person}: "{difference.attribute}" is {difference.file_value} in the file, {held} in the workspace'


class ReportFile:
    """``--report PATH``: a JSON document of every person who differs or is missing, then the summary.

    Written as findings arrive (memory stays flat however many there are) beside its path, and moved
    into place when complete; ``-`` writes to standard output.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._file = AtomicFile(path, "--report") if path != "-" else None
        self._stream: IO[str] = self._file.stream if self._file is not None else sys.stdout
        self._first = True
        self._lost: str | None = None
        self._write('{\n  "people": [')

    def add(self, person: str, verdict: Verdict, differences: list[Difference]) -> None:
        """One person who differs or is missing."""
        entry: dict[str, Any] = {"person": person, "verdict": verdict.value}
        if verdict is Verdict.DIFFERS:
            entry["differences"] = [
                {"attribute": d.attribute, "file": json.loads(d.file_value), "workspace": d.workspace_value}
                for d in differences
            ]
        self._write(("\n    " if self._first else ",\n    ") + json.dumps(entry, ensure_ascii=False))
        self._first = False

    def commit(self, result: VerifyResult, exit_code: int) -> None:
        """Finish the document with the summary and move it into place."""
        document = {
            "records": result.records,
            "invalid": result.invalid,
            "people": result.people,
            "chosen": result.chosen,
            "matching": result.matching,
            "differing": result.differing,
            "missing": result.missing,
            "unchecked": result.unchecked,
            "sample": result.sample,
            "seed": result.seed,
            "stopped": result.stopped.value if result.stopped is not None else None,
            "error": result.error,
            "requests": result.requests,
            "seconds": round(result.seconds, 3),
            "exitCode": exit_code,
        }
        self._write(("\n  ],\n" if not self._first else "],\n") + '  "summary": ' + json.dumps(document) + "\n}\n")
        if self._lost is not None:
            self.discard()
            raise OutputLost(f"--report {self.path}: could not be written ({self._lost})")
        if self._file is not None:
            try:
                self._file.commit()
            except OSError as e:
                self.discard()
                raise OutputLost(f"--report {self.path}: could not be written ({e.strerror})") from None
        else:
            self._stream.flush()

    def discard(self) -> None:
        """Remove the unfinished file."""
        if self._file is not None:
            self._file.discard()

    def _write(self, text: str) -> None:
        if self._lost is not None:
            return
        try:
            self._stream.write(text)
        except OSError as e:  # a full disk: the run goes on, and commit() says so
            self._lost = e.strerror or type(e).__name__

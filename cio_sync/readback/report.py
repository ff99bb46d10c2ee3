"""What ``verify`` tells the user: the summary line, the first differences, and the ``--report`` file."""

from __future__ import annotations

import io
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from typing import IO, Any

from ..errors import OutputError, OutputLost
from ..outputs.atomic import AtomicFile
from ..outputs.terminal import json_line
from ..redact import NO_SECRETS
from .compare import shown
from .expected import Verdict
from .verify import Difference, VerifyResult

Redact = Callable[[str], str]


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


def redacted(difference: Difference, redact: Redact) -> Difference:
    """``difference`` with every credential masked: a key pasted into the wrong column of the data
    file, or held by the workspace, is a value like any other until it is shown."""
    held = difference.workspace_value
    return Difference(
        redact(difference.person),
        redact(difference.attribute),
        _redacted_json(difference.file_value, redact),
        None if held is None else redact(held),
    )


def _redacted_json(text: str, redact: Redact) -> str:
    """JSON text with every credential in it masked, still JSON (the report parses it)."""
    try:
        value = json.loads(text)
        masked = _masked(value, redact)
        return text if masked == value else shown(masked)
    except (ValueError, RecursionError):  # not expected of the file's values: mask the whole text
        return json.dumps(redact(text), ensure_ascii=False)


def _masked(value: Any, redact: Redact) -> Any:
    """A JSON value with its credentials masked, strings inside objects and arrays (keys too) included."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [_masked(item, redact) for item in value]
    if isinstance(value, dict):
        return {redact(key): _masked(item, redact) for key, item in value.items()}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # A site id can be all digits, and a column of numbers can hold it.
        text = json.dumps(value)
        return value if redact(text) == text else redact(text)
    return value


class ReportFile:
    """``--report PATH``: a JSON document of every person who differs or is missing, then the summary.

    Written as findings arrive (memory stays flat however many there are) beside its path, and moved
    into place when complete; ``-`` is written to a temporary file, and copied to standard output
    when complete, so that a run that stops leaves no half a document there either. Every text
    from the data file or a server passes through ``redact``.
    """

    def __init__(self, path: str, redact: Redact = NO_SECRETS) -> None:
        if path == "-" and sys.stdout is None:
            raise OutputError("--report -: standard output is closed")
        self.path = path
        self._redact = redact
        self._file = AtomicFile(path, "--report") if path != "-" else None
        if self._file is not None:
            self._stream: IO[str] = self._file.stream
        else:
            self._stream = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 - closed by commit() or discard()
        self._first = True
        self._lost: str | None = None
        self._write('{\n  "people": [')

    def add(self, person: str, verdict: Verdict, differences: list[Difference]) -> None:
        """One person who differs or is missing."""
        entry: dict[str, Any] = {"person": self._redact(person), "verdict": verdict.value}
        if verdict is Verdict.DIFFERS:
            masked = [redacted(d, self._redact) for d in differences]
            entry["differences"] = [
                {"attribute": d.attribute, "file": json.loads(d.file_value), "workspace": d.workspace_value}
                for d in masked
            ]
        self._write(("\n    " if self._first else ",\n    ") + json_line(json.dumps(entry, ensure_ascii=False)))
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
            "error": None if result.error is None else self._redact(result.error),
            "requests": result.requests,
            "seconds": round(result.seconds, 3),
            "exitCode": exit_code,
        }
        self._write(
            ("\n  ],\n" if not self._first else "],\n")
            + '  "summary": '
            + json_line(json.dumps(document, ensure_ascii=False))
            + "\n}\n"
        )
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
            self._copy_out()

    def _copy_out(self) -> None:
        """The report on standard output as UTF-8 bytes, whatever its encoding (ASCII, say)."""
        try:
            self._stream.seek(0)
            binary: IO[bytes] | None = getattr(sys.stdout, "buffer", None)
            if binary is None or not isinstance(self._stream, io.TextIOWrapper):  # a text-only stream stands in
                shutil.copyfileobj(self._stream, sys.stdout)
                sys.stdout.flush()
            else:
                sys.stdout.flush()  # anything written as text before comes first
                shutil.copyfileobj(self._stream.buffer, binary)
                binary.flush()
        except OSError as e:  # a closed pipe, a full disk
            raise OutputLost(f"--report -: could not be written ({e.strerror or type(e).__name__})") from None
        finally:
            self._stream.close()

    def discard(self) -> None:
        """Remove the unfinished file."""
        if self._file is not None:
            self._file.discard()
        else:
            self._stream.close()

    def abandon(self) -> None:
        """Remove the unfinished file, and nothing else: safe from a signal handler about to exit."""
        if self._file is not None:
            self._file.abandon()

    def _write(self, text: str) -> None:
        if self._lost is not None:
            return
        try:
            self._stream.write(text)
        except OSError as e:  # a full disk: the run goes on, and commit() says so
            self._lost = e.strerror or type(e).__name__

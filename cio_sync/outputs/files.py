"""The run's output files, ``--failed`` and ``--report``: where they may go, and one owner that
opens them before anything is sent and, at the end, commits or discards them.

The ledger (``--state``) is the engine's: it is written as the run goes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from ..engine.plan import Plan
from ..engine.tally import SyncResult
from ..errors import CioSyncError, DataFileChanged, OutputError, OutputLost
from ..input.datafile import NDJSON, DataFile
from ..outcome import RecordOutcome, StopReason
from ..redact import NO_SECRETS
from .atomic import remove_leftovers
from .failed import FailedRecordsFile, check_failed_format
from .report import ReportFile


def check_output_paths(*, data: str, config: str, state: str | None, failed: str | None, report: str | None) -> None:
    """Refuse ``--failed`` or ``--report`` naming an input or each other, before anything is sent.

    Paths are compared as files (symbolic links, ``..`` and hard links resolved), not as text.
    Raises :class:`~cio_sync.errors.OutputError`.
    """
    inputs = [("the configuration file (--config)", config)]
    if data != "-":
        inputs.append(("the data file (--data)", data))
    if state is not None:
        inputs += [("the ledger (--state)", state), ("the ledger's journal", state + "-wal")]
    outputs = [(option, path) for option, path in (("--failed", failed), ("--report", report)) if path and path != "-"]
    for n, (option, path) in enumerate(outputs):
        for what, other in [*inputs, *((f"the {o} file", p) for o, p in outputs[:n])]:
            if _same_file(path, other):
                raise OutputError(f"{option} {path}: is also {what}; writing it would destroy that: use another path")


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): compare where they would be
        return Path(a).resolve() == Path(b).resolve()


def remove_stale(path: str, *, keep: Sequence[str | None] = ()) -> bool:
    """Remove the file at ``path`` if there is one, unless it is one of the files in ``keep``
    (the run's inputs); True when something was removed."""
    target = Path(path)
    if path == "-" or not target.is_file():
        return False
    if any(other and other != "-" and _same_file(path, other) for other in keep):
        return False
    try:
        target.unlink()
    except OSError:
        return False
    return True


class Outputs:
    """``--failed`` and ``--report`` for one run, from opening to the end.

    :meth:`open` makes their temporary files (an unwritable path is refused there) and touches
    no file at either path. Only once every check has passed and the run will go ahead
    (:meth:`go_ahead`) are the outputs this run's: the leftovers of earlier runs are cleaned then,
    and from then on the run ends in :meth:`commit_run`, :meth:`commit_plan` or :meth:`fail`.
    A run refused before that leaves both paths exactly as they were: they may be another run's.
    Closing discards whatever was not committed.
    """

    def __init__(
        self,
        failed: str | None,
        report: str | None,
        *,
        dry_run: bool,
        inputs: Sequence[str | None],
        note: Callable[[str], None],
    ) -> None:
        self._failed_path = failed
        self._report_path = report
        self._dry_run = dry_run
        self._inputs = inputs
        self._note = note
        self._failed: FailedRecordsFile | None = None
        self._report: ReportFile | None = None
        self._ahead = False

    def open(self, source: DataFile, format_given: bool, redact: Callable[[str], str] = NO_SECRETS) -> None:
        """Make the temporary files; :class:`OutputError` when a path cannot be written.

        ``--failed`` is written in the data file's own format, so that it can be fed back as it is.
        """
        if self._failed_path is not None:
            if not format_given:
                check_failed_format(self._failed_path, source.format)
            self._failed = FailedRecordsFile(
                self._failed_path, ndjson=source.format == NDJSON, csv_header=source.header
            )
        if self._report_path is not None:
            self._report = ReportFile(self._report_path, redact)

    def sinks(self) -> list[Callable[[RecordOutcome], None]]:
        """What takes each record's outcome."""
        return [f.add for f in (self._failed, self._report) if f is not None]

    def go_ahead(self) -> None:
        """Every check passed: the outputs are this run's. Removes earlier runs' temporary files."""
        self._ahead = True
        for path in (self._failed_path, self._report_path):
            if path is not None and path != "-":
                remove_leftovers(path)

    def commit_run(self, result: SyncResult, code: int) -> CioSyncError | None:
        """Write both outputs for a run that ended with ``code``; the problem that changes how it
        ends, if any: a lost ledger or output (exit 74), a data file that changed (no ``--failed``
        can bring the workspace to a file that is no longer there)."""
        problem: CioSyncError | None = None
        if result.stopped is StopReason.LEDGER_LOST:
            problem = OutputLost(result.error or "the ledger could not be written")
        elif result.stopped is StopReason.DATA_FILE_CHANGED:
            problem = DataFileChanged(result.error or "the data file changed while being read")
        if isinstance(problem, DataFileChanged):
            self._drop_failed()
        else:
            problem = self._commit_failed(problem)
        if self._report is not None:
            exit_code, error = (problem.exit_code, str(problem)) if problem else (code, result.error)
            try:
                self._report.commit_run(result, exit_code, error)
            except OutputLost as e:
                problem = _both(problem, e)
        return problem

    def commit_plan(self, plan: Plan, code: int) -> CioSyncError | None:
        """Write both outputs for a dry run that ended with ``code``; an output lost, if any."""
        problem = self._commit_failed(None)
        if self._report is not None:
            try:
                self._report.commit_plan(plan, problem.exit_code if problem else code)
            except OutputLost as e:
                problem = _both(problem, e)
        return problem

    def fail(self, message: str, code: int) -> None:
        """The run went ahead, then could not go on: the report says why, and no ``--failed``
        of an earlier run is left (it would not say what this run left to do). Before
        :meth:`go_ahead` it does nothing: a refused run touches no output."""
        if not self._ahead:
            return
        self._drop_failed()
        if self._report is not None:
            try:
                self._report.fail(message, code, self._dry_run)
            except OutputLost as e:
                self._note(str(e))

    def abandon(self) -> None:
        """Remove the temporary files and nothing else: the process is about to exit at once."""
        for output in (self._failed, self._report):
            if output is not None:
                output.abandon()

    def close(self) -> None:
        """Discard whatever was not committed."""
        for output in (self._failed, self._report):
            if output is not None:
                output.discard()

    def __enter__(self) -> Outputs:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _commit_failed(self, problem: CioSyncError | None) -> CioSyncError | None:
        if self._failed is not None:
            try:
                self._failed.commit()
            except OutputLost as e:
                # An earlier run's file left in its place would be taken for this run's.
                self._drop_failed()
                return _both(problem, e)
        return problem

    def _drop_failed(self) -> None:
        """Discard this run's ``--failed``, and remove one an earlier run left (not in a dry run,
        which changes nothing in the workspace)."""
        if self._failed is None:
            return
        self._failed.discard()
        if not self._dry_run and remove_stale(self._failed.path, keep=self._inputs):
            self._note(f"removed {self._failed.path}: it was left by an earlier run, and this run could not finish")


def _both(first: CioSyncError | None, second: OutputLost) -> OutputLost:
    """One error naming every output that could not be written."""
    return second if first is None else OutputLost(f"{first}; {second}")

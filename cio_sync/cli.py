"""The ``cio-sync`` command: options in, one library call, a summary out. Exit codes live here."""

from __future__ import annotations

import math
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from enum import Enum
from types import FrameType
from typing import Annotated

import typer

from .client import DEFAULT_GIVE_UP_AFTER, DEFAULT_READ_TIMEOUT, DEFAULT_RETRIES, MAX_TIMEOUT, HttpSettings
from .config import Config, Mode, Transport, load_config
from .console import Console, JsonConsole, TextConsole
from .datafile import NDJSON, DataFile, open_data_file
from .errors import CioSyncError, ConfigError, DataFileChanged, ExitCode, Interrupted, OutputLost
from .failed import FailedRecordsFile, check_failed_format
from .ledger import Ledger
from .mapping import check_columns
from .outcome import RecordOutcome, Stop, StopReason
from .outputs import check_output_paths, remove_stale
from .plan import plan
from .report import ReportFile
from .sync import sync
from .tally import SyncResult
from .version import __version__

# \b keeps click from rewrapping the paragraph after it: a command broken mid-way cannot be pasted.
EXAMPLES = """\
Examples:

\b
  cio-sync --config configuration.json --data data.json
  cio-sync -config ./configuration.json -data ./data.json
  export-users | cio-sync --config configuration.json --data - --format ndjson
  cio-sync --config configuration.json --data people.csv --failed retry.csv
  cio-sync --config c.json --data d.json --failed retry.json --report report.json
  cio-sync --config c.json --data retry.json    # retries exactly the failed records

Credentials come from the configuration file or from CIO_SITE_ID and CIO_API_KEY, which win.

Exit codes: 0 all synced; 1 some records failed, were invalid or not attempted; 2 nothing
sent (bad arguments or input files); 3 the workspace refused the credentials; 4 the Track
API could not be reached; 70 a bug in cio-sync; 74 an output (--failed, --report, --state)
could not be written after records may have been sent; 130 interrupted (Ctrl-C); 143
terminated (SIGTERM).
"""

# How many requests --dry-run shows.
DRY_RUN_SAMPLES = 3


class LogFormat(str, Enum):
    """How messages on standard error are written."""

    text = "text"
    json = "json"


class DataFormat(str, Enum):
    """How the data file is laid out."""

    json = "json"
    ndjson = "ndjson"
    csv = "csv"


app = typer.Typer(
    add_completion=False,
    # Tracebacks with local variables could show the API key.
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


def _finite(value: float | None) -> float | None:
    # Not every click's FloatRange refuses nan, which compares false with both of its bounds.
    if value is not None and math.isnan(value):
        raise typer.BadParameter("nan is not a number")
    return value


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"cio-sync {__version__}")
        raise typer.Exit()


@app.command(epilog=EXAMPLES)
def run(
    config: Annotated[str, typer.Option("--config", "-config", metavar="PATH", help="The configuration file (JSON).")],
    data: Annotated[
        str,
        typer.Option("--data", "-data", metavar="PATH", help="The data file; - reads standard input."),
    ],
    data_format: Annotated[
        DataFormat | None,
        typer.Option(
            "--format",
            help=(
                "json: one array of objects; ndjson: one object per line; csv: a header row, then a row per "
                "record. Default: by suffix (.ndjson/.jsonl, .csv), else json."
            ),
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", metavar="URL", help="Send to this Track API URL instead of the configured one."),
    ] = None,
    rate_limit: Annotated[
        float | None,
        typer.Option(
            min=0.1,
            max=1e6,
            callback=_finite,
            metavar="PER_SECOND",
            help="At most this many requests per second (all workers).",
        ),
    ] = None,
    transport: Annotated[
        Transport | None,
        typer.Option(help="v1: a PUT per person; batch: POST /api/v2/batch, many people a request."),
    ] = None,
    mode: Annotated[
        Mode | None,
        typer.Option(help="upsert creates missing people; update (_update: true) only changes existing ones."),
    ] = None,
    state: Annotated[
        str | None,
        typer.Option(metavar="PATH", help="A ledger (SQLite) of what was synced: unchanged people are skipped."),
    ] = None,
    full: Annotated[
        bool, typer.Option("--full", help="With --state: send everyone, but still record what succeeded.")
    ] = False,
    retries: Annotated[
        int, typer.Option(min=0, max=20, metavar="N", help="Resends of a request after a transient failure.")
    ] = DEFAULT_RETRIES,
    give_up_after: Annotated[
        float,
        typer.Option(
            min=1,
            max=86400,
            callback=_finite,
            metavar="SECONDS",
            help="Stop starting requests when none has made progress for this long (only 429, 5xx, no answer).",
        ),
    ] = DEFAULT_GIVE_UP_AFTER,
    timeout: Annotated[
        float,
        typer.Option(
            min=0.1, max=MAX_TIMEOUT, callback=_finite, metavar="SECONDS", help="How long to wait for each answer."
        ),
    ] = DEFAULT_READ_TIMEOUT,
    failed: Annotated[
        str | None,
        typer.Option(metavar="PATH", help="Write every record not synced here, as a data file to re-run."),
    ] = None,
    report: Annotated[
        str | None,
        typer.Option(metavar="PATH", help="Write a JSON report of the run here; - for standard output."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check and map everything, show what would be sent, send nothing.")
    ] = False,
    log_format: Annotated[
        LogFormat, typer.Option(help="text for people, json for one JSON object per line.")
    ] = LogFormat.text,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing unless something went wrong.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Upsert every person in a data file into a Customer.io workspace (Track API)."""
    # Long only for its option declarations, which typer reads from this signature: the work is in
    # _run and the functions below.
    console: Console = JsonConsole() if log_format is LogFormat.json else TextConsole(quiet=quiet)
    options = _Options(
        config=config,
        data=data,
        data_format=data_format,
        base_url=base_url,
        rate_limit=rate_limit,
        transport=transport,
        mode=mode,
        state=state,
        full=full,
        failed=failed,
        report=report,
        dry_run=dry_run,
        timeout=timeout,
        retries=retries,
        give_up_after=give_up_after,
    )
    raise typer.Exit(_run(options, console))


@dataclass(frozen=True)
class _Options:
    """What the command was asked to do, apart from how it speaks to people."""

    config: str
    data: str
    data_format: DataFormat | None
    base_url: str | None
    rate_limit: float | None
    transport: Transport | None
    mode: Mode | None
    state: str | None
    full: bool
    failed: str | None
    report: str | None
    dry_run: bool
    timeout: float
    retries: int
    give_up_after: float

    def http(self) -> HttpSettings:
        """The timeouts and retry policy the options ask for."""
        return HttpSettings(read_timeout=self.timeout, retries=self.retries, give_up_after=self.give_up_after)


def _run(options: _Options, console: Console) -> ExitCode:
    """Run the command; every error ends here, as one message and its exit code."""
    stop = Stop()
    with _stop_on_signals(stop, console) as signals:
        try:
            return _execute(options, console, stop, signals)
        except CioSyncError as e:
            console.error(str(e), e.exit_code)
            return e.exit_code
        except Exception as e:  # a bug: say so in one line rather than with a traceback
            console.error(f"internal error: {type(e).__name__}: {e} (please report this)", ExitCode.INTERNAL_ERROR)
            return ExitCode.INTERNAL_ERROR


def _execute(o: _Options, console: Console, stop: Stop, signals: _Signals) -> ExitCode:
    """Check the inputs, open the files, sync (or plan), and write the outputs."""
    if o.full and o.state is None:
        raise ConfigError("--full needs --state: it resends everyone a ledger would skip, and there is none")
    with ExitStack() as outputs:
        if o.failed is not None and not o.dry_run:
            inputs = (o.data, o.config, o.state, o.state and o.state + "-wal", o.report)
            outputs.enter_context(_no_stale_failed(o.failed, inputs, console))
        check_output_paths(data=o.data, config=o.config, state=o.state, failed=o.failed, report=o.report)
        report_file = outputs.enter_context(_reporting(o.report, o.dry_run)) if o.report else None
        settings = load_config(
            o.config, base_url=o.base_url, rate_limit=o.rate_limit, transport=o.transport, mode=o.mode
        )
        source = outputs.enter_context(open_data_file(o.data, o.data_format.value if o.data_format else None))
        failed_file = _open_failed(o.failed, source, o.data_format is not None, outputs) if o.failed else None
        if source.header is not None:
            check_columns(settings, source.header, source.name)
        ledger = _open_ledger(o.state, settings, o.full, o.dry_run, console, outputs) if o.state is not None else None
        sinks: list[Callable[[RecordOutcome], None]] = [
            console.outcome,
            *(f.add for f in (failed_file, report_file) if f is not None),
        ]
        if o.dry_run:
            code, write_report, lost = _dry_run(settings, source, console, _fan_out(sinks), ledger)
        else:
            # From here records may be sent: a signal stops the run gracefully instead.
            signals.interruptible = False
            code, write_report, lost = _sync(settings, source, console, _fan_out(sinks), ledger, stop, o.http())
        if isinstance(lost, DataFileChanged):
            # The data file changed: what was read of it is counted, but no --failed can bring
            # the workspace to a file that is no longer there.
            if report_file is not None:
                write_report(report_file, None)
            if o.failed is not None and remove_stale(o.failed, keep=(o.data, o.config, o.state, o.report)):
                console.note(f"removed {o.failed}: it was left by an earlier run, and this run could not finish")
            console.error(str(lost), code)
            return code
        deferred = _commit_outputs(failed_file, report_file, write_report, lost)
    if deferred is not None:
        raise deferred
    return code


def _commit_outputs(
    failed_file: FailedRecordsFile | None,
    report_file: ReportFile | None,
    write_report: ReportWriter,
    lost: CioSyncError | None,
) -> CioSyncError | None:
    """Write ``--failed`` and the report, and say what could not be written.

    A full disk loses an output, not the account of the run: the report (if it can be written)
    and the exit code say what was lost. The loss is raised here when there is no ``--failed``
    file to keep; otherwise it is returned, to be raised once the file is in place.
    """
    failed_lost = False
    if failed_file is not None:
        try:
            failed_file.commit()
        except OutputLost as e:
            lost, failed_lost = _both(lost, e), True
    if report_file is not None:
        try:
            write_report(report_file, lost)
        except OutputLost as e:
            lost = _both(lost, e)
    if lost is not None and (failed_lost or failed_file is None):
        raise lost
    # Raised by the caller, out of the outputs' context: the --failed file written is this run's, and stays.
    return lost


# Writes the report of a run, given the output that could not be written, if any.
ReportWriter = Callable[[ReportFile, "CioSyncError | None"], None]


def _both(first: CioSyncError | None, second: OutputLost) -> OutputLost:
    """One error naming every output that could not be written."""
    return second if first is None else OutputLost(f"{first}; {second}")


def _sync(
    config: Config,
    source: DataFile,
    console: Console,
    on_outcome: Callable[[RecordOutcome], None],
    ledger: Ledger | None,
    stop: Stop,
    http: HttpSettings,
) -> tuple[ExitCode, ReportWriter, CioSyncError | None]:
    console.started(source.name, source.count, config.base_url, config.parallelism)
    result = sync(config, source.records(), http=http, ledger=ledger, stop=stop, on_outcome=on_outcome)
    code = exit_code(result)
    console.finished(result, code)
    # The ledger filled up: every record is counted; --failed and the report are still written,
    # then the loss is raised. The data file changed: the report is written, and the run ends.
    problem: CioSyncError | None = None
    if result.stopped is StopReason.LEDGER_LOST:
        problem = OutputLost(result.error or "the ledger could not be written")
    elif result.stopped is StopReason.DATA_FILE_CHANGED:
        problem = DataFileChanged(result.error or "the data file changed while being read")
    return (
        code,
        lambda report, lost: report.commit_run(
            result, lost.exit_code if lost else code, str(lost) if lost else result.error
        ),
        problem,
    )


def _dry_run(
    config: Config,
    source: DataFile,
    console: Console,
    on_outcome: Callable[[RecordOutcome], None],
    ledger: Ledger | None,
) -> tuple[ExitCode, ReportWriter, CioSyncError | None]:
    console.planning(source.name, source.count)
    result = plan(config, source.records(), ledger=ledger, on_outcome=on_outcome, samples=DRY_RUN_SAMPLES)
    code = ExitCode.RECORDS_FAILED if result.invalid else ExitCode.OK
    console.planned(result, config, code)
    return code, lambda report, lost: report.commit_plan(result, lost.exit_code if lost else code), None


def _open_failed(path: str, source: DataFile, format_given: bool, outputs: ExitStack) -> FailedRecordsFile:
    # In the data file's own format, so that it can be fed back as it is.
    if not format_given:
        check_failed_format(path, source.format)
    failed_file = FailedRecordsFile(path, ndjson=source.format == NDJSON, csv_header=source.header)
    outputs.callback(failed_file.discard)
    return failed_file


def _open_ledger(path: str, config: Config, full: bool, dry_run: bool, console: Console, outputs: ExitStack) -> Ledger:
    ledger = Ledger(path, config, trust=not full, read_only=dry_run)
    outputs.callback(ledger.close)
    if ledger.foreign:
        console.note(f"the ledger {path} was made for another workspace or configuration: sending everything")
    return ledger


@contextmanager
def _reporting(path: str, dry_run: bool) -> Iterator[ReportFile]:
    """The ``--report`` file; a run that cannot go on still writes one, saying why."""
    report = ReportFile(path)
    try:
        yield report
    except CioSyncError as e:
        report.fail(str(e), e.exit_code, dry_run)
        raise
    except Exception as e:
        report.fail(f"internal error: {type(e).__name__}: {e}", ExitCode.INTERNAL_ERROR, dry_run)
        raise
    finally:
        report.discard()


@contextmanager
def _no_stale_failed(path: str, inputs: tuple[str | None, ...], console: Console) -> Iterator[None]:
    """A run that cannot finish leaves no ``--failed`` file from an earlier run behind (unless
    ``path`` names one of its ``inputs``, as a refused run may have been told to).

    Such a file would list what an earlier run left to do, not what this one did: fed back in,
    it would not bring the workspace to the data file's state.
    """
    try:
        yield
    except Exception:
        if remove_stale(path, keep=inputs):
            console.note(f"removed {path}: it was left by an earlier run, and this run could not finish")
        raise


def exit_code(result: SyncResult) -> ExitCode:
    """The process exit status for a finished run."""
    if result.stopped is StopReason.CREDENTIALS:
        return ExitCode.CREDENTIALS_REJECTED
    if result.stopped is StopReason.LEDGER_LOST:
        return ExitCode.OUTPUT_FAILED
    if result.stopped is StopReason.DATA_FILE_CHANGED:
        return ExitCode.RECORDS_FAILED
    if result.stopped is StopReason.INTERRUPTED:
        return ExitCode.INTERRUPTED
    if result.stopped is StopReason.TERMINATED:
        return ExitCode.TERMINATED
    if result.failed or result.invalid or result.not_attempted:
        return ExitCode.RECORDS_FAILED
    return ExitCode.OK


def _fan_out(sinks: list[Callable[[RecordOutcome], None]]) -> Callable[[RecordOutcome], None]:
    if len(sinks) == 1:
        return sinks[0]

    def each(outcome: RecordOutcome) -> None:
        for sink in sinks:
            sink(outcome)

    return each


class _Signals:
    """What a signal does now: while ``interruptible`` (nothing can have been sent yet: reading
    the configuration and a data file that may stall, a dry run) it ends the run at once by
    raising :class:`~cio_sync.errors.Interrupted`; afterwards it stops the run gracefully."""

    interruptible = True


@contextmanager
def _stop_on_signals(stop: Stop, console: Console) -> Iterator[_Signals]:
    """SIGINT and SIGTERM stop the run gracefully; a second one exits at once."""
    signals = _Signals()

    def handle(signum: int, frame: FrameType | None) -> None:
        interrupted = signum == signal.SIGINT
        code = ExitCode.INTERRUPTED if interrupted else ExitCode.TERMINATED
        if stop.requested:
            os._exit(code)
        reason = StopReason.INTERRUPTED if interrupted else StopReason.TERMINATED
        stop(reason)
        if signals.interruptible:
            raise Interrupted(f"{reason.value} before anything was sent", code)
        console.stopping(reason)

    previous: dict[int, Callable[[int, FrameType | None], object] | int | None] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        with suppress(ValueError):  # not the main thread: the caller handles signals
            previous[signum] = signal.signal(signum, handle)
    try:
        yield signals
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def main() -> None:
    """Entry point of the ``cio-sync`` command."""
    app(prog_name="cio-sync")

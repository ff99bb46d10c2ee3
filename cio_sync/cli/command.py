"""The sync command, ``cio-sync --config C --data D``: options in, one library call, a summary
and the outputs out. Exit codes live here."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from enum import Enum
from typing import Annotated

import typer

from ..engine.merge import person_index
from ..engine.mirrored import check_mirroring
from ..engine.plan import Plan, plan
from ..engine.repeats import PersonIndex
from ..engine.sync import sync
from ..engine.tally import SyncResult
from ..errors import CioSyncError, ConfigError, ExitCode
from ..input.config import (
    Config,
    MaxInvalid,
    MaxRemovals,
    Mode,
    Transport,
    WhenRemoved,
    load_config,
    parse_max_invalid,
    parse_max_removals,
)
from ..input.datafile import DataFile, open_data_file
from ..input.mapping import check_columns
from ..outcome import RecordOutcome, Stop, StopReason
from ..outputs.console import Console, JsonConsole, TextConsole
from ..outputs.files import Outputs, check_output_paths
from ..redact import Redactor
from ..state.ledger import Ledger
from ..transport.client import DEFAULT_GIVE_UP_AFTER, DEFAULT_READ_TIMEOUT, DEFAULT_RETRIES, MAX_TIMEOUT, HttpSettings
from ..version import __version__
from .mirroring import mirror_exit_code, plan_mirror, tell_removals
from .options import ConfigOption, DataFormat, DataOption, FormatOption, command_app, finite
from .signals import Signals, stop_on_signals

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

Other commands (each with its own --help):

\b
  cio-sync init --data people.csv        # a first configuration for a data file
  cio-sync verify --config c.json --data d.json   # read the workspace back and compare
  cio-sync emulator serve --port 8080    # a local Track API to rehearse against
  cio-sync emulator show URL             # what it holds, and its counters
  cio-sync emulator fault URL SPEC...    # make it misbehave

Exit codes: 0 all synced (or only invalid records, within --max-invalid); 1 some records
failed, were invalid or not attempted; 2 nothing
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


app = command_app()


def _max_invalid(value: str) -> MaxInvalid:
    try:
        return parse_max_invalid(value)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None


def _max_removals(value: str) -> MaxRemovals:
    try:
        return parse_max_removals(value)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"cio-sync {__version__}")
        raise typer.Exit()


# The options, declared once here so that the command's signature stays a list of names.
BaseUrlOption = Annotated[
    str | None,
    typer.Option("--base-url", metavar="URL", help="Send to this Track API URL instead of the configured one."),
]
RateLimitOption = Annotated[
    float | None,
    typer.Option(
        min=0.1,
        max=1e6,
        callback=finite,
        metavar="PER_SECOND",
        help="At most this many requests per second (all workers).",
    ),
]
TransportOption = Annotated[
    Transport | None, typer.Option(help="v1: a PUT per person; batch: POST /api/v2/batch, many people a request.")
]
ModeOption = Annotated[
    Mode | None, typer.Option(help="upsert creates missing people; update (_update: true) only changes existing ones.")
]
StateOption = Annotated[
    str | None,
    typer.Option(metavar="PATH", help="A ledger (SQLite) of what was synced: unchanged people are skipped."),
]
FullOption = Annotated[
    bool, typer.Option("--full", help="With --state: send everyone, but still record what succeeded.")
]
RetriesOption = Annotated[
    int, typer.Option(min=0, max=20, metavar="N", help="Resends of a request after a transient failure.")
]
GiveUpAfterOption = Annotated[
    float,
    typer.Option(
        min=1,
        max=86400,
        callback=finite,
        metavar="SECONDS",
        help="Stop starting requests when none has made progress for this long (only 429, 5xx, no answer).",
    ),
]
TimeoutOption = Annotated[
    float,
    typer.Option(
        min=0.1, max=MAX_TIMEOUT, callback=finite, metavar="SECONDS", help="How long to wait for each answer."
    ),
]
FailedOption = Annotated[
    str | None, typer.Option(metavar="PATH", help="Write every record not synced here, as a data file to re-run.")
]
ReportOption = Annotated[
    str | None, typer.Option(metavar="PATH", help="Write a JSON report of the run here; - for standard output.")
]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Check and map everything, show what would be sent, send nothing.")
]
MaxInvalidOption = Annotated[
    MaxInvalid | None,
    typer.Option(
        parser=_max_invalid,
        metavar="N|N%",
        help=(
            "Exit 0 when the only problems are at most N invalid records (or N% of the records read); "
            "they are still reported. Overrides maxInvalid."
        ),
    ),
]
WhenRemovedOption = Annotated[
    WhenRemoved | None,
    typer.Option(
        case_sensitive=False,
        help=(
            "What becomes of a person the --state ledger holds who is in no record of the data file: "
            "keep, clear (their mapped attributes), suppress or delete. Overrides whenRemoved."
        ),
    ),
]
MaxRemovalsOption = Annotated[
    MaxRemovals | None,
    typer.Option(
        parser=_max_removals,
        metavar="N|N%|all",
        help=(
            "Remove no one, and exit 1, when more than N people (or N% of those the ledger holds) "
            "left the data file; all for no limit. Default 10%. Overrides maxRemovals."
        ),
    ),
]
LogFormatOption = Annotated[LogFormat, typer.Option(help="text for people, json for one JSON object per line.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing unless something went wrong.")]
VersionOption = Annotated[
    bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit.")
]


@app.command(epilog=EXAMPLES)
def run(
    config: ConfigOption,
    data: DataOption,
    data_format: FormatOption = None,
    base_url: BaseUrlOption = None,
    rate_limit: RateLimitOption = None,
    transport: TransportOption = None,
    mode: ModeOption = None,
    state: StateOption = None,
    full: FullOption = False,
    retries: RetriesOption = DEFAULT_RETRIES,
    give_up_after: GiveUpAfterOption = DEFAULT_GIVE_UP_AFTER,
    timeout: TimeoutOption = DEFAULT_READ_TIMEOUT,
    failed: FailedOption = None,
    report: ReportOption = None,
    dry_run: DryRunOption = False,
    max_invalid: MaxInvalidOption = None,
    when_removed: WhenRemovedOption = None,
    max_removals: MaxRemovalsOption = None,
    log_format: LogFormatOption = LogFormat.text,
    quiet: QuietOption = False,
    version: VersionOption = False,
) -> None:
    """Upsert every person in a data file into a Customer.io workspace (Track API)."""
    console: Console = JsonConsole(quiet=quiet) if log_format is LogFormat.json else TextConsole(quiet=quiet)
    options = _Options(
        config,
        data,
        data_format,
        base_url,
        rate_limit,
        transport,
        mode,
        state,
        full,
        failed,
        report,
        dry_run,
        max_invalid,
        when_removed,
        max_removals,
    )
    http = HttpSettings(read_timeout=timeout, retries=retries, give_up_after=give_up_after)
    raise typer.Exit(_run(options, http, console))


@dataclass(frozen=True)
class _Options:
    """What the command was asked to do, apart from HTTP settings and how it speaks to people."""

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
    max_invalid: MaxInvalid | None
    when_removed: WhenRemoved | None = None
    max_removals: MaxRemovals | None = None

    def inputs(self) -> tuple[str | None, ...]:
        """The files the run reads, which no output may replace."""
        return (self.data, self.config, self.state, self.state and self.state + "-wal", self.report)


def _run(options: _Options, http: HttpSettings, console: Console) -> ExitCode:
    """Run the command; every error ends here, as one message and its exit code."""
    stop = Stop()
    with stop_on_signals(stop, console) as signals:
        try:
            return _execute(options, http, console, stop, signals)
        except CioSyncError as e:
            console.error(str(e), e.exit_code)
            return e.exit_code
        except Exception as e:  # a bug: say so in one line rather than with a traceback
            console.error(f"internal error: {type(e).__name__}: {e} (please report this)", ExitCode.INTERNAL_ERROR)
            return ExitCode.INTERNAL_ERROR


def _execute(o: _Options, http: HttpSettings, console: Console, stop: Stop, signals: Signals) -> ExitCode:
    """Make every check that can refuse the run, then run it (or plan it) and commit the outputs.

    A run refused by any check (arguments, configuration, data file, output paths, the ledger's
    lock) leaves every output as it was: another run may be writing them.
    """
    if o.full and o.state is None:
        raise ConfigError("--full needs --state: it resends everyone a ledger would skip, and there is none")
    check_output_paths(data=o.data, config=o.config, state=o.state, failed=o.failed, report=o.report)
    settings = _overridden(
        load_config(o.config, base_url=o.base_url, rate_limit=o.rate_limit, transport=o.transport, mode=o.mode), o
    )
    # Before anything is read or sent: without a ledger no one can be found to have left.
    check_mirroring(settings, o.state is not None)
    redact = Redactor(settings.secrets)
    console.redact = redact
    # The people named more than once are counted as the data file's check reads it.
    index = person_index(settings)
    with ExitStack() as stack:
        data_format = o.data_format.value if o.data_format else None
        source = stack.enter_context(open_data_file(o.data, data_format, note=index.note if index else None))
        if index is not None:
            index.finish()
        outputs = stack.enter_context(
            Outputs(o.failed, o.report, dry_run=o.dry_run, inputs=o.inputs(), note=console.note)
        )
        outputs.open(source, o.data_format is not None, redact)
        signals.before_exit = outputs.abandon
        if source.header is not None:
            check_columns(settings, source.header, source.name)
        ledger = _open_ledger(o.state, settings, o.full, o.dry_run, console, stack) if o.state is not None else None
        outputs.go_ahead()
        try:
            return _go(o.dry_run, settings, source, index, ledger, outputs, console, stop, signals, http)
        except CioSyncError as e:
            outputs.fail(str(e), e.exit_code)
            raise
        except Exception as e:
            outputs.fail(f"internal error: {type(e).__name__}: {e}", ExitCode.INTERNAL_ERROR)
            raise


def _overridden(settings: Config, o: _Options) -> Config:
    """``settings`` with the command line's tolerance, whenRemoved and guard, which win over the file's."""
    if o.max_invalid is not None:
        settings = replace(settings, max_invalid=o.max_invalid)
    if o.when_removed is not None:
        settings = replace(settings, when_removed=o.when_removed)
    if o.max_removals is not None:
        settings = replace(settings, max_removals=o.max_removals)
    return settings


def _go(
    dry_run: bool,
    config: Config,
    source: DataFile,
    index: PersonIndex | None,
    ledger: Ledger | None,
    outputs: Outputs,
    console: Console,
    stop: Stop,
    signals: Signals,
    http: HttpSettings,
) -> ExitCode:
    """Sync (or plan), then commit the outputs; the exit code, that of a lost output if one was."""
    on_outcome = _fan_out([console.outcome, *outputs.sinks()])
    if dry_run:
        console.planning(source.name, source.count)
        named = plan_mirror(config, ledger)
        records = source.records()
        planned = plan(
            config, records, ledger=ledger, on_outcome=on_outcome, samples=DRY_RUN_SAMPLES, index=index, named=named
        )
        planned = named.finish(planned) if named is not None else planned
        code = mirror_exit_code(plan_exit_code(planned, config.max_invalid), planned.mirror)
        if planned.invalid and code is ExitCode.OK:
            console.note(_tolerated(planned.invalid, config.max_invalid))
        console.planned(planned, config, code)
        tell_removals(console, planned.mirror, planned.unsuppressed, planned.total, dry_run=True)
        problem = outputs.commit_plan(planned, code)
    else:
        # From here records may be sent: a signal stops the run gracefully instead.
        signals.interruptible = False
        console.started(source.name, source.count, config.base_url, config.parallelism)
        records = source.records()
        # --failed and --report take only the records not synced: the console may need no more.
        only = not console.counts_every_record
        result = sync(
            config, records, http=http, ledger=ledger, stop=stop, on_outcome=on_outcome, only_problems=only, index=index
        )
        code = exit_code(result, config.max_invalid)
        if result.invalid and code is ExitCode.OK:
            console.note(_tolerated(result.invalid, config.max_invalid))
        console.finished(result, code)
        tell_removals(console, result.mirror, result.unsuppressed, result.total, dry_run=False)
        problem = outputs.commit_run(result, code)
    if problem is None:
        return code
    console.error(str(problem), problem.exit_code)
    return problem.exit_code


def _tolerated(invalid: int, max_invalid: MaxInvalid | None) -> str:
    """Why a run with invalid records still succeeds."""
    count = f"{invalid:,} invalid record" + ("" if invalid == 1 else "s")
    return f"{count}, within --max-invalid {max_invalid}: the run succeeds (exit status 0)"


def _open_ledger(path: str, config: Config, full: bool, dry_run: bool, console: Console, stack: ExitStack) -> Ledger:
    ledger = Ledger(path, config, trust=not full, read_only=dry_run)
    stack.callback(ledger.close)
    if ledger.foreign:
        console.note(f"the ledger {path} was made for another workspace or configuration: sending everything")
    return ledger


def exit_code(result: SyncResult, max_invalid: MaxInvalid | None = None) -> ExitCode:
    """The process exit status for a finished run.

    With ``max_invalid``, a run whose only problems are invalid records (and the records of the
    same people held back behind them, which exist only because of them) exits 0 while the
    invalid records are within it: counted against the records read, held-back ones not counted.
    """
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
        tolerated = result.only_invalid and max_invalid is not None and max_invalid.allows(result.invalid, result.total)
        return mirror_exit_code(ExitCode.OK if tolerated else ExitCode.RECORDS_FAILED, result.mirror)
    return mirror_exit_code(ExitCode.OK, result.mirror)


def plan_exit_code(planned: Plan, max_invalid: MaxInvalid | None = None) -> ExitCode:
    """The process exit status for a dry run: as the run would end, were every request to succeed."""
    if not planned.invalid or (max_invalid is not None and max_invalid.allows(planned.invalid, planned.total)):
        return ExitCode.OK
    return ExitCode.RECORDS_FAILED


def _fan_out(sinks: list[Callable[[RecordOutcome], None]]) -> Callable[[RecordOutcome], None]:
    if len(sinks) == 1:
        return sinks[0]

    def each(outcome: RecordOutcome) -> None:
        for sink in sinks:
            sink(outcome)

    return each

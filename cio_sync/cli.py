"""The ``cio-sync`` command: options in, one library call, a summary out. Exit codes live here."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from enum import Enum
from types import FrameType
from typing import Annotated, Any

import typer

from . import __version__
from .client import DEFAULT_READ_TIMEOUT, DEFAULT_RETRIES, HttpSettings
from .config import Config, load_config
from .console import Console, JsonConsole, TextConsole
from .datafile import NDJSON, DataFile, open_data_file
from .errors import CioSyncError, ExitCode
from .files import FailedRecordsFile, ReportFile, run_summary
from .ledger import Ledger, fingerprint
from .mapping import PersonUpdate, batch_item
from .report import RecordOutcome, SyncResult, problem_lines
from .sync import Plan, Stop, plan, sync

EXAMPLES = """\
Examples:

  cio-sync --config configuration.json --data data.json

  cio-sync -config ./configuration.json -data ./data.json

  export-users | cio-sync --config configuration.json --data - --format ndjson

  cio-sync --config c.json --data d.json --failed retry.json --report report.json

  cio-sync --config c.json --data retry.json          (retries exactly the failed records)

Credentials come from the configuration file or from CIO_SITE_ID and CIO_API_KEY, which win.

Exit codes: 0 all synced; 1 some records failed, were invalid or not attempted; 2 nothing
sent (bad arguments or input files); 3 the workspace refused the credentials; 4 the Track
API could not be reached; 130 interrupted (Ctrl-C); 143 terminated (SIGTERM).
"""

# How many requests --dry-run shows.
DRY_RUN_SAMPLES = 3


class LogFormat(str, Enum):
    """How messages on standard error are written."""

    text = "text"
    json = "json"


class Transport(str, Enum):
    """How people are sent."""

    v1 = "v1"
    batch = "batch"


class Mode(str, Enum):
    """Whether people who do not exist yet are created."""

    upsert = "upsert"
    update = "update"


class DataFormat(str, Enum):
    """How the data file is laid out."""

    json = "json"
    ndjson = "ndjson"


app = typer.Typer(
    add_completion=False,
    # Tracebacks with local variables could show the API key.
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


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
            help="json: one array of objects; ndjson: one object per line. Default: ndjson for .ndjson/.jsonl.",
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", metavar="URL", help="Send to this Track API URL instead of the configured one."),
    ] = None,
    rate_limit: Annotated[
        float | None,
        typer.Option(min=0.1, metavar="PER_SECOND", help="At most this many requests per second (all workers)."),
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
    timeout: Annotated[
        float, typer.Option(min=0.1, metavar="SECONDS", help="How long to wait for each answer.")
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
    console: Console = JsonConsole() if log_format is LogFormat.json else TextConsole(quiet=quiet)
    stop = Stop()
    with _stop_on_signals(stop, console):
        try:
            with ExitStack() as outputs:
                report_file = outputs.enter_context(_reporting(report, dry_run)) if report else None
                settings = load_config(
                    config,
                    base_url=base_url,
                    rate_limit=rate_limit,
                    transport=transport.value if transport else None,
                    mode=mode.value if mode else None,
                )
                source = outputs.enter_context(open_data_file(data, data_format.value if data_format else None))
                failed_file = FailedRecordsFile(failed, ndjson=source.format == NDJSON) if failed else None
                if failed_file is not None:
                    outputs.callback(failed_file.discard)
                ledger = None
                if state is not None:
                    ledger = Ledger(state, fingerprint(settings), trust=not full, read_only=dry_run)
                    outputs.callback(ledger.close)
                    if ledger.foreign:
                        console.note(
                            f"the ledger {state} was made for another workspace or configuration: sending everything"
                        )
                sinks: list[Callable[[RecordOutcome], None]] = [console.outcome]
                sinks += [f.add for f in (failed_file, report_file) if f is not None]
                if dry_run:
                    code, head = _dry_run(settings, source, console, _fan_out(sinks), ledger)
                else:
                    http = HttpSettings(read_timeout=timeout, retries=retries)
                    console.started(source.name, source.count, settings.base_url, settings.parallelism)
                    result = sync(
                        settings, source.records(), http=http, ledger=ledger, stop=stop, on_outcome=_fan_out(sinks)
                    )
                    code = exit_code(result)
                    head = run_summary(result, code)
                    console.finished(result, code)
                if failed_file is not None:
                    failed_file.commit()
                if report_file is not None:
                    report_file.commit(head)
        except CioSyncError as e:
            console.error(str(e), e.exit_code)
            raise typer.Exit(e.exit_code) from None
        except Exception as e:  # a bug: say so in one line rather than with a traceback
            console.error(f"internal error: {type(e).__name__}: {e} (please report this)", ExitCode.INTERNAL_ERROR)
            raise typer.Exit(ExitCode.INTERNAL_ERROR) from None
    raise typer.Exit(code)


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


def exit_code(result: SyncResult) -> ExitCode:
    """The process exit status for a finished run."""
    if result.stopped == "credentials":
        return ExitCode.CREDENTIALS_REJECTED
    if result.stopped == "interrupted":
        return ExitCode.INTERRUPTED
    if result.stopped == "terminated":
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


def _dry_run(
    config: Config,
    source: DataFile,
    console: Console,
    on_outcome: Callable[[RecordOutcome], None],
    ledger: Ledger | None,
) -> tuple[ExitCode, dict[str, Any]]:
    console.note(f"dry run: checking {source.count:,} records from {source.name}; nothing is sent")
    result = plan(config, source.records(), ledger=ledger, on_outcome=on_outcome, samples=DRY_RUN_SAMPLES)
    for update in result.samples:
        console.note(describe_request(config, update))
    code = ExitCode.RECORDS_FAILED if result.invalid else ExitCode.OK
    console.note(dry_run_summary(result))
    counts = {"valid": result.valid, "invalid": result.invalid}
    if ledger is not None:
        counts = {"new": result.new or 0, "changed": result.changed or 0, "unchanged": result.unchanged or 0}
        counts["invalid"] = result.invalid
    head = {"dry_run": True, "exit_code": int(code), "total": result.total, "counts": counts}
    return code, head


def describe_request(config: Config, update: PersonUpdate) -> str:
    """A request as it would go on the wire, with the credentials redacted."""
    if config.transport == "batch":
        return f"would send, in a POST {config.base_url}/api/v2/batch:\n  {batch_item(update).decode('utf-8')}"
    return (
        f"would send: PUT {config.base_url}/api/v1/customers/{update.path}\n"
        f"  Authorization: Basic <site id and API key, redacted>\n"
        f"  Content-Type: application/json\n"
        f"  {update.body.decode('utf-8')}"
    )


def dry_run_summary(result: Plan) -> str:
    """The closing line of a dry run, with the invalid records listed first."""
    lines = problem_lines(result.problems, result.more_problems)
    if result.new is not None:
        counts = f"{result.new:,} new, {result.changed:,} changed, {result.unchanged:,} unchanged"
    else:
        counts = f"{result.valid:,} valid"
    lines.append(f"dry run: {result.total:,} records: {counts}, {result.invalid:,} invalid; nothing sent")
    return "\n".join(lines)


@contextmanager
def _stop_on_signals(stop: Stop, console: Console) -> Iterator[None]:
    """SIGINT and SIGTERM stop the run gracefully; a second SIGINT exits at once."""

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.requested and signum == signal.SIGINT:
            os._exit(ExitCode.INTERRUPTED)
        if not stop.requested:
            reason = "interrupted" if signum == signal.SIGINT else "terminated"
            stop(reason)
            console.stopping(reason)

    previous: dict[int, Callable[[int, FrameType | None], object] | int | None] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        with suppress(ValueError):  # not the main thread: the caller handles signals
            previous[signum] = signal.signal(signum, handle)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def main() -> None:
    """Entry point of the ``cio-sync`` command."""
    app(prog_name="cio-sync")

"""The ``verify`` command: options in, one :func:`~cio_sync.readback.verify` call, findings out.

Registered in the ``cio-sync`` command family as ``app.command("verify", epilog=EXAMPLES)(verify_command)``;
``python -m cio_sync.readback`` runs it on its own.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import IO, Annotated, Any

import typer

from ..errors import CioSyncError, ConfigError, DataFileChanged, ExitCode, Interrupted
from ..input.config import API_KEY_ENV, APP_API_KEY_ENV, SITE_ID_ENV, load_config
from ..input.datafile import NDJSON, DataFile, data_format, open_data_file
from ..input.mapping import check_columns
from ..outcome import RecordOutcome, Status, Stop, StopReason
from ..outputs.console import TextConsole
from ..outputs.failed import FailedRecordsFile, check_failed_format
from ..outputs.files import check_output_paths
from ..outputs.terminal import visible
from ..readback.expected import Verdict
from ..readback.reader import ReadStatus
from ..readback.report import ReportFile, count, finding, redacted, summary
from ..readback.verify import NO_KEY, Difference, Options, VerifyResult, verify
from ..redact import NO_SECRETS, Redactor
from ..transport.client import DEFAULT_READ_TIMEOUT, DEFAULT_RETRIES, MAX_TIMEOUT, HttpSettings
from .options import ConfigOption, DataFormat, DataOption, command_app, finite
from .signals import Signals, stop_on_signals

EXAMPLES = """\
Examples:

\b
  cio-sync verify --config configuration.json --data data.json
  cio-sync verify --config c.json --data d.json --failed fix.json --report verify.json
  cio-sync --config c.json --data fix.json     # sends exactly the people who differ again
  cio-sync verify --config c.json --data big.ndjson --sample 1000 --seed 7

The App API key comes from "appApiKey" in the configuration or CIO_APP_API_KEY, which wins.

Exit codes: 0 every person read back holds the file; 1 someone differs or is missing; 2 bad
input (nothing read back), or the App API refused the request itself; 3 the App API refused
the key; 4 the App API could not be reached; 70 a bug in cio-sync.
"""

# How many differences are printed; --report has them all.
SHOWN = 10


@dataclass(frozen=True)
class VerifyOptions:
    """What the command was asked to do."""

    config: str
    data: str
    data_format: DataFormat | None
    app_base_url: str | None
    sample: int | None
    seed: int | None
    failed: str | None
    report: str | None
    timeout: float
    retries: int
    quiet: bool


def verify_command(
    config: ConfigOption,
    data: DataOption,
    data_format: Annotated[
        DataFormat | None,
        typer.Option("--format", help="json, ndjson or csv. Default: by suffix (.ndjson/.jsonl, .csv), else json."),
    ] = None,
    app_base_url: Annotated[
        str | None,
        typer.Option("--app-base-url", metavar="URL", help="Read from this App API URL instead of the region's."),
    ] = None,
    sample: Annotated[
        int | None, typer.Option(min=1, metavar="N", help="Read back N people chosen uniformly at random.")
    ] = None,
    seed: Annotated[int | None, typer.Option(min=0, metavar="SEED", help="With --sample: repeat a choice.")] = None,
    failed: Annotated[
        str | None,
        typer.Option(metavar="PATH", help="Write every record of each person who differs or is missing here."),
    ] = None,
    report: Annotated[
        str | None, typer.Option(metavar="PATH", help="Write every finding and the summary as JSON; - for stdout.")
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(min=0.1, max=MAX_TIMEOUT, callback=finite, metavar="SECONDS", help="Deadline of each attempt."),
    ] = DEFAULT_READ_TIMEOUT,
    retries: Annotated[
        int, typer.Option(min=0, max=20, metavar="N", help="Resends after a transient failure (429/5xx: 10 more).")
    ] = DEFAULT_RETRIES,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing unless something differs.")] = False,
) -> None:
    """Read every person in the data file back through the App API and compare them with it."""
    options = VerifyOptions(
        config, data, data_format, app_base_url, sample, seed, failed, report, timeout, retries, quiet
    )
    raise typer.Exit(run(options))


def run(o: VerifyOptions, stream: IO[str] | None = None) -> ExitCode:
    """Run the command; every error ends here, as one message and its exit code.

    SIGINT and SIGTERM stop it (exit 130 and 143): no new request starts, those in flight end
    within seconds, no ``--failed`` or ``--report`` file is written; a second signal quits at once.
    """
    out = _Out(stream if stream is not None else sys.stderr)
    # Until the configuration is read, the keys the environment holds are masked (a key pasted
    # where the configuration wanted a URL is quoted back by the error that says so).
    out.redact = Redactor(tuple(os.environ.get(name) for name in (SITE_ID_ENV, API_KEY_ENV, APP_API_KEY_ENV)))
    stop = _SignalStop()
    told = _SignalLine(out, o)
    try:
        with stop_on_signals(stop, told) as signals:
            return _execute(o, out, stop, signals)
    except KeyboardInterrupt:  # no handler of our own (run from a thread other than the main one)
        stop(StopReason.INTERRUPTED)
        return told.ended(stop.reason)
    except Interrupted:
        return told.ended(stop.reason)
    except CioSyncError as e:
        out.say(f"error: {e}")
        return e.exit_code
    except Exception as e:  # a bug: one line rather than a traceback (locals could hold the key)
        out.say(f"internal error: {type(e).__name__}: {e} (please report this)")
        return ExitCode.INTERNAL_ERROR


class _SignalLine(TextConsole):
    """What the signal handlers tell: one line a signal, when it comes (the read-back then ends
    within seconds) or, when it ended the run at once (before the first request), as it ends."""

    def __init__(self, out: _Out, o: VerifyOptions) -> None:
        super().__init__(quiet=True, stream=out.stream)
        self._out = out
        self._outputs = " and ".join(
            f"{flag} {path}" for flag, path in (("--failed", o.failed), ("--report", o.report)) if path
        )
        self._said = False

    def stopping(self, reason: StopReason) -> None:
        """A signal came while reading back: it stops, and another quits at once."""
        again = "Ctrl-C again" if reason is StopReason.INTERRUPTED else "send it again"
        self._line(reason, f" ({again} to quit at once)")

    def ended(self, reason: StopReason | None) -> ExitCode:
        """The run ended for a signal: its line, unless said already, and its exit status."""
        self._line(reason or StopReason.INTERRUPTED, "")
        return ExitCode.TERMINATED if reason is StopReason.TERMINATED else ExitCode.INTERRUPTED

    def _line(self, reason: StopReason, then: str) -> None:
        if self._said:
            return
        self._said = True
        what = "SIGTERM received" if reason is StopReason.TERMINATED else "interrupted"
        left = f"; {self._outputs} will not be written" if self._outputs else ""
        self._out.say(f"{what}: stopping before every person is read back{left}{then}")


class _SignalStop(Stop):
    """What a signal sets (``requested`` then means a signal came), and the read-back's own stop,
    which it sets too: the read-back also stops itself (a refused key), and that is no signal."""

    def __init__(self) -> None:
        super().__init__()
        self.halt = threading.Event()

    def __call__(self, reason: StopReason | str = StopReason.STOPPED) -> None:
        """Stop for ``reason``: no new request starts, those in flight end within seconds."""
        super().__call__(reason)
        self.halt.set()


def _execute(o: VerifyOptions, out: _Out, stop: _SignalStop, signals: Signals) -> ExitCode:
    if o.seed is not None and o.sample is None:
        raise ConfigError("--seed goes with --sample: it repeats a sample's choice")
    check_output_paths(data=o.data, config=o.config, state=None, failed=o.failed, report=o.report)
    config = load_config(o.config, app_base_url=o.app_base_url, track_credentials=False)
    if not config.app_api_key:
        raise ConfigError(NO_KEY)
    # From here on, whatever a server or the data file says is shown with every credential masked.
    out.redact = Redactor(config.secrets)
    with ExitStack() as stack:
        source = stack.enter_context(open_data_file(o.data, o.data_format.value if o.data_format else None))
        if source.header is not None:
            check_columns(config, source.header, source.name)
        failed_file = _open_failed(o, source, stack)
        report = ReportFile(o.report, out.redact) if o.report is not None else None
        if report is not None:
            stack.callback(report.discard)
        signals.before_exit = lambda: _abandon(failed_file, report)
        shown: list[str] = []
        if not o.quiet:
            out.say(f"reading back the people of {source.name} from {config.app_base_url}")
        with _progress(out.stream, o.quiet) as on_progress:
            options = Options(
                http=HttpSettings(read_timeout=o.timeout, retries=o.retries),
                sample=o.sample,
                seed=o.seed,
                on_person=_collector(shown, report, out.redact),
                on_progress=on_progress,
                failed=(lambda record: failed_file.add(RecordOutcome(0, Status.FAILED, record=record)))
                if failed_file is not None
                else None,
                records_again=source.records,
                stop=stop.halt,
                # Until the first request, a signal ends the run at once (reading a file that stalls).
                on_reading=lambda: setattr(signals, "interruptible", False),
                # Then nothing is left to stop gracefully: a signal ends the run at once.
                on_read_back=lambda: setattr(signals, "interruptible", True),
            )
            result = verify(config, source.records(), options)
        if stop.requested:  # a signal: the outputs are discarded on the way out
            raise Interrupted("stopped", ExitCode.INTERRUPTED)
        return _finish(o, out, result, shown, failed_file, report)


def _finish(
    o: VerifyOptions,
    out: _Out,
    result: VerifyResult,
    shown: list[str],
    failed_file: FailedRecordsFile | None,
    report: ReportFile | None,
) -> ExitCode:
    """Tell the outcome, then put the outputs in place."""
    code = exit_code(result)
    _tell(out, o, result, shown, code)
    if result.failed_lost is not None:
        raise DataFileChanged(f"--failed {o.failed} not written: {result.failed_lost}")
    if failed_file is not None:
        failed_file.commit()
    if report is not None:
        report.commit(result, int(code))
    return code


def _abandon(failed_file: FailedRecordsFile | None, report: ReportFile | None) -> None:
    """A second signal quits at once: no unfinished output is left behind."""
    if failed_file is not None:
        failed_file.abandon()
    if report is not None:
        report.abandon()


def _open_failed(o: VerifyOptions, source: DataFile, stack: ExitStack) -> FailedRecordsFile | None:
    if o.failed is None:
        return None
    # In the data file's own format, so that it can be fed back to cio-sync as it is.
    if o.data_format is None:
        check_failed_format(o.failed, source.format)
    failed_file = FailedRecordsFile(o.failed, ndjson=source.format == NDJSON, csv_header=source.header)
    stack.callback(failed_file.discard)
    return failed_file


def _collector(
    shown: list[str], report: ReportFile | None, redact: Callable[[str], str]
) -> Callable[[str, Verdict, list[Difference]], None]:
    """Keeps the first findings to print (credentials masked), and hands every one to the report."""

    def collect(person: str, verdict: Verdict, differences: list[Difference]) -> None:
        found: list[Difference | None] = [redacted(d, redact) for d in differences] or [None]
        for difference in found:
            if len(shown) < SHOWN + 1:
                shown.append(finding(redact(person), verdict, difference))
        if report is not None:
            report.add(person, verdict, differences)

    return collect


def exit_code(result: VerifyResult) -> ExitCode:
    """The process exit status for a finished verification."""
    if result.stopped is ReadStatus.KEY_REFUSED:
        return ExitCode.CREDENTIALS_REJECTED
    if result.stopped is ReadStatus.UNREACHABLE:
        return ExitCode.API_UNREACHABLE
    if result.stopped is ReadStatus.REFUSED:
        return ExitCode.BAD_INPUT
    if result.stopped is ReadStatus.STOPPED:
        return ExitCode.INTERRUPTED
    if result.differing or result.missing:
        return ExitCode.RECORDS_FAILED
    return ExitCode.OK


_HINTS = {
    ReadStatus.KEY_REFUSED: "check appApiKey or CIO_APP_API_KEY: an App API key (Settings > API Credentials > "
    "App API keys), not a Track API key, for this workspace and region",
    ReadStatus.UNREACHABLE: "check appBaseUrl/--app-base-url, region and the network",
}


def _tell(out: _Out, o: VerifyOptions, result: VerifyResult, shown: list[str], code: ExitCode) -> None:
    """The summary, the first findings, and why the read-back stopped, if it did."""
    if result.stopped is not None:
        hint = _HINTS.get(result.stopped)
        out.say(f"error: {result.error or result.stopped.value}" + (f" ({hint})" if hint else ""))
    if o.quiet and code is ExitCode.OK:
        return
    for line in shown[:SHOWN]:
        out.say("  " + line)
    if len(shown) > SHOWN:
        out.say("  ... and more" + (f": every one is in {o.report}" if o.report not in (None, "-") else ""))
    if result.invalid:
        out.say(f"{result.invalid:,} invalid records were not compared (cio-sync refuses them too)")
    out.say(summary(result))
    if o.failed is not None and result.failed_records:
        written = count(result.failed_records, "record")
        # Written in the data file's format: a name read as another needs the --format given.
        given = o.data_format.value if o.data_format is not None else None
        need = given is not None and data_format(o.failed) != given
        again = f"cio-sync --data {o.failed}" + (f" --format {given}" if need else "")
        out.say(f"wrote {written} to {o.failed}: {again} sends them again")


class _Out:
    """Standard error, or what stands for it: one line a message, credentials masked, never failing."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.redact: Callable[[str], str] = NO_SECRETS

    def say(self, message: str) -> None:
        """``cio-sync: message``, masked, and made harmless to a terminal (ids and values reach it)."""
        try:
            self.stream.write(f"cio-sync: {visible(self.redact(message))}\n")
            self.stream.flush()
        except (OSError, ValueError, RuntimeError):  # RuntimeError: a signal's line, written mid-write
            pass


class _progress:  # noqa: N801 - used as a function: `with _progress(...) as on_progress`
    """A progress bar on standard error while people are read back, when it is a terminal."""

    def __init__(self, err: IO[str], quiet: bool) -> None:
        self._bar: Any = None
        self._task: Any = None
        self._show = not quiet and _isatty(err)
        self._err = err

    def __enter__(self) -> Callable[[int, int], None] | None:
        if not self._show:
            return None
        return self._update

    def _update(self, done: int, total: int) -> None:
        if self._bar is None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            console = Console(file=self._err, stderr=True)
            columns = (TextColumn("verify"), BarColumn(bar_width=30), MofNCompleteColumn(), TimeRemainingColumn())
            self._bar = Progress(*columns, console=console, transient=True)
            self._task = self._bar.add_task("verify", total=total)
            self._bar.start()
        self._bar.update(self._task, completed=done)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (OSError, ValueError):
        return False


app = command_app()
app.command("verify", epilog=EXAMPLES)(verify_command)

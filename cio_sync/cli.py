"""The ``cio-sync`` command: options in, one library call, a summary out. Exit codes live here."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from types import FrameType
from typing import Annotated

import typer

from . import __version__
from .client import DEFAULT_READ_TIMEOUT, DEFAULT_RETRIES, HttpSettings
from .config import load_config
from .datafile import open_data_file
from .errors import CioSyncError, ExitCode
from .report import SyncResult, problem_lines, summary_line
from .sync import Stop, sync

EXAMPLES = """\
Examples:

  cio-sync --config configuration.json --data data.json

  cio-sync -config ./configuration.json -data ./data.json

  export-users | cio-sync --config configuration.json --data -

  CIO_SITE_ID=... CIO_API_KEY=... cio-sync --config c.json --data d.json --quiet

Exit codes: 0 all synced; 1 some records failed or were invalid; 2 nothing sent (bad
arguments or input files); 3 the workspace refused the credentials; 4 the Track API could
not be reached; 130 interrupted (Ctrl-C); 143 terminated (SIGTERM).
"""

app = typer.Typer(
    add_completion=False,
    # Tracebacks with local variables could show the API key.
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


def _say(message: str) -> None:
    typer.echo(f"cio-sync: {message}", err=True)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"cio-sync {__version__}")
        raise typer.Exit()


@app.command(epilog=EXAMPLES)
def run(
    config: Annotated[str, typer.Option("--config", "-config", metavar="PATH", help="The configuration file (JSON).")],
    data: Annotated[
        str,
        typer.Option("--data", "-data", metavar="PATH", help="The data file: a JSON array of objects; - reads stdin."),
    ],
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", metavar="URL", help="Send to this Track API URL instead of the configured one."),
    ] = None,
    retries: Annotated[
        int, typer.Option(min=0, max=20, help="Resends of a request after a transient failure.")
    ] = DEFAULT_RETRIES,
    timeout: Annotated[
        float, typer.Option(min=0.1, metavar="SECONDS", help="How long to wait for each answer.")
    ] = DEFAULT_READ_TIMEOUT,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing unless something went wrong.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Upsert every person in a data file into a Customer.io workspace (Track API)."""
    stop = Stop()
    with _stop_on_signals(stop, quiet):
        try:
            settings = load_config(config, base_url=base_url)
            http = HttpSettings(read_timeout=timeout, retries=retries)
            with open_data_file(data) as source:
                if not quiet:
                    _say(
                        f"syncing {source.count:,} records from {source.name} to {settings.base_url} "
                        f"({settings.parallelism} at a time)"
                    )
                result = sync(settings, source.records(), http=http, stop=stop)
        except CioSyncError as e:
            _say(f"error: {e}")
            raise typer.Exit(e.exit_code) from None
        except Exception as e:  # a bug: say so in one line rather than with a traceback
            _say(f"internal error: {type(e).__name__}: {e} (please report this)")
            raise typer.Exit(ExitCode.INTERNAL_ERROR) from None
    code = exit_code(result)
    if not quiet or code != ExitCode.OK:
        for line in problem_lines(result):
            _say(line)
        if result.stopped == "credentials":
            _say("error: the workspace refused the credentials (HTTP 401/403); stopped starting requests")
        elif result.stopped in ("interrupted", "terminated"):
            _say(f"{result.stopped}: a re-run with the same files completes the sync")
        _say(summary_line(result))
    raise typer.Exit(code)


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


@contextmanager
def _stop_on_signals(stop: Stop, quiet: bool) -> Iterator[None]:
    """SIGINT and SIGTERM stop the run gracefully; a second SIGINT exits at once."""

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.requested and signum == signal.SIGINT:
            os._exit(ExitCode.INTERRUPTED)
        if not quiet:
            sys.stderr.write("\ncio-sync: stopping: letting requests in flight finish (Ctrl-C again to quit now)\n")
        stop("interrupted" if signum == signal.SIGINT else "terminated")

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

"""The ``cio-sync`` command line: a sync (``cio-sync --config C --data D``), or another command.

This module imports next to nothing: its :func:`main` must make Ctrl-C and SIGTERM end the
process cleanly before the heavy imports (typer, rich, requests) run, which take a noticeable
fraction of a second, and a signal in that time would otherwise end in a traceback.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import time
from itertools import pairwise

# Not typing's: importing typing takes longer than the rest of this module (mypy knows the name).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import FrameType

    from typer import Typer

    from .command import app as app


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``cio-sync`` command.

    The first word names the command (``cio-sync emulator serve``). A sync needs none, since its
    command line starts with an option (``cio-sync --config ...``), though ``cio-sync sync`` is
    taken too: so every sync command line written before there were other commands still works.
    """
    words = list(sys.argv[1:] if argv is None else argv)
    _quit_on_early_signals(json_logs=_json_logs(words))
    # The cyclic collector, every 10,000 allocations rather than 700: a run makes a few
    # short-lived objects per record, nearly none in cycles, and collecting them that often took
    # a tenth of a batch run's CPU (0.30 s of 2.8 s for 200,000 records; 0.03 s after).
    gc.set_threshold(10_000, 10, 10)
    if words[:1] == ["emulator"]:
        from ..emulator.command import main as emulator

        # Imported: the emulator's own handling again, as under python -m cio_sync.emulator (Ctrl-C
        # shuts the server down, exit 130; SIGTERM ends it silently, as the demo does at its end).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        emulator(words[1:], prog="cio-sync emulator")
        return
    if words[:1] == ["init"]:
        from .init import app as init

        init(args=words[1:], prog_name="cio-sync init")
        return
    if words[:1] == ["verify"]:
        from .verify import app as verify

        verify(args=words[1:], prog_name="cio-sync verify")
        return
    if words[:1] == ["sync"]:
        words = words[1:]
    from .command import app

    app(args=words, prog_name="cio-sync")


def _quit_on_early_signals(json_logs: bool) -> None:
    """Until the command installs its own handlers: SIGINT and SIGTERM end the process at once,
    with their exit status (130, 143) and one line, instead of a ``KeyboardInterrupt`` traceback
    from whatever was being imported. Nothing has been sent or written yet."""

    def quit_now(signum: int, frame: FrameType | None) -> None:
        interrupted = signum == signal.SIGINT
        what = "interrupted" if interrupted else "terminated"
        if json_logs:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z"
            line = f'{{"time": "{stamp}", "event": "error", "message": "{what}", "exit_code": {128 + signum}}}'
        else:
            line = f"cio-sync: {what}"
        try:  # noqa: SIM105 - contextlib.suppress: one import more before the handler is in place
            os.write(2, (line + "\n").encode())
        except OSError:
            pass  # standard error closed: the exit status says it all
        os._exit(128 + signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, quit_now)


def _json_logs(words: Sequence[str]) -> bool:
    """Whether the command line asks for JSON logs (read before its parser is even imported)."""
    return "--log-format=json" in words or any(pair == ("--log-format", "json") for pair in pairwise(words))


def __getattr__(name: str) -> Typer:
    # The sync command's Typer app, for tests and tools that read its options.
    if name == "app":
        from .command import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""What SIGINT and SIGTERM do while a sync runs: stop it gracefully; a second one quits at once."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from types import FrameType

from ..errors import ExitCode, Interrupted
from ..outcome import Stop, StopReason
from ..outputs.console import Console


class Signals:
    """What a signal does now: while ``interruptible`` (nothing can have been sent yet: reading
    the configuration and a data file that may stall, a dry run) it ends the run at once by
    raising :class:`~cio_sync.errors.Interrupted`; afterwards it stops the run gracefully.

    ``before_exit`` runs when a second signal quits at once (the outputs' temporary files are
    removed there, since nothing else will remove them).
    """

    def __init__(self) -> None:
        self.interruptible = True
        self.before_exit: Callable[[], None] = lambda: None


@contextmanager
def stop_on_signals(stop: Stop, console: Console) -> Iterator[Signals]:
    """SIGINT and SIGTERM stop the run gracefully; a second one exits at once."""
    signals = Signals()

    def handle(signum: int, frame: FrameType | None) -> None:
        interrupted = signum == signal.SIGINT
        code = ExitCode.INTERRUPTED if interrupted else ExitCode.TERMINATED
        if stop.requested:
            with suppress(Exception):  # quitting matters more than tidying up
                signals.before_exit()
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

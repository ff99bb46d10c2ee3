"""Quick time for the command's runs, in this process or in one it starts: what a run only waits
out (a person's next second, a Retry-After, a backoff, a rate-limit turn) costs no real time. See
:class:`~tests.fakeclock.QuickClock`.

A process started with :func:`child_env` runs quick too, and shares what it skips with the runs
of the process that started it through a file: its stamps are never older than theirs, and
theirs, after it (:meth:`Skipped.catch_up`), never older than its. This module is imported by
such a process at start-up (``tests/quickchild/sitecustomize.py``), so it imports neither pytest
nor, until the command's own module loads, cio-sync.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .fakeclock import QuickClock, Skipped

if TYPE_CHECKING:
    from cio_sync.engine.tally import SyncResult
    from cio_sync.input.config import Config
    from cio_sync.outcome import Stop

# Names the file through which a started process shares what it skipped (not a CIO_ variable:
# the tests start the command without those).
SHARED = "TESTS_QUICK_SKIPPED"
# Where the started process finds the sitecustomize that makes it quick.
CHILD_PATH = Path(__file__).resolve().parent / "quickchild"
# The module whose ``sync`` the command calls.
COMMAND = "cio_sync.cli.command"

Setter = Callable[[object, str, Any], None]


def quick_sync(
    config: Config,
    records: Iterable[object],
    *,
    stop: Stop | None = None,
    skipped: Skipped | None = None,
    **kwargs: Any,
) -> SyncResult:
    """:func:`cio_sync.sync` on a :class:`QuickClock` (unless given a clock): what the run only
    waits out (a person's next second, Retry-After, backoff, a rate-limit turn) costs no real time."""
    from cio_sync.engine.sync import sync
    from cio_sync.outcome import Stop

    stop = stop or Stop()
    kwargs.setdefault("clock", QuickClock(stop.event, skipped))
    return sync(config, records, stop=stop, **kwargs)


def quicken(set_attribute: Setter, skipped: Skipped) -> None:
    """Make every sync the command runs in this process quick, sharing ``skipped``; its request
    deadlines stay in real time (skipped time is idle time, which a request in flight on another
    worker did not spend). ``set_attribute`` is ``setattr`` or a monkeypatch's."""
    from cio_sync.cli import command
    from cio_sync.transport import client, deadline

    set_attribute(command, "sync", functools.partial(quick_sync, skipped=skipped))

    def watchdog(limit: float, stop: Any, clock: Any) -> deadline.Watchdog:
        return deadline.Watchdog(limit, stop, *(() if isinstance(clock, QuickClock) else (clock,)))

    set_attribute(client, "Watchdog", watchdog)


def child_env(skipped: Skipped) -> dict[str, str]:
    """What to add to the environment of a command started now, so that it runs quick, sharing
    ``skipped`` (which must have a file); call :meth:`Skipped.catch_up` once it has ended."""
    assert skipped.path is not None, "a started process shares what it skips through a file"
    skipped.add(0.0)  # the file holds what was skipped so far
    paths = [str(CHILD_PATH), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {SHARED: str(skipped.path), "PYTHONPATH": os.pathsep.join(paths)}


class _QuickenOnLoad(importlib.abc.MetaPathFinder):
    """Quickens the command once its module has run (importing it any earlier would come before
    the command installs its signal handlers)."""

    def __init__(self, skipped: Skipped) -> None:
        self.skipped = skipped

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != COMMAND:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        assert spec is not None and isinstance(spec.loader, importlib.abc.Loader)
        run = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            quicken(setattr, self.skipped)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]  # this one loader only
        return spec


def in_child() -> None:
    """Run at start-up of a process started with :func:`child_env`: its command runs quick."""
    sys.meta_path.insert(0, _QuickenOnLoad(Skipped(Path(os.environ[SHARED]))))

"""Where the output files go: never onto an input or each other, and no stale ``--failed`` left."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .errors import OutputError


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

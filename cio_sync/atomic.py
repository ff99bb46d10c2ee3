"""Output files written beside their final path and renamed into place only when complete."""

from __future__ import annotations

import errno
import os
import secrets
import stat
from contextlib import suppress
from pathlib import Path
from typing import IO

from .errors import OutputError


class AtomicFile:
    """A file written beside its final path and renamed over it only when complete.

    A run that dies half-way leaves the previous file (or none), never a truncated one. The
    temporary file is made at once, so an unwritable path is refused before anything is sent.

    Its mode is what any tool's new file gets: 0666 less the umask (0644 under the usual 022), so
    the file is as readable as the directory's other files, also from outside a container. A file
    replaced keeps the mode it had, so one made private stays private.
    """

    def __init__(self, path: str, option: str) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise OutputError(f"{option} {path}: is a directory")
        try:
            fd, self._temp = _create_beside(self.path)
        except OSError as e:
            raise OutputError(f"{option} {path}: cannot write there: {e.strerror}") from None
        self.stream: IO[str] = os.fdopen(fd, "w", encoding="utf-8")

    def commit(self) -> None:
        """Flush to disk and move the file into place."""
        self.stream.flush()
        os.fsync(self.stream.fileno())
        self.stream.close()
        os.replace(self._temp, self.path)

    def discard(self) -> None:
        """Remove the unfinished file."""
        with suppress(OSError):  # closing flushes, and the disk may be full
            self.stream.close()
        Path(self._temp).unlink(missing_ok=True)


def _create_beside(path: Path) -> tuple[int, str]:
    """A new, empty file next to ``path``: the umask's mode, or the mode ``path`` already has.

    Not :func:`tempfile.mkstemp`, whose files are always 0600.
    """
    for _ in range(100):
        temp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            continue
        try:
            os.fchmod(fd, stat.S_IMODE(path.stat().st_mode))
        except FileNotFoundError:
            pass
        except OSError:
            os.close(fd)
            temp.unlink(missing_ok=True)
            raise
        return fd, str(temp)
    raise FileExistsError(errno.EEXIST, "no free temporary name")

"""Output files written beside their final path and renamed into place only when complete."""

from __future__ import annotations

import os
import tempfile
from contextlib import suppress
from pathlib import Path
from typing import IO

from .errors import OutputError


class AtomicFile:
    """A file written beside its final path and renamed over it only when complete.

    A run that dies half-way leaves the previous file (or none), never a truncated one. The
    temporary file is made at once, so an unwritable path is refused before anything is sent.
    """

    def __init__(self, path: str, option: str) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise OutputError(f"{option} {path}: is a directory")
        try:
            fd, self._temp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
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

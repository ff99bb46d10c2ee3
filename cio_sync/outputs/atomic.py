"""Output files written beside their final path and renamed into place only when complete."""

from __future__ import annotations

import errno
import fcntl
import os
import re
import secrets
import stat
from contextlib import suppress
from pathlib import Path
from typing import IO

from ..errors import OutputError


class AtomicFile:
    """A file written beside its final path and renamed over it only when complete.

    A run that dies half-way leaves the previous file (or none), never a truncated one. The
    temporary file is made at once, so an unwritable path is refused before anything is sent.
    While it is being written, the process holds an exclusive ``flock`` on it: a later run can
    tell the temporary file of a run that died (no lock: :func:`remove_leftovers` removes it)
    from one still being written.

    Its mode is what any tool's new file gets: 0666 less the umask (0644 under the usual 022), so
    the file is as readable as the directory's other files, also from outside a container. A file
    replaced keeps the mode it had, so one made private stays private. ``errors`` is how text
    that UTF-8 cannot encode is written (see :func:`open`).
    """

    def __init__(self, path: str, option: str, errors: str = "strict") -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise OutputError(f"{option} {path}: is a directory")
        # Where the file goes: a symbolic link's target, so that the link stays.
        self._final = Path(os.path.realpath(path))
        self._temp: str | None = None
        try:
            if _special(path):
                fd = _open_special(path)
            else:
                fd, self._temp = _create_beside(self._final)
        except OSError as e:
            raise OutputError(f"{option} {path}: cannot write there: {e.strerror}") from None
        self.stream: IO[str] = os.fdopen(fd, "w", encoding="utf-8", errors=errors)

    def commit(self) -> None:
        """Flush to disk and move the file into place (written into a device or a pipe: flushed)."""
        self.stream.flush()
        if self._temp is not None:
            os.fsync(self.stream.fileno())
            # Renamed while still locked: no other run can take it for a dead run's leftover.
            os.replace(self._temp, self._final)
        self.stream.close()

    def discard(self) -> None:
        """Remove the unfinished file."""
        self.abandon()
        with suppress(OSError):  # closing flushes, and the disk may be full
            self.stream.close()

    def abandon(self) -> None:
        """Remove the unfinished file without closing it: safe from a signal handler about to exit."""
        if self._temp is not None:
            Path(self._temp).unlink(missing_ok=True)


def _special(path: str) -> bool:
    """True when ``path`` names (through any links) something that is not a file: a device, a
    pipe, a socket (``/dev/stdout``, ``/dev/full``, a FIFO). There is nothing to rename into place
    there, and renaming over it would replace it with a file."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def _open_special(path: str) -> int:
    """``path`` opened for writing straight into, as a shell's ``>`` would; a pipe no one reads
    is refused (ENXIO) rather than waited on for ever."""
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    os.set_blocking(fd, True)
    return fd


def _temp_name(path: Path) -> str:
    return f".{path.name}.{secrets.token_hex(4)}.tmp"


def _leftover_pattern(path: Path) -> re.Pattern[str]:
    """The names :func:`_temp_name` gives the temporary files of ``path``, and only those."""
    return re.compile(rf"\.{re.escape(path.name)}\.[0-9a-f]{{8}}\.tmp")


def remove_leftovers(path: str) -> int:
    """Remove the temporary files an earlier run writing ``path`` left behind; how many.

    Such a file is left when a run is killed, or quits at once on a second signal. Only files
    named as :class:`AtomicFile` names them for ``path`` are touched, and only those no live
    process holds locked: a file another run is still writing stays.
    """
    target = Path(os.path.realpath(path))
    pattern = _leftover_pattern(target)
    try:
        names = [n for n in os.listdir(target.parent) if pattern.fullmatch(n)]
    except OSError:
        return 0
    removed = 0
    for name in names:
        leftover = target.parent / name
        try:
            fd = os.open(leftover, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:  # gone already, a link, or not ours to read
            continue
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            leftover.unlink()
            removed += 1
        except OSError:  # BlockingIOError: a live run is writing it
            continue
        finally:
            os.close(fd)
    return removed


def _create_beside(path: Path) -> tuple[int, str]:
    """A new, empty file next to ``path``, locked: the umask's mode, or the mode ``path`` already has.

    Not :func:`tempfile.mkstemp`, whose files are always 0600.
    """
    for _ in range(100):
        temp = path.parent / _temp_name(path)
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # Between its creation and the lock, another run's cleanup may have taken it for a
            # leftover and removed it: then make another.
            if not _still_there(fd, temp):
                os.close(fd)
                continue
            os.fchmod(fd, stat.S_IMODE(path.stat().st_mode))
        except FileNotFoundError:
            pass
        except OSError:
            os.close(fd)
            temp.unlink(missing_ok=True)
            raise
        return fd, str(temp)
    raise FileExistsError(errno.EEXIST, "no free temporary name")


def _still_there(fd: int, temp: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(temp)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)

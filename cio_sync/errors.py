"""The exceptions cio-sync raises, and the exit codes they map to."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """How a run ended, as the process exit status. These numbers are stable."""

    # Every record was synced (an empty data file included).
    OK = 0
    # The run finished, but at least one record failed or was invalid.
    RECORDS_FAILED = 1
    # Nothing was sent: bad arguments, or an unreadable or invalid configuration or data file.
    BAD_INPUT = 2
    # The run stopped early because the workspace refused the credentials.
    CREDENTIALS_REJECTED = 3
    # Nothing was sent because the Track API could not be reached at all.
    API_UNREACHABLE = 4
    # A bug in cio-sync itself.
    INTERNAL_ERROR = 70
    # An output (--failed, --report, the --state ledger) could not be written after records may
    # have been sent: a full disk, a closed standard output. 74 is sysexits' EX_IOERR.
    OUTPUT_FAILED = 74
    # Stopped by SIGINT (Ctrl-C): 128 + 2, as shells report it.
    INTERRUPTED = 130
    # Stopped by SIGTERM (docker stop, kill): 128 + 15.
    TERMINATED = 143


class CioSyncError(Exception):
    """The root of every error cio-sync raises; its message is written for the user."""

    exit_code: ExitCode = ExitCode.BAD_INPUT


class ConfigError(CioSyncError):
    """The configuration file, the environment or an option is unusable. Nothing was sent."""

    exit_code = ExitCode.BAD_INPUT


class DataFileError(CioSyncError):
    """The data file cannot be read, is not JSON, or is not an array. Nothing was sent."""

    exit_code = ExitCode.BAD_INPUT


class DataFileChanged(DataFileError):
    """The data file stopped parsing part-way through, after its check had passed: it was changed
    while being read. Raised by the reading; a run ends on it (``StopReason.DATA_FILE_CHANGED``)
    rather than raising it, since some records may have been sent.
    """

    exit_code = ExitCode.RECORDS_FAILED


class OutputError(CioSyncError):
    """An output file (``--failed``, ``--report``) cannot be written. Checked before sending."""

    exit_code = ExitCode.BAD_INPUT


class OutputLost(CioSyncError):
    """An output could not be written once the run was under way (a full disk, a broken pipe).

    Records may have been sent; the message says what could not be written. A run whose ledger
    is lost ends on it (``StopReason.LEDGER_LOST``) rather than raising it.
    """

    exit_code = ExitCode.OUTPUT_FAILED


class TemporaryStorageLost(OutputLost):
    """The run's temporary storage (in the temporary directory, ``TMPDIR``) failed: a full disk."""


class Interrupted(CioSyncError):
    """A signal arrived before anything was sent (while reading the inputs, or in a dry run)."""

    def __init__(self, message: str, exit_code: ExitCode) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class LedgerInUse(OutputError):
    """Another run holds the ``--state`` ledger. Nothing was sent."""

    exit_code = ExitCode.BAD_INPUT


class CredentialsRejected(CioSyncError):
    """The workspace answered 401 or 403: retrying cannot help, so the run stops."""

    exit_code = ExitCode.CREDENTIALS_REJECTED


class ApiUnreachable(CioSyncError):
    """The credentials check could not reach the Track API even after retries."""

    exit_code = ExitCode.API_UNREACHABLE

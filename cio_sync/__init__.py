"""cio-sync: upsert people from a JSON data file into a Customer.io workspace."""

from __future__ import annotations

from .client import HttpSettings
from .config import Config, Credentials, FieldMapping, IdType, Mode, Transport, config_from_dict, load_config
from .convert import Cast
from .datafile import DataFile, open_data_file
from .errors import (
    ApiUnreachable,
    CioSyncError,
    ConfigError,
    CredentialsRejected,
    DataFileError,
    ExitCode,
)
from .ledger import Ledger
from .outcome import RecordOutcome, Status, Stop, StopReason
from .plan import Plan, plan
from .sync import sync
from .tally import SyncResult
from .version import __version__

__all__ = [
    "ApiUnreachable",
    "Cast",
    "CioSyncError",
    "Config",
    "ConfigError",
    "Credentials",
    "CredentialsRejected",
    "DataFile",
    "DataFileError",
    "ExitCode",
    "FieldMapping",
    "HttpSettings",
    "IdType",
    "Ledger",
    "Mode",
    "Plan",
    "RecordOutcome",
    "Status",
    "Stop",
    "StopReason",
    "SyncResult",
    "Transport",
    "__version__",
    "config_from_dict",
    "load_config",
    "open_data_file",
    "plan",
    "sync",
]

"""cio-sync: upsert people from a JSON data file into a Customer.io workspace.

The names below are imported on first use (PEP 562), not with the package: the ``cio-sync``
command must be able to install its signal handlers before the heavy imports (requests,
jsonschema, typer) run, and every submodule import runs this file first.
"""

from __future__ import annotations

import importlib
import sys
import types

# Not typing's: importing typing alone takes longer than the rest of this file (mypy knows the name).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .engine.causes import CauseCount
    from .engine.plan import Plan, plan
    from .engine.sync import sync
    from .engine.tally import SyncResult
    from .errors import (
        ApiUnreachable,
        CioSyncError,
        ConfigError,
        CredentialsRejected,
        DataFileError,
        ExitCode,
    )
    from .input.config import (
        Config,
        Credentials,
        FieldMapping,
        IdType,
        MaxInvalid,
        MaxRemovals,
        Mode,
        Transport,
        WhenRemoved,
        config_from_dict,
        load_config,
        parse_max_invalid,
        parse_max_removals,
    )
    from .input.convert import Cast
    from .input.datafile import DataFile, open_data_file
    from .outcome import RecordOutcome, Status, Stop, StopReason
    from .state.ledger import Ledger
    from .transport.client import HttpSettings
    from .version import __version__

# Each public name -> the submodule that defines it.
_WHERE = {
    "CauseCount": "engine.causes",
    "HttpSettings": "transport.client",
    "Config": "input.config",
    "Credentials": "input.config",
    "FieldMapping": "input.config",
    "IdType": "input.config",
    "MaxInvalid": "input.config",
    "MaxRemovals": "input.config",
    "WhenRemoved": "input.config",
    "parse_max_removals": "input.config",
    "Mode": "input.config",
    "Transport": "input.config",
    "config_from_dict": "input.config",
    "load_config": "input.config",
    "parse_max_invalid": "input.config",
    "Cast": "input.convert",
    "DataFile": "input.datafile",
    "open_data_file": "input.datafile",
    "ApiUnreachable": "errors",
    "CioSyncError": "errors",
    "ConfigError": "errors",
    "CredentialsRejected": "errors",
    "DataFileError": "errors",
    "ExitCode": "errors",
    "Ledger": "state.ledger",
    "RecordOutcome": "outcome",
    "Status": "outcome",
    "Stop": "outcome",
    "StopReason": "outcome",
    "Plan": "engine.plan",
    "plan": "engine.plan",
    "sync": "engine.sync",
    "SyncResult": "engine.tally",
    # Read from the installed package's metadata, which takes longer than anything else here.
    "__version__": "version",
}


def __getattr__(name: str) -> Any:
    """Import a public name's submodule the first time the name is asked for."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # asked once: later lookups find it without coming here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})


# Public names that are also the names of their submodules: ``cio_sync.engine.sync`` is the function.
_SHADOWED = frozenset({"sync", "plan"})


class _Package(types.ModuleType):
    """The package module, whose ``sync`` and ``plan`` stay the functions once their submodules load.

    Importing the submodule ``cio_sync.engine.sync`` binds the package's ``sync`` to that module; the
    eager imports this file once had rebound it to the function right after, and that is kept.
    """

    def __setattr__(self, name: str, value: object) -> None:
        if name in _SHADOWED and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


__all__ = [
    "ApiUnreachable",
    "Cast",
    "CauseCount",
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
    "MaxInvalid",
    "MaxRemovals",
    "Mode",
    "Plan",
    "RecordOutcome",
    "Status",
    "Stop",
    "StopReason",
    "SyncResult",
    "Transport",
    "WhenRemoved",
    "__version__",
    "config_from_dict",
    "load_config",
    "open_data_file",
    "parse_max_invalid",
    "parse_max_removals",
    "plan",
    "sync",
]

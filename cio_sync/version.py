"""The installed version of cio-sync, read from the package's metadata (set in ``pyproject.toml``)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cio-sync")
except PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0+unknown"

"""``python -m cio_sync``: the same command as ``cio-sync``."""

from .cli import main

main()

"""``python -m cio_sync.emulator``: the ``cio-sync emulator`` command, for a checkout without the script."""

from .command import main

if __name__ == "__main__":
    main(prog="python -m cio_sync.emulator")

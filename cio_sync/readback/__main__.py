"""``python -m cio_sync.readback``: the ``verify`` command on its own."""

from .command import main

main()

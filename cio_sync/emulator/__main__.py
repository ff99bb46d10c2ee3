"""``python -m cio_sync.emulator``: serve the emulated Track API, or show what it holds."""

from .command import main

if __name__ == "__main__":
    main()

"""What a run leaves: the ``--report`` and ``--failed`` files and what the console shows."""

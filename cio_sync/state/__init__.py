"""What outlives a run: the ``--state`` ledger of what the workspace holds."""

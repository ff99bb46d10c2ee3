"""The HTTP side: one Session and its Retry policy, the shared pace, a deadline on every attempt,
and what each Track API answer means. Knows no ledger and no files."""

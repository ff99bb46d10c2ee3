"""Reading people back through the App API and comparing them with the data file: ``cio-sync verify``."""

from .compare import matches
from .expected import Verdict
from .reader import ReadStatus
from .verify import Difference, Options, VerifyResult, verify

__all__ = ["Difference", "Options", "ReadStatus", "Verdict", "VerifyResult", "matches", "verify"]

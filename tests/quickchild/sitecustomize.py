"""Loaded at start-up by a process the tests start with ``tests.quick.child_env``: its command's
runs wait out no time, sharing what they skip with the test's (see ``tests/quick.py``)."""

import os
import sys
from pathlib import Path

if os.environ.get("TESTS_QUICK_SKIPPED"):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.quick import in_child

    in_child()

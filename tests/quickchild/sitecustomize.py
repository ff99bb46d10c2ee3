"""Loaded at start-up by a process the tests start with ``tests.quick.child_env``: its command's
runs wait out no time, sharing what they skip with the test's (see ``tests/quick.py``). Python
loads one ``sitecustomize`` only, so the one this shadows (a distribution's, a coverage setup's)
is run too."""

import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent


def _run_the_next_one() -> None:
    elsewhere = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", elsewhere)
    if spec is not None and spec.loader is not None:
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


_run_the_next_one()
if os.environ.get("TESTS_QUICK_SKIPPED"):
    # Appended: the command and its package are the installed ones, as for any process the tests
    # start; only the tests' own package is found here.
    sys.path.append(str(_HERE.parents[1]))
    from tests.quick import in_child

    in_child()

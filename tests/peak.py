"""Runs a command and writes its peak resident memory, in kilobytes, to a file.

``python -m tests.peak OUT COMMAND...`` exits as COMMAND does. A process started straight from a
test would report the test process's own peak too: Linux carries the memory high-water mark of
the process that forked over ``exec``, and pytest workers grow to hundreds of MB. Started from
this small interpreter instead, COMMAND's figure is its own (plus this launcher's few MB).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def main() -> None:
    out, *command = sys.argv[1:]
    proc = subprocess.Popen(command)
    _, status, usage = os.wait4(proc.pid, 0)
    Path(out).write_text(str(usage.ru_maxrss))
    raise SystemExit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()

"""Runs a command and writes its peak resident memory (kilobytes) and CPU seconds to a file.

``python -m tests.peak OUT COMMAND...`` exits as COMMAND does; OUT holds ``{"max_rss_kb": ...,
"cpu_seconds": ...}``. A process started straight from a
test would report the test process's own peak too: Linux carries the memory high-water mark of
the process that forked over ``exec``, and pytest workers grow to hundreds of MB. Started from
this small interpreter instead, COMMAND's figure is its own (plus this launcher's few MB).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def main() -> None:
    out, *command = sys.argv[1:]
    proc = subprocess.Popen(command)
    _, status, usage = os.wait4(proc.pid, 0)
    figures = {"max_rss_kb": usage.ru_maxrss, "cpu_seconds": usage.ru_utime + usage.ru_stime}
    Path(out).write_text(json.dumps(figures))
    raise SystemExit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()

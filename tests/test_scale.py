"""Large inputs and terminals: memory stays flat, and a progress bar shows on a TTY only."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cio_sync.emulator import Emulator

from .conftest import CLI, Files, Terminal, cli_env, config_dict, run_cli


def write_records(path: Path, n: int) -> None:
    with path.open("w") as f:
        f.write("[")
        for i in range(n):
            f.write(("," if i else "") + json.dumps({"id": i, "name": f"Person {i}", "note": "x" * 100}))
        f.write("]")


def peak_rss_mb(tmp_path: Path, args: list[str]) -> float:
    """The peak memory of ``cio-sync args``, in MB, counting none of this process's (see tests/peak.py)."""
    out = tmp_path / "peak"
    run = subprocess.run(
        [sys.executable, "-m", "tests.peak", str(out), *CLI, *args], capture_output=True, env=cli_env()
    )
    assert run.returncode == 0, run.stderr
    return float(json.loads(out.read_text())["max_rss_kb"]) / 1024


def test_memory_does_not_grow_with_the_file(files: Files) -> None:
    # 100k records (15 MB), allowed 7.5 MB more than 2k records: under 75 bytes a record, as
    # 200k records were allowed 15 MB, and half the file's size, whole.
    config = files.config(config_dict("http://127.0.0.1:9"))
    small, large = files.root / "small.json", files.root / "large.json"
    write_records(small, 2_000)
    write_records(large, 100_000)
    assert large.stat().st_size > 14_000_000
    baseline = peak_rss_mb(files.root, ["--config", config, "--data", str(small), "--dry-run"])
    grown = peak_rss_mb(files.root, ["--config", config, "--data", str(large), "--dry-run"])
    assert grown < baseline + 7.5, f"{baseline:.0f} MB for 2k records, {grown:.0f} MB for 100k"


@pytest.mark.parametrize("no_color", [False, True])
def test_a_progress_bar_on_a_terminal(emulator: Emulator, files: Files, no_color: bool) -> None:
    emulator.latency = 0.01
    data = files.data([{"id": ""}] + [{"id": i} for i in range(150)])
    args = ["--config", files.config(config_dict(emulator.url, parallelism=3)), "--data", data]
    code, screen = Terminal(args, 150, {"NO_COLOR": "1"} if no_color else {}).finish()
    assert code == 1
    assert re.search(r"\d+/151", screen), screen[-2000:]
    assert "ETA" in screen
    assert "invalid 1" in screen
    assert "151 records: 150 synced, 0 failed, 1 invalid" in screen
    colours = re.findall(r"\x1b\[[0-9;]*3[0-9](;[0-9]+)*m", screen)
    assert (colours == []) == no_color


def test_no_progress_bar_when_not_a_terminal(emulator: Emulator, files: Files) -> None:
    run = run_cli(["--config", files.config(config_dict(emulator.url)), "--data", files.data([{"id": 1}])])
    assert run.code == 0
    assert "ETA" not in run.stderr
    assert "\x1b[" not in run.stderr


def test_no_progress_bar_when_quiet_on_a_terminal(emulator: Emulator, files: Files) -> None:
    args = ["--config", files.config(config_dict(emulator.url)), "--data", files.data([{"id": 1}]), "--quiet"]
    code, screen = Terminal(args, 150).finish()
    assert code == 0
    assert screen == ""

"""The progress bar on a real terminal (a pseudo-terminal): what fits, and what a stop shows."""

from __future__ import annotations

import io
import re
import signal
from pathlib import Path

import pytest

from cio_sync.emulator import Emulator
from cio_sync.errors import ExitCode
from cio_sync.outcome import RecordOutcome, Status, StopReason
from cio_sync.outputs import console as console_module
from cio_sync.outputs.console import TextConsole, bar_layout

from .conftest import Files, Terminal, config_dict, wait_until

TOTAL = 1000
# What rich prints when a column does not fit: the bar must never cut a figure short.
ELLIPSIS = "…"


def frames(text: str, total: int = TOTAL) -> list[str]:
    """Each redraw of the bar, without its colours."""
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    return [part for part in re.split(r"[\r\n]", plain) if f"/{total}" in part]


def run_args(emulator: Emulator, files: Files) -> list[str]:
    data = files.data([{"id": i, "name": f"n{i}"} for i in range(TOTAL)])
    return ["--config", files.config(config_dict(emulator.url, parallelism=4)), "--data", data]


def test_the_bar_fits_the_terminal_without_cutting_a_figure(emulator: Emulator, files: Files) -> None:
    # One real terminal, the narrowest common one: that the command finds its width and draws
    # there. Every width from 46 to 200 is drawn in-process by test_every_layout_fits_its_width.
    columns = 60
    emulator.latency = 0.006
    terminal = Terminal(run_args(emulator, files), columns)
    code, text = terminal.finish()
    assert code == 0, text
    drawn = frames(text)
    assert drawn, text
    assert not any(ELLIPSIS in frame for frame in drawn), drawn[-1]
    assert all(len(frame.rstrip()) <= columns for frame in drawn)
    assert all(re.search(rf"\d+/{TOTAL} .*ETA (\d+:\d\d:\d\d|-:--:--)", frame) for frame in drawn), drawn[-1]
    assert f"{TOTAL:,} records: {TOTAL:,} synced" in text


class FakeTerminal(io.StringIO):
    """A stream that says it is a terminal, so that rich draws the bar into it."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("total", [1, 999, 3000, 10**6, 10**9])
def test_every_layout_fits_its_width(monkeypatch: pytest.MonkeyPatch, total: int) -> None:
    # Drawn by rich as on a terminal, from the narrowest width where the smallest layout fits.
    monkeypatch.setattr(console_module, "BAR_INTERVAL", 0.0)
    for width in range(46, 200, 3):
        assert 10 <= bar_layout(width, total).bar <= 40
        monkeypatch.setenv("COLUMNS", str(width))
        screen = FakeTerminal()
        text = TextConsole(stream=screen, progress=True)
        text.started("data.json", total, "http://localhost", 4)  # no "/1" to pass for a count of 1
        for index in range(min(3, total)):
            text.outcome(RecordOutcome(index, Status.FAILED if index == 1 else Status.SYNCED))
        text.error("stopped", ExitCode.INTERRUPTED)  # takes the bar down, drawing it a last time
        drawn = frames(screen.getvalue(), total)
        assert drawn, (width, screen.getvalue())
        assert not any(ELLIPSIS in frame or len(frame.rstrip()) > width for frame in drawn), (width, drawn)


def test_after_ctrl_c_the_bar_stops_counting(emulator: Emulator, files: Files) -> None:
    emulator.latency = 0.02
    terminal = Terminal(run_args(emulator, files), 120)
    wait_until(lambda: len(emulator.people()) >= 100)
    terminal.proc.send_signal(signal.SIGINT)
    code, text = terminal.finish()
    assert code == 130, text
    before, _, after = text.partition("interrupted: letting requests in flight finish")
    assert after, text
    shown_before = [int(m) for frame in frames(before) for m in re.findall(rf"(\d+)/{TOTAL}", frame)]
    shown_after = [int(m) for frame in frames(after) for m in re.findall(rf"(\d+)/{TOTAL}", frame)]
    # The records not attempted are only marked so: the bar holds about where the sending stopped
    # (a worker may hand it one last count as the signal lands), far from the total.
    assert len(set(shown_after)) <= 2 and max(shown_after, default=0) < TOTAL / 2, shown_after
    assert shown_before
    synced = len(emulator.people())
    assert f"{synced:,} synced, 0 failed, 0 invalid, {TOTAL - synced:,} not attempted" in text


def test_records_marked_not_attempted_after_a_stop_do_not_move_the_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console_module, "BAR_INTERVAL", 0.0)  # every outcome reaches the bar
    screen = FakeTerminal()
    text = TextConsole(stream=screen, progress=True)
    text.started("data.json", TOTAL, "http://127.0.0.1:1", 4)
    for index in range(10):
        text.outcome(RecordOutcome(index, Status.SYNCED))
    text.stopping(StopReason.INTERRUPTED)
    for index in range(10, TOTAL):
        text.outcome(RecordOutcome(index, Status.NOT_ATTEMPTED))
    text.error("stopped", ExitCode.INTERRUPTED)  # takes the bar down, drawing it a last time
    after = screen.getvalue().partition("interrupted: letting requests in flight finish")[2]
    counts = {int(m) for frame in frames(after) for m in re.findall(rf"(\d+)/{TOTAL}", frame)}
    assert max(counts) == 10  # a redraw may repeat an older count; none shows the unsent ones


def test_the_terminal_helper_reads_everything(tmp_path: Path) -> None:
    terminal = Terminal(["--version"], 80)
    code, text = terminal.finish()
    assert code == 0
    assert text.startswith("cio-sync ")

"""--state: the local ledger that skips unchanged people, and resumes interrupted runs."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from cio_sync.emulator import Emulator

from .conftest import Files, config_dict, people_puts, run_cli, wait_until

PEOPLE = [{"id": i, "name": f"n{i}", "computed_ltv": i} for i in range(40)]


def sync_args(files: Files, url: str, data: Any = None, **config: Any) -> list[str]:
    return [
        "--config",
        files.config(config_dict(url, **config)),
        "--data",
        files.data(PEOPLE if data is None else data),
        "--state",
        str(files.root / "state.db"),
    ]


def test_a_second_run_sends_nothing(emulator: Emulator, files: Files) -> None:
    first = run_cli(sync_args(files, emulator.url))
    assert first.code == 0, first.stderr
    sent = len(emulator.requests())
    second = run_cli(sync_args(files, emulator.url))
    assert second.code == 0, second.stderr
    assert len(emulator.requests()) == sent, "not even the credentials check"
    assert "40 records: 0 synced, 40 unchanged, 0 failed, 0 invalid" in second.stderr


def test_one_changed_record_sends_one(emulator: Emulator, files: Files) -> None:
    run_cli(sync_args(files, emulator.url))
    changed = [dict(p) for p in PEOPLE]
    changed[7]["name"] = "renamed"
    changed[9]["unmapped"] = "does not change the body"
    before = len(people_puts(emulator))
    run = run_cli(sync_args(files, emulator.url, changed))
    assert run.code == 0
    assert people_puts(emulator)[before:] == ["7"]
    assert emulator.people()["7"] == {"name": "renamed", "ltv": 7}


def test_a_changed_mapping_resends_everything_and_says_so(emulator: Emulator, files: Files) -> None:
    run_cli(sync_args(files, emulator.url))
    before = len(people_puts(emulator))
    run = run_cli(sync_args(files, emulator.url, mappings=[{"from": "name", "to": "full_name"}]))
    assert run.code == 0
    assert len(people_puts(emulator)) - before == 40
    assert "made for another workspace or configuration" in run.stderr


def test_failed_records_are_never_marked(emulator: Emulator, files: Files) -> None:
    emulator.add_fault(status=400, person_id="3")
    first = run_cli(sync_args(files, emulator.url))
    assert first.code == 1
    before = len(people_puts(emulator))
    second = run_cli(sync_args(files, emulator.url))
    assert second.code == 0
    assert people_puts(emulator)[before:] == ["3"]


def test_invalid_records_are_never_marked_and_stay_invalid(emulator: Emulator, files: Files) -> None:
    data = [*PEOPLE[:3], {"id": ""}]
    assert run_cli(sync_args(files, emulator.url, data)).code == 1
    rows = sqlite3.connect(files.root / "state.db").execute("SELECT count(*) FROM synced").fetchone()[0]
    assert rows == 3


def test_full_resends_everything_but_still_records(emulator: Emulator, files: Files) -> None:
    run_cli(sync_args(files, emulator.url))
    before = len(people_puts(emulator))
    assert run_cli([*sync_args(files, emulator.url), "--full"]).code == 0
    assert len(people_puts(emulator)) - before == 40
    after_full = len(people_puts(emulator))
    assert run_cli(sync_args(files, emulator.url)).code == 0
    assert len(people_puts(emulator)) == after_full


def test_repeated_ids_end_as_if_applied_in_order(emulator: Emulator, files: Files) -> None:
    data = [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]
    assert run_cli(sync_args(files, emulator.url, data)).code == 0
    assert run_cli(sync_args(files, emulator.url, data)).code == 0
    assert emulator.people()["1"] == {"name": "b"}
    emulator.reset()
    assert run_cli(sync_args(files, emulator.url, [{"id": 1, "name": "a"}], parallelism=1)).code == 0
    assert emulator.people()["1"] == {"name": "a"}


def test_dry_run_shows_the_plan(emulator: Emulator, files: Files) -> None:
    run_cli(sync_args(files, emulator.url, PEOPLE[:5]))
    emulator.reset()
    data = [*PEOPLE[:4], {**PEOPLE[4], "name": "changed"}, {"id": 99}, {"id": None}]
    report = files.root / "plan.json"
    run = run_cli([*sync_args(files, emulator.url, data), "--dry-run", "--report", str(report)])
    assert run.code == 1
    assert emulator.requests() == []
    assert "dry run: 7 records: 1 new, 1 changed, 4 unchanged, 1 invalid; nothing sent" in run.stderr
    assert json.loads(report.read_text())["counts"] == {"new": 1, "changed": 1, "unchanged": 4, "invalid": 1}


def test_the_report_counts_unchanged(emulator: Emulator, files: Files) -> None:
    run_cli(sync_args(files, emulator.url))
    report = files.root / "r.json"
    run_cli([*sync_args(files, emulator.url), "--report", str(report)])
    counts = json.loads(report.read_text())["counts"]
    assert counts == {"synced": 0, "unchanged": 40, "failed": 0, "invalid": 0, "not_attempted": 0}


def test_a_ledger_that_is_not_sqlite_is_refused(emulator: Emulator, files: Files) -> None:
    (files.root / "state.db").write_text("not a database, just text that is long enough to matter" * 20)
    run = run_cli(sync_args(files, emulator.url))
    assert run.code == 2
    assert "not a usable ledger" in run.stderr
    assert emulator.requests() == []


def interrupted_then_resumed(emulator: Emulator, files: Files, signum: int) -> tuple[int, int]:
    emulator.latency = 0.01
    data = [{"id": i, "name": f"n{i}"} for i in range(600)]
    args = sync_args(files, emulator.url, data, parallelism=4)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIO_")}
    proc = subprocess.Popen([sys.executable, "-m", "cio_sync", *args], stderr=subprocess.PIPE, env=env)
    wait_until(lambda: len(emulator.people()) >= 300)
    proc.send_signal(signum)
    proc.communicate(timeout=30)
    first = len(people_puts(emulator))
    emulator.latency = 0
    assert run_cli(args).code == 0
    assert len(emulator.people()) == 600
    return first, len(people_puts(emulator)) - first


def test_a_stopped_run_resumes_with_only_the_rest(emulator: Emulator, files: Files) -> None:
    first, second = interrupted_then_resumed(emulator, files, signal.SIGTERM)
    assert first + second == 600


def test_a_killed_run_resends_at_most_the_last_uncommitted_few(emulator: Emulator, files: Files) -> None:
    first, second = interrupted_then_resumed(emulator, files, signal.SIGKILL)
    # Entries are committed every 100 or every quarter second: at most that many are sent again.
    assert 600 <= first + second <= 600 + 150
    assert second <= 600 - 300 + 150


def test_the_ledger_is_readable_after_a_kill(emulator: Emulator, files: Files) -> None:
    interrupted_then_resumed(emulator, files, signal.SIGKILL)
    db = sqlite3.connect(Path(files.root / "state.db"))
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

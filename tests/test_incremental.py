"""--state: the local ledger that skips unchanged people, and resumes interrupted runs."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cio_sync.emulator import Emulator
from cio_sync.engine.plan import plan
from cio_sync.engine.sync import sync
from cio_sync.state.ledger import Ledger
from cio_sync.transport.client import HttpSettings

from .conftest import Files, Spawn, config_dict, finish, make_config, people_puts, run_cli, wait_until
from .quick import quick_sync

PEOPLE = [{"id": i, "name": f"n{i}", "computed_ltv": i} for i in range(40)]


def sync_args(files: Files, url: str, data: Any = None, name: str = "data.json", **config: Any) -> list[str]:
    return [
        "--config",
        files.config(config_dict(url, **config)),
        "--data",
        files.data(PEOPLE if data is None else data, name=name),
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


def test_going_back_to_an_earlier_configuration_trusts_none_of_its_old_entries(
    emulator: Emulator, files: Files
) -> None:
    # Between the two runs of the first configuration another one wrote the same person: what the
    # first remembered of them is no longer what the workspace holds.
    both = [{"from": "name", "to": "name"}, {"from": "plan", "to": "plan"}]
    first = sync_args(files, emulator.url, [{"id": 1, "name": "X", "plan": "P"}], mappings=both)
    assert run_cli(first).code == 0
    other = sync_args(files, emulator.url, [{"id": 1, "name": "Y"}], mappings=both[:1])
    assert run_cli(other).code == 0
    again = run_cli(sync_args(files, emulator.url, [{"id": 1, "name": "X", "plan": "P"}], mappings=both))
    assert again.code == 0, again.stderr
    assert emulator.people()["1"] == {"name": "X", "plan": "P"}
    assert "1 record: 1 synced" in again.stderr


def test_failed_records_are_never_marked(emulator: Emulator, files: Files) -> None:
    emulator.add_fault(status=400, person="3")
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
    assert "dry run: 7 records: 6 valid, 1 invalid; 6 people: 1 new, 1 changed, 4 unchanged; nothing sent" in run.stderr
    counts = {"new": 1, "changed": 1, "unchanged": 4, "invalid": 1, "valid": 6, "held_back": 0}
    assert json.loads(report.read_text())["counts"] == {**counts, "people": 6, "to_send": 2}


def test_the_report_counts_unchanged(emulator: Emulator, files: Files) -> None:
    run_cli(sync_args(files, emulator.url))
    report = files.root / "r.json"
    run_cli([*sync_args(files, emulator.url), "--report", str(report)])
    counts = json.loads(report.read_text())["counts"]
    assert counts == {"synced": 0, "unchanged": 40, "failed": 0, "invalid": 0, "not_attempted": 0}


def test_a_ledger_named_like_sqlites_own_memory_database_is_a_file(
    emulator: Emulator, files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite reads the name ":memory:" as a database in memory: the second run would find nothing.
    monkeypatch.chdir(files.root)
    args = sync_args(files, emulator.url)
    args[args.index("--state") + 1] = ":memory:"
    assert run_cli(args).code == 0
    assert (files.root / ":memory:").stat().st_size > 0
    emulator.reset()
    again = run_cli(args)
    assert again.code == 0, again.stderr
    assert emulator.requests() == []  # every person unchanged


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_ledger_path_that_is_no_regular_file_is_refused_at_once(emulator: Emulator, files: Files, kind: str) -> None:
    # A dry run opening a FIFO read-only would wait for a writer for ever, deaf to Ctrl-C.
    ledger = files.root / "state.db"
    os.mkfifo(ledger) if kind == "fifo" else ledger.mkdir()
    for dry in (["--dry-run"], []):
        run = run_cli([*sync_args(files, emulator.url), *dry])
        assert run.code == 2, run.stderr
        assert f"--state {ledger}: is " in run.stderr
    assert emulator.requests() == []


def test_a_ledger_that_is_not_sqlite_is_refused(emulator: Emulator, files: Files) -> None:
    (files.root / "state.db").write_text("not a database, just text that is long enough to matter" * 20)
    run = run_cli(sync_args(files, emulator.url))
    assert run.code == 2
    assert "not a usable ledger" in run.stderr
    assert emulator.requests() == []


@pytest.mark.parametrize("damage", ["overwritten", "zeroed", "truncated"])
def test_a_damaged_ledger_is_refused_before_anything_is_sent_or_planned(
    emulator: Emulator, files: Files, damage: str
) -> None:
    # Enough people for the entries' table to span pages, then the file damaged as a failing disk
    # or a stray write would: lookups through intact pages may still answer, so a dry run would
    # plan on it and a run would find out at its first write.
    many = [{"id": i, "name": "x" * 40} for i in range(400)]
    assert run_cli(sync_args(files, emulator.url, many)).code == 0
    ledger = files.root / "state.db"
    with sqlite3.connect(ledger) as db:
        root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'synced'").fetchone()[0]
        size = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    with ledger.open("r+b") as f:
        if damage == "truncated":
            f.truncate(ledger.stat().st_size - 3 * size)
        else:
            f.seek(root * size - size // 2)
            f.write((b"\xff" if damage == "overwritten" else b"\0") * (size // 2))
    emulator.reset()
    for dry in (["--dry-run"], []):
        run = run_cli([*sync_args(files, emulator.url, many), *dry])
        assert run.code == 2, run.stderr
        assert f"--state {ledger}: the ledger is damaged (" in run.stderr
        assert f"Try SQLite's recovery first (sqlite3 {ledger} .recover | sqlite3 recovered.db)" in run.stderr
        assert "unchanged" not in run.stderr
    assert emulator.requests() == []


def successes(emulator: Emulator, since: int = 0) -> set[str | None]:
    return {r.person_id for r in emulator.requests()[since:] if r.method == "PUT" and r.status == 200}


# A run stopped half-way: 100 of 200 people synced, the rest at least 0.75 s away (4 in flight).
HALF_WAY = 100
MID_RUN = [{"id": i, "name": f"n{i}"} for i in range(2 * HALF_WAY)]


def started_then_half_way(emulator: Emulator, spawn_cli: Spawn, args: list[str]) -> subprocess.Popen[str]:
    emulator.latency = 0.03
    proc = spawn_cli(args)
    wait_until(lambda: len(emulator.people()) >= HALF_WAY)
    return proc


def test_a_stopped_run_resumes_with_only_the_rest(emulator: Emulator, files: Files, spawn_cli: Spawn) -> None:
    args = sync_args(files, emulator.url, MID_RUN, parallelism=4)
    proc = started_then_half_way(emulator, spawn_cli, args)
    proc.send_signal(signal.SIGTERM)
    assert finish(proc).code == 143
    emulator.latency = 0
    assert run_cli(args).code == 0
    assert len(emulator.people()) == len(MID_RUN)
    # The resumed run sent only the rest: no one was sent by both runs.
    assert len(people_puts(emulator)) == len(MID_RUN)


def test_a_killed_run_resends_at_most_what_was_in_flight_and_its_ledger_is_whole(
    emulator: Emulator, files: Files, spawn_cli: Spawn
) -> None:
    args = sync_args(files, emulator.url, MID_RUN, parallelism=4)
    proc = started_then_half_way(emulator, spawn_cli, args)
    proc.kill()
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    emulator.latency = 0
    landed = successes(emulator)
    before = len(emulator.requests())
    assert run_cli(args).code == 0
    resent = landed & {r.person_id for r in emulator.requests()[before:]}
    # Every answer the run had settled is in the ledger: only requests handed to the 4 workers
    # and not yet settled (4 sending, 4 more queued for them) can come again.
    assert len(resent) <= 8, sorted(resent, key=str)
    assert len(emulator.people()) == len(MID_RUN)
    db = sqlite3.connect(Path(files.root / "state.db"))
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()


def test_a_lost_answer_leaves_the_person_unvouched(emulator: Emulator, files: Files) -> None:
    pro = sync_args(files, emulator.url, [{"id": "y", "name": "pro"}])
    assert run_cli(pro).code == 0
    # The workspace applies "free" each time, but both answers are lost.
    emulator.add_fault(drop="after", person="y", times=2)
    free = sync_args(files, emulator.url, [{"id": "y", "name": "free"}])
    assert run_cli([*free, "--retries", "1"]).code == 1
    assert emulator.people()["y"] == {"name": "free"}
    again = run_cli(sync_args(files, emulator.url, [{"id": "y", "name": "pro"}]))
    assert again.code == 0
    assert "1 synced" in again.stderr
    assert emulator.people()["y"] == {"name": "pro"}


@pytest.mark.parametrize("transport", ["v1", "batch"])
def test_a_run_killed_mid_change_leaves_no_false_entry(
    emulator: Emulator, files: Files, transport: str, spawn_cli: Spawn
) -> None:
    """Run A, then B with other values killed half-way, then A again: everyone ends as A says."""
    # Thirty 900-byte attributes make batch items of 27 KB: about 18 to a batch, so the kill
    # finds some batches answered and some in flight.
    pads = {f"p{k}": "x" * 900 for k in range(30)} if transport == "batch" else {}
    mappings = [{"from": key, "to": key} for key in ["name", *pads]]
    a = [{"id": i, "name": f"a{i}"} for i in range(400)]
    b = [{"id": i, "name": f"b{i}", **pads} for i in range(400)]
    first = sync_args(files, emulator.url, a, transport=transport, mappings=mappings)
    assert run_cli(first).code == 0
    emulator.latency = 0.01
    proc = spawn_cli(sync_args(files, emulator.url, b, "b.json", parallelism=8, transport=transport, mappings=mappings))
    wait_until(lambda: sum(v["name"].startswith("b") for v in emulator.people().values()) >= 100)
    proc.kill()
    proc.communicate(timeout=30)
    emulator.latency = 0
    assert run_cli(sync_args(files, emulator.url, a, transport=transport, mappings=mappings)).code == 0
    assert {k: v["name"] for k, v in emulator.people().items()} == {str(i): f"a{i}" for i in range(400)}


def test_a_second_run_on_the_same_ledger_refuses_before_sending(
    emulator: Emulator, files: Files, spawn_cli: Spawn
) -> None:
    emulator.latency = 0.05
    proc = spawn_cli(sync_args(files, emulator.url, [{"id": i} for i in range(200)], parallelism=2))
    try:
        wait_until(lambda: len(emulator.people()) >= 1)
        before = len(emulator.requests())
        second = run_cli(sync_args(files, emulator.url, [{"id": "other"}], name="other.json"))
        assert second.code == 2
        assert f"another cio-sync run is using this ledger (pid {proc.pid}, started " in second.stderr
        assert all(r.method == "PUT" and r.person_id != "other" for r in emulator.requests()[before:])
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    emulator.latency = 0
    assert run_cli(sync_args(files, emulator.url, [{"id": "other"}], name="other.json")).code == 0


def wait_for_next_request(emulator: Emulator) -> None:
    seen = emulator.stats()["requests"]
    wait_until(lambda: emulator.stats()["requests"] > seen and emulator.stats()["in_flight"] == 1)


def test_no_write_transaction_stays_open_while_requests_wait(
    emulator: Emulator, files: Files, spawn_cli: Spawn
) -> None:
    emulator.latency = 0.1
    proc = spawn_cli(sync_args(files, emulator.url, [{"id": i} for i in range(100)], parallelism=1))
    try:
        wait_until(lambda: len(emulator.people()) >= 2)
        probe = sqlite3.connect(files.root / "state.db", timeout=0.05, isolation_level=None)
        for _ in range(8):
            # Once during each of eight requests: the run is waiting on the network then.
            wait_for_next_request(emulator)
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
        probe.close()
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_an_entry_that_cannot_be_read_is_withdrawn_before_sending(emulator: Emulator, tmp_path: Path) -> None:
    # The ledger vouches for "pro"; then its entries cannot be read (SQLite refuses every SELECT)
    # and "free" is sent, applied, its answer lost. The old entry must not survive to vouch for
    # "pro" while the workspace holds "free".
    config = make_config(emulator.url, parallelism=1)
    http = HttpSettings(retries=0)
    with Ledger(str(tmp_path / "state.db"), config) as ledger:
        assert sync(config, [{"id": "y", "name": "pro"}], ledger=ledger).synced == 1

        def refuse_select(action: int, *_: object) -> int:
            return sqlite3.SQLITE_DENY if action == sqlite3.SQLITE_SELECT else sqlite3.SQLITE_OK

        ledger._db.set_authorizer(refuse_select)
        emulator.add_fault(drop="after", person="y")
        assert quick_sync(config, [{"id": "y", "name": "free"}], ledger=ledger, http=http).failed == 1
        ledger._db.set_authorizer(None)
        assert emulator.people()["y"] == {"name": "free"}
        assert plan(config, [{"id": "y", "name": "pro"}], ledger=ledger).unchanged == 0

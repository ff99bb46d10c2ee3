"""The engine at the edges the promise is judged by: invalid records among a person's, answers that
may yet apply, a wall clock that steps back, a ledger that keeps stamps rising, and failing people
who must not fill memory. Real emulator, real sockets; the engine's clock is driven by the test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cio_sync.emulator import Emulator
from cio_sync.engine import people as people_module
from cio_sync.engine.sync import sync
from cio_sync.outcome import RecordOutcome, Status
from cio_sync.state.ledger import Ledger
from cio_sync.transport.client import HttpSettings

from .conftest import FAST, Files, config_dict, make_config, one_by_one, run_cli
from .fakeclock import FakeClock
from .quick import quick_sync

AGE = [{"from": "age", "to": "age", "as": "integer"}]
NO_RESENDS = HttpSettings(connect_timeout=2.0, read_timeout=5.0, retries=0, backoff_factor=0.0)


def stamps_of(emulator: Emulator, person: str) -> list[int]:
    """The ``_timestamp`` of every write of ``person`` the emulator received, in arrival order."""
    found: list[int] = []
    for request in emulator.requests():
        body = request.body
        if request.person_id == person and isinstance(body, dict):
            found.append(body["_timestamp"])
        elif isinstance(body, dict) and isinstance(body.get("batch"), list):
            found += [i["timestamp"] for i in body["batch"] if i["identifiers"].get("id") == person]
    return found


@pytest.mark.parametrize("transport", ["v1", "batch"])
def test_an_invalid_record_holds_back_its_persons_later_records(emulator: Emulator, transport: str) -> None:
    records = [
        {"id": "Y", "age": "1"},
        {"id": "Z", "age": "2"},
        {"id": "Y", "age": "4.2"},  # not an integer: invalid
        {"id": "Y", "age": "5"},
        {"id": "Z", "age": "6"},
    ]
    seen: list[RecordOutcome] = []
    config = make_config(emulator.url, mappings=AGE, transport=transport)
    result = sync(config, records, http=FAST, on_outcome=seen.append)
    by_index = {o.index: o for o in seen}
    assert by_index[2].status is Status.INVALID
    assert by_index[3].status is Status.NOT_ATTEMPTED and "record 2" in (by_index[3].reason or "")
    # Y keeps the value before the invalid record; Z, whom it does not name, goes on.
    assert emulator.people()["Y"] == {"age": 1}
    assert emulator.people()["Z"] == {"age": 6}
    assert (result.synced, result.invalid, result.not_attempted) == (3, 1, 1)


def test_failed_lists_a_persons_invalid_record_after_their_earlier_one_in_flight(
    emulator: Emulator, files: Files
) -> None:
    # Y's first write fails (400) while its invalid second record is read: --failed must hold
    # them in file order, so that fixing and feeding it back ends on the file's last value.
    emulator.add_fault(status=400, person="Y", times=1)
    data = [{"id": "Y", "age": "1"}, {"id": "Y", "age": "x"}, {"id": "Y", "age": "3"}]
    failed = files.root / "failed.json"
    run = run_cli(
        [
            "--config",
            files.config(config_dict(emulator.url, mappings=AGE)),
            "--data",
            files.data(data),
            "--failed",
            str(failed),
        ]
    )
    assert run.code == 1, run.stderr
    assert json.loads(failed.read_text()) == data
    fixed = [{"id": "Y", "age": "1"}, {"id": "Y", "age": "2"}, {"id": "Y", "age": "3"}]
    again = run_cli(["--config", files.config(config_dict(emulator.url, mappings=AGE)), "--data", files.data(fixed)])
    assert again.code == 0, again.stderr
    assert emulator.people()["Y"] == {"age": 3}


@pytest.mark.parametrize("transport", ["v1", "batch"])
def test_after_a_5xx_the_persons_next_write_is_stamped_later(emulator: Emulator, transport: str) -> None:
    # A gateway's 504 may come after it passed the write on: the write may still land.
    endpoint = "batch" if transport == "batch" else "customers"
    emulator.add_fault(status=504, endpoint=endpoint, times=1)
    clock = FakeClock()
    config = make_config(emulator.url, transport=transport, parallelism=1)
    failed = sync(config, [{"id": "Y", "name": "new"}], http=NO_RESENDS, clock=clock)
    assert failed.failed == 1
    # Fed back at once: the run that failed waited out its second, so this write is later.
    again = sync(config, [{"id": "Y", "name": "new"}], http=NO_RESENDS, clock=clock)
    assert again.synced == 1
    first, second = stamps_of(emulator, "Y")
    assert second > first


def test_a_wall_clock_stepped_back_mid_run_stamps_later_and_costs_at_most_a_second(emulator: Emulator) -> None:
    emulator.add_fault(drop="after", person="Y", times=1)
    clock = FakeClock()

    def step_back(outcome: RecordOutcome) -> None:
        if outcome.index == 0:
            clock.step_wall(-40)

    records = [{"id": "Y", "name": "old"}, {"id": "Y", "name": "new"}]
    http = HttpSettings(connect_timeout=2.0, read_timeout=5.0, retries=2, backoff_factor=0.0)
    result = sync(
        make_config(emulator.url, parallelism=1),
        records,
        http=http,
        clock=clock,
        on_outcome=step_back,
        index=one_by_one(),
    )
    assert result.synced == 2
    stamps = stamps_of(emulator, "Y")
    assert stamps == sorted(stamps) and stamps[-1] > stamps[0]
    assert emulator.people()["Y"] == {"name": "new"}
    # Not the forty seconds the wall clock lost: the hold and the end of the run, a second each.
    assert clock.waited <= 2.0


def test_with_a_ledger_stamps_keep_rising_across_runs_whatever_the_wall_clock_does(
    emulator: Emulator, tmp_path: Path
) -> None:
    config = make_config(emulator.url)
    clock = FakeClock(wall=2_000_000.5)
    with Ledger(str(tmp_path / "state.db"), config) as ledger:
        sync(config, [{"id": "Y", "name": "a"}], http=FAST, ledger=ledger, clock=clock)
    clock.step_wall(-3600)
    with Ledger(str(tmp_path / "state.db"), config) as ledger:
        sync(config, [{"id": "Y", "name": "b"}], http=FAST, ledger=ledger, clock=clock)
    first, second = stamps_of(emulator, "Y")
    assert second > first == 2_000_000
    assert emulator.people()["Y"] == {"name": "b"}


def test_a_run_killed_mid_request_leaves_the_next_a_floor_above_its_stamps(tmp_path: Path) -> None:
    # The stamp is written ahead of the request: whatever a killed run had in flight is older
    # than anything the next run sends, even within the same second.
    config = make_config("http://127.0.0.1:9")
    clock = FakeClock(wall=3_000_000.9)
    with Ledger(str(tmp_path / "state.db"), config) as ledger:
        ledger.stamped(3_000_000)
    with Ledger(str(tmp_path / "state.db"), config) as ledger:
        assert ledger.stamp_floor() == 3_000_001
    assert int(clock.wall()) == 3_000_000


def test_every_write_failing_for_many_people_spills_and_still_holds_back(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(people_module, "SPILL_AFTER", 5)
    emulator.add_fault("status=400,times=forever")
    records: list[dict[str, Any]] = [{"id": n % 40, "name": str(n)} for n in range(80)]
    seen: list[RecordOutcome] = []
    result = sync(make_config(emulator.url), records, http=FAST, on_outcome=seen.append, index=one_by_one())
    assert result.failed == 40 and result.not_attempted == 40
    held = [o for o in seen if o.status is Status.NOT_ATTEMPTED]
    assert all(o.index >= 40 and f"record {o.index - 40} " in (o.reason or "") for o in held)


def _read_only_mount_works() -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _read_only_mount_works(), reason="needs root and unshare to mount a folder read-only")
def test_a_dry_run_reads_a_ledger_on_a_read_only_filesystem(emulator: Emulator, files: Files) -> None:
    args = ["--config", files.config(config_dict(emulator.url)), "--data", files.data([{"id": 1, "name": "a"}])]
    state = str(files.root / "state.db")
    assert run_cli([*args, "--state", state]).code == 0
    root = str(files.root)
    script = f'mount --bind "{root}" "{root}" && mount -o remount,bind,ro "{root}" && exec "$@"'
    cli = shutil.which("cio-sync", path=str(Path(sys.executable).parent))
    assert cli is not None
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", script, "sh", cli, *args, "--state", state, "--dry-run"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "0 new, 0 changed, 1 unchanged" in proc.stderr


def test_one_batch_left_unanswered_is_one_request_not_one_per_person(emulator: Emulator) -> None:
    # The run stops when requests in a row get no answer; a batch of 25 people is one request.
    # The batch that carries person 3000: thousands of people, in the middle of the run.
    emulator.add_fault(drop="before", endpoint="batch", person="3000", times=1)
    config = make_config(emulator.url, transport="batch", parallelism=2)
    result = quick_sync(config, [{"id": n, "name": "x"} for n in range(6000)], http=NO_RESENDS)
    assert result.stopped is None
    assert result.failed >= 100 and result.synced == 6000 - result.failed > 0

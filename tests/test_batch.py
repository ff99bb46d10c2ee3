"""The v2 batch transport and update-only mode, against the emulator."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from cio_sync import Status, sync
from cio_sync.emulator import Emulator
from cio_sync.engine.packer import ITEMS_IN_FLIGHT, RECORDS_A_BATCH
from cio_sync.input.config import IdType
from cio_sync.input.mapping import PersonUpdate, batch_item

from .conftest import FAST, Files, config_dict, make_config, run_cli, unstamped
from .quick import quick_sync

PEOPLE: list[Any] = [
    {"id": 1, "name": "Ada", "computed_ltv": 1.5},
    {"id": "a/b", "name": "Slash"},
    {"id": "Grace@Example.com", "name": "Grace"},
    {"id": "cio_x1", "name": "By cio_id"},
    {"id": 1, "computed_ltv": None},
    "not a record",
    {"id": 2, "name": None},
]


def batch_posts(emu: Emulator) -> list[Any]:
    return [r.body for r in emu.requests() if r.method == "POST" and r.target == "/api/v2/batch"]


def test_batch_end_state_equals_v1_end_state(emulator: Emulator) -> None:
    v1 = sync(make_config(emulator.url), PEOPLE, http=FAST)
    expected = emulator.people()
    emulator.reset()
    batch = sync(make_config(emulator.url, transport="batch"), PEOPLE, http=FAST)
    assert emulator.people() == expected
    assert (batch.synced, batch.invalid) == (v1.synced, v1.invalid) == (6, 1)
    assert len(batch_posts(emulator)) <= 2
    assert [r for r in emulator.requests() if r.method == "PUT"] == []


def test_batch_items_name_the_person_by_the_shape_of_the_id(emulator: Emulator) -> None:
    sync(make_config(emulator.url, transport="batch"), PEOPLE[:4], http=FAST)
    (post,) = batch_posts(emulator)
    assert [item["identifiers"] for item in post["batch"]] == [
        {"id": "1"},
        {"id": "a/b"},
        {"email": "Grace@Example.com"},
        {"cio_id": "x1"},
    ]
    assert all(item["type"] == "person" and item["action"] == "identify" for item in post["batch"])
    assert post["batch"][0]["attributes"] == {"name": "Ada", "ltv": 1.5}


def test_one_person_appears_once_per_batch_in_file_order(emulator: Emulator) -> None:
    records = [{"id": i % 3, "name": f"v{i}"} for i in range(12)]
    result = sync(make_config(emulator.url, transport="batch", parallelism=2), records, http=FAST)
    assert result.synced == 12
    for post in batch_posts(emulator):
        ids = [item["identifiers"]["id"] for item in post["batch"]]
        assert len(ids) == len(set(ids))
    assert emulator.people() == {"0": {"name": "v9"}, "1": {"name": "v10"}, "2": {"name": "v11"}}


def test_207_errors_map_to_the_right_records(emulator: Emulator) -> None:
    emulator.add_fault(reject=True, person="a/b", times=None)
    emulator.add_fault(reject=True, person="cio_x1", times=None)
    outcomes: list[Any] = []
    result = sync(make_config(emulator.url, transport="batch"), PEOPLE, http=FAST, on_outcome=outcomes.append)
    failed = sorted((o.index, o.person_id, o.http_status) for o in outcomes if o.status is Status.FAILED)
    assert failed == [(1, "a/b", 207), (3, "cio_x1", 207)]
    assert all("injected fault" in (o.reason or "") for o in outcomes if o.status is Status.FAILED)
    assert result.synced == 4
    assert "a/b" not in emulator.people()
    assert emulator.people()["1"] == {"name": "Ada", "ltv": None}


def test_a_400_fails_the_whole_batch(emulator: Emulator) -> None:
    emulator.add_fault(endpoint="batch", status=400)
    result = sync(make_config(emulator.url, transport="batch"), PEOPLE[:3], http=FAST)
    assert (result.synced, result.failed) == (0, 3)
    assert all(o.reason == "HTTP 400: injected fault" for o in result.problems)


def test_a_5xx_batch_is_resent(emulator: Emulator) -> None:
    emulator.add_fault(endpoint="batch", status=503)
    result = quick_sync(make_config(emulator.url, transport="batch"), PEOPLE[:3], http=FAST)
    assert result.synced == 3
    assert len(batch_posts(emulator)) == 2


def test_a_401_batch_stops_the_run(emulator: Emulator) -> None:
    emulator.add_fault(endpoint="batch", status=401, times=None)
    records = [{"id": i} for i in range(30)]
    result = sync(make_config(emulator.url, transport="batch", parallelism=1), records, http=FAST)
    assert result.stopped == "credentials"
    assert result.synced == 0
    assert len(batch_posts(emulator)) == 1


def test_items_over_32_kb_are_invalid_for_batches(emulator: Emulator) -> None:
    mappings = [{"from": f"f{i}", "to": f"a{i}"} for i in range(40)]
    big = {"id": "big", **{f"f{i}": "x" * 900 for i in range(40)}}
    result = sync(make_config(emulator.url, transport="batch", mappings=mappings), [big, {"id": "ok"}], http=FAST)
    assert (result.synced, result.invalid) == (1, 1)
    assert "32 KB" in (result.problems[0].reason or "")


def test_batches_stay_under_500_kb(emulator: Emulator) -> None:
    mappings = [{"from": "bio", "to": "bio"}]
    records = [{"id": i, "bio": "y" * 900} for i in range(1500)]
    result = sync(make_config(emulator.url, transport="batch", mappings=mappings), records, http=FAST)
    assert result.synced == 1500
    posts = [r for r in emulator.requests() if r.method == "POST"]
    assert len(posts) >= 3
    # Bodies as sent are "smaller than 500kb", and full batches come close to it.
    assert all(len(p.raw) < 500_000 for p in posts)
    assert max(len(p.raw) for p in posts) > 499_000


@pytest.mark.parametrize("transport", ["v1", "batch"])
def test_update_mode_changes_existing_people_and_creates_none(emulator: Emulator, transport: str) -> None:
    emulator.add_person(id="1", attributes={"plan": "pro"})
    result = sync(make_config(emulator.url, mode="update", transport=transport), PEOPLE[:2], http=FAST)
    assert result.synced == 2
    assert emulator.people() == {"1": {"plan": "pro", "name": "Ada", "ltv": 1.5}}
    if transport == "v1":
        assert {r.person_id: unstamped(r.body) for r in emulator.requests() if r.method == "PUT"} == {
            "1": {"name": "Ada", "ltv": 1.5, "_update": True},
            "a/b": {"name": "Slash", "_update": True},
        }
    else:
        (post,) = batch_posts(emulator)
        assert [item["attributes"]["_update"] for item in post["batch"]] == [True, True]


@pytest.mark.parametrize(("option", "value"), [("--transport", "batch"), ("--mode", "update")])
def test_cli_options_override_the_file(emulator: Emulator, files: Files, option: str, value: str) -> None:
    run = run_cli(
        ["--config", files.config(config_dict(emulator.url)), "--data", files.data(PEOPLE[:1]), option, value]
    )
    assert run.code == 0, run.stderr
    request = next(r for r in emulator.requests() if r.method != "GET")
    if option == "--transport":
        assert request.target == "/api/v2/batch"
    else:
        assert unstamped(request.body) == {"name": "Ada", "ltv": 1.5, "_update": True}


def test_update_mode_refuses_a_mapping_to_update(emulator: Emulator, files: Files) -> None:
    config = config_dict(emulator.url, mode="update", mappings=[{"from": "x", "to": "_update"}])
    run = run_cli(["--config", files.config(config), "--data", files.data([])])
    assert run.code == 2
    assert '"_update" is set by "mode": "update"' in run.stderr


def test_batch_keeps_the_ledger_failed_file_and_report(emulator: Emulator, files: Files) -> None:
    emulator.add_fault(reject=True, person="a/b")
    state, failed, report = (str(files.root / name) for name in ("state.db", "failed.json", "report.json"))
    # No person twice: a repeated person is rightly sent again (see the ledger tests).
    people = [p for i, p in enumerate(PEOPLE) if i != 4]
    args = ["--config", files.config(config_dict(emulator.url, transport="batch")), "--data", files.data(people)]
    first = run_cli([*args, "--state", state, "--failed", failed, "--report", report])
    assert first.code == 1
    assert sorted(json.loads(Path(failed).read_text()), key=json.dumps) == sorted(
        [PEOPLE[1], PEOPLE[5]], key=json.dumps
    )
    assert json.loads(Path(report).read_text())["counts"]["failed"] == 1
    posts = len(batch_posts(emulator))
    second = run_cli([*args, "--state", state])
    assert second.code == 1, "the record that is not an object stays invalid"
    (last,) = batch_posts(emulator)[posts:]
    assert [item["identifiers"] for item in last["batch"]] == [{"id": "a/b"}]


def test_a_batch_body_stays_smaller_than_500_kb_counting_the_envelope(emulator: Emulator) -> None:
    # Items of 820 bytes: 609 of them with their commas and the envelope make exactly 500,000.
    stamp = int(time.time())
    blank = batch_item(PersonUpdate(0, "00000", b'{"bio":""}', None, IdType.ID, "00000", "00000"), stamp)
    records = [{"id": f"{i:05d}", "bio": "y" * (820 - len(blank))} for i in range(1300)]
    config = make_config(emulator.url, transport="batch", parallelism=1, mappings=[{"from": "bio", "to": "bio"}])
    result = sync(config, records, http=FAST)
    assert result.synced == 1300
    sizes = [len(r.raw) for r in emulator.requests() if r.method == "POST"]
    assert max(sizes) == 499_179, "608 items: as many as fit below the limit"
    assert sum(len(b["batch"]) for b in batch_posts(emulator)) == 1300


@pytest.mark.parametrize("shape", ["no-index", "string-index", "not-json"])
def test_a_207_that_does_not_say_which_items_failed_clears_none(emulator: Emulator, files: Files, shape: str) -> None:
    emulator.add_fault(odd_207=shape, person="b")
    state, failed = str(files.root / "state.db"), files.root / "failed.json"
    data = [{"id": "a", "name": "A"}, {"id": "b", "name": "B"}, {"id": "c", "name": "C"}]
    args = ["--config", files.config(config_dict(emulator.url, transport="batch")), "--data", files.data(data)]
    run = run_cli([*args, "--state", state, "--failed", str(failed)])
    assert run.code == 1
    assert "the answer does not say which items failed" in run.stderr
    assert json.loads(failed.read_text()) == data
    posts = len(batch_posts(emulator))
    again = run_cli([*args, "--state", state])
    assert again.code == 0
    assert "3 synced" in again.stderr, "the ledger vouched for none of them"
    assert [item["identifiers"]["id"] for item in batch_posts(emulator)[posts]["batch"]] == ["a", "b", "c"]
    assert emulator.people() == {"a": {"name": "A"}, "b": {"name": "B"}, "c": {"name": "C"}}


def test_with_fewer_batches_out_than_workers_a_batch_waits_to_fill(emulator: Emulator) -> None:
    # At P=25 ten batches of 1,000 hold the records out. An answer makes room for one more: had the
    # idle workers taken each part-filled batch, the batches would have shrunk to a few records
    # each (2,198 requests for 100,000 people, measured), not stayed full.
    emulator.latency = 0.01
    records = [{"id": i} for i in range(12_000)]
    result = sync(make_config(emulator.url, transport="batch", parallelism=25), records, http=FAST)
    assert result.synced == 12_000
    sizes = [len(post["batch"]) for post in batch_posts(emulator)]
    assert len(sizes) <= 12_000 // RECORDS_A_BATCH + 2, sizes


@pytest.mark.parametrize("parallelism", [4, 25])
def test_batches_in_flight_carry_a_bounded_number_of_records(emulator: Emulator, parallelism: int) -> None:
    """Memory stays flat as parallelism grows: the batches in flight share the records out, each
    carrying its share or 1,000 (then fewer are out than workers)."""
    records = [{"id": i} for i in range(4_000)]
    result = sync(make_config(emulator.url, transport="batch", parallelism=parallelism), records, http=FAST)
    assert result.synced == 4_000
    sizes = [len(post["batch"]) for post in batch_posts(emulator)]
    assert max(sizes) == max(RECORDS_A_BATCH, ITEMS_IN_FLIGHT // (parallelism + 2))
    assert sum(sizes) == 4_000

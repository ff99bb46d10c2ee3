"""One write per person: a repeated person's records merged in file order, with or without --state,
and the dry run's plan held against the run that follows it."""

from __future__ import annotations

import collections
import json
import random
import sqlite3
import tracemalloc
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cio_sync import Status, open_data_file, plan, sync
from cio_sync.emulator import Emulator
from cio_sync.engine import merge, repeats
from cio_sync.engine.merge import Merger, Work
from cio_sync.engine.repeats import PersonIndex, temporary_database
from cio_sync.input.mapping import InvalidRecord, PersonUpdate, RecordMapper, batch_item, merged_body

from .conftest import API_KEY, FAST, SITE_ID, Files, config_dict, make_config, run_cli

ATTRIBUTES = ("name", "plan", "score")


@pytest.fixture(params=["memory", "spilled", "mixed"])
def hold(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each in-process test three ways: the records waiting for a merge held in memory, all of
    them in the temporary database, and a few in memory with the rest in the database."""
    monkeypatch.setattr(merge, "HOLD_IN_MEMORY", {"memory": 10_000, "spilled": 0, "mixed": 3}[request.param])


MAPPINGS = [{"from": a, "to": a} for a in ATTRIBUTES]


def sequential(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What writing each valid record on its own, in file order, leaves in the workspace."""
    people: dict[str, dict[str, Any]] = {}
    for record in records:
        if isinstance(record.get("id"), str):
            people.setdefault(record["id"], {}).update({a: record[a] for a in ATTRIBUTES if a in record})
    return people


def repeated(people: int, times: int, seed: int) -> list[dict[str, Any]]:
    """``people`` people, each named ``times`` times, shuffled, each record setting some attributes."""
    rng = random.Random(seed)
    records = []
    for n in range(people * times):
        record: dict[str, Any] = {"id": f"p{n % people}"}
        for attribute in rng.sample(ATTRIBUTES, rng.randint(0, len(ATTRIBUTES))):
            record[attribute] = f"{attribute}{n}"
        records.append(record)
    rng.shuffle(records)
    return records


def person_writes(emulator: Emulator, since: int = 0) -> int:
    """Person writes the emulator received after its first ``since`` requests: v1 PUTs, and the
    items of v2 batches."""
    count = 0
    for request in emulator.requests()[since:]:
        if request.method == "PUT":
            count += 1
        elif request.method == "POST" and isinstance(request.body, dict) and "batch" in request.body:
            count += len(request.body["batch"])
    return count


@pytest.mark.parametrize("transport", ["v1", "batch"])
def test_a_repeated_person_is_written_once_per_run_and_not_again_with_state(files: Files, transport: str) -> None:
    records = repeated(100, 3, seed=1)
    with Emulator(SITE_ID, API_KEY) as emulator:
        config = files.config(config_dict(emulator.url, mappings=MAPPINGS, transport=transport))
        args = ["--config", config, "--data", files.data(records), "--state", str(files.root / "state.db")]
        first = run_cli(args)
        assert first.code == 0, first.stderr
        assert "300 records: 300 synced" in first.stderr
        assert person_writes(emulator) == 100
        assert emulator.people() == sequential(records)
        before = len(emulator.requests())
        second = run_cli(args)
        assert second.code == 0, second.stderr
        assert "300 records: 0 synced, 300 unchanged" in second.stderr
        assert len(emulator.requests()) == before


@pytest.mark.parametrize(("transport", "seed"), [("v1", 1), ("batch", 2)])
def test_the_dry_run_counts_what_the_run_then_sends(files: Files, transport: str, seed: int, hold: None) -> None:
    rng = random.Random(seed)
    records: list[Any] = repeated(40, 3, seed)
    # Some records invalid (a bad id, a person's record that cannot be cast) amid the repeats.
    for _ in range(6):
        records.insert(rng.randrange(len(records)), {"id": f"p{rng.randrange(40)}", "score": "not a number"})
    records.insert(rng.randrange(len(records)), {"id": 1.5})
    mappings = [*MAPPINGS[:2], {"from": "score", "to": "score", "as": "integer"}]
    for record in records:
        if isinstance(record.get("score"), str) and record["score"].startswith("score"):
            record["score"] = len(record["score"])
    state = str(files.root / "state.db")
    with Emulator(SITE_ID, API_KEY) as emulator:
        config = files.config(config_dict(emulator.url, mappings=mappings, transport=transport))
        for ledger in ([], ["--state", state], ["--state", state]):
            args = ["--config", config, "--data", files.data(records), *ledger]
            plan_path = files.root / "plan.json"
            planned = run_cli([*args, "--dry-run", "--report", str(plan_path)])
            assert planned.code == 1
            plan = json.loads(plan_path.read_text())["counts"]
            before = len(emulator.requests())
            report_path = files.root / "report.json"
            run = run_cli([*args, "--report", str(report_path)])
            assert run.code == 1
            done = json.loads(report_path.read_text())["counts"]
            assert person_writes(emulator, before) == plan["to_send"]
            assert done["invalid"] == plan["invalid"]
            assert done["not_attempted"] == plan["held_back"]
            assert done["synced"] + done["unchanged"] == plan["valid"] - plan["held_back"]
        assert plan["to_send"] == 0  # the third run found the second's work in the ledger


def test_an_invalid_record_ends_its_persons_merge_and_holds_back_the_rest(files: Files, hold: None) -> None:
    records = [
        {"id": "a", "name": "first"},
        {"id": "b", "name": "b"},
        {"id": "a", "plan": "pro"},
        {"id": "a", "score": "high"},
        {"id": "a", "name": "after"},
    ]
    mappings = [*MAPPINGS[:2], {"from": "score", "to": "score", "as": "integer"}]
    failed = files.root / "failed.json"
    with Emulator(SITE_ID, API_KEY) as emulator:
        config = files.config(config_dict(emulator.url, mappings=mappings))
        run = run_cli(["--config", config, "--data", files.data(records), "--failed", str(failed)])
        assert run.code == 1
        # The records before the invalid one, merged, in one write; it and the later one held.
        assert emulator.people() == {"a": {"name": "first", "plan": "pro"}, "b": {"name": "b"}}
        assert emulator.writes("a") == 1
        assert json.loads(failed.read_text()) == records[3:]
        fixed = [{**records[3], "score": 9}, records[4]]
        failed.write_text(json.dumps(fixed))
        again = run_cli(["--config", config, "--data", str(failed)])
        assert again.code == 0, again.stderr
        assert emulator.people()["a"] == {"name": "after", "plan": "pro", "score": 9}


@pytest.mark.parametrize("transport", ["v1", "batch"])
def test_a_failed_merged_write_puts_every_record_of_its_person_in_failed(
    files: Files, transport: str, hold: None
) -> None:
    records = [{"id": "x", "name": "1"}, {"id": "y", "name": "y"}, {"id": "x", "plan": "2"}, {"id": "x", "name": "3"}]
    failed = files.root / "failed.json"
    with Emulator(SITE_ID, API_KEY) as emulator:
        emulator.add_fault(status=400, person="x", times=None)
        if transport == "batch":
            emulator.add_fault(status=400, endpoint="batch", times=1)
        config = files.config(config_dict(emulator.url, mappings=MAPPINGS, transport=transport, parallelism=1))
        run = run_cli(["--config", config, "--data", files.data(records), "--failed", str(failed)])
        assert run.code == 1
        written = json.loads(failed.read_text())
        assert [r for r in written if r["id"] == "x"] == [records[0], records[2], records[3]]
        emulator.faults.clear()
        again = run_cli(["--config", config, "--data", str(failed)])
        assert again.code == 0, again.stderr
        assert emulator.people()["x"] == {"name": "3", "plan": "2"}


def test_a_mapping_that_sets_the_timestamp_writes_each_record(emulator: Emulator) -> None:
    mappings = [{"from": "name", "to": "name"}, {"from": "at", "to": "_timestamp"}]
    config = make_config(emulator.url, mappings=mappings, parallelism=1)
    records = [{"id": "t", "name": "new", "at": 200}, {"id": "t", "name": "old", "at": 100}]
    result = sync(config, records, http=FAST)
    assert result.synced == 2
    assert person_writes(emulator) == 2
    # The API orders them by their stamps, not by the file: the older one is ignored.
    assert emulator.people()["t"] == {"name": "new"}


def test_records_that_can_be_read_once_are_merged_too(emulator: Emulator, hold: None) -> None:
    records = repeated(30, 4, seed=5)
    result = sync(make_config(emulator.url, mappings=MAPPINGS), iter(records), http=FAST)
    assert result.synced == 120
    assert emulator.people() == sequential(records)
    assert person_writes(emulator) == 30


def test_people_whose_keys_count_together_are_merged_at_the_end(emulator: Emulator, hold: None) -> None:
    # As when two people's keys share a hash: "a" is counted with "b"'s records, so its count never
    # runs out while the file is read; its merge is sent once every record was read.
    records = [{"id": "a", "name": "1"}, {"id": "b", "name": "b"}, {"id": "a", "plan": "2"}, {"id": "c"}]
    config = make_config(emulator.url, mappings=MAPPINGS)
    index = PersonIndex.of(
        records, lambda run: ["a" if isinstance(r, dict) and r.get("id") in ("a", "b") else None for r in run]
    )
    outcomes: list[tuple[int, Status]] = []
    result = sync(config, records, http=FAST, index=index, on_outcome=lambda o: outcomes.append((o.index, o.status)))
    assert result.synced == 4
    assert emulator.people() == sequential(records)
    assert emulator.writes("a") == 1
    assert sorted(outcomes) == [(i, Status.SYNCED) for i in range(4)]


def test_a_stopped_run_lists_the_records_waiting_for_a_merge(files: Files, hold: None) -> None:
    # Every person twice, the second half after the first: at a stop, half the records wait.
    records = [{"id": f"p{n % 500}", "name": str(n)} for n in range(1000)]
    failed = files.root / "failed.json"
    with Emulator(SITE_ID, API_KEY) as emulator:
        emulator.add_fault(status=401, times=None, person="p3")
        config = files.config(config_dict(emulator.url, mappings=MAPPINGS, parallelism=1))
        run = run_cli(["--config", config, "--data", files.data(records), "--failed", str(failed)])
        assert run.code != 0
        written = json.loads(failed.read_text())
        synced = {p for p, attributes in emulator.people().items() if attributes}
        assert sorted(written, key=lambda r: int(r["name"])) == [r for r in records if r["id"] not in synced]
        for person in {r["id"] for r in written}:  # each person's records in file order
            mine = [r for r in written if r["id"] == person]
            assert mine == sorted(mine, key=lambda r: int(r["name"]))


@settings(max_examples=60)
@given(st.lists(st.dictionaries(st.sampled_from("abc"), st.integers(-3, 3) | st.text(max_size=3)), max_size=6))
def test_a_merged_body_is_what_writing_each_body_in_turn_leaves(bodies: list[dict[str, Any]]) -> None:
    encoded = [json.dumps(b, separators=(",", ":"), ensure_ascii=False).encode() for b in bodies]
    expected: dict[str, Any] = {}
    for body in bodies:
        expected.update(body)
    assert json.loads(merged_body(encoded)) == expected


def test_a_merged_body_keeps_every_value_exactly() -> None:
    bodies = [b'{"a":1e+300,"b":0.1,"c":-0.0}', b'{"d":12345678901234567890,"b":"\xc3\xbc"}', b'{"e":null}']
    assert merged_body(bodies) == b'{"a":1e+300,"b":"\xc3\xbc","c":-0.0,"d":12345678901234567890,"e":null}'


def test_each_person_is_sent_at_their_last_record_standing_for_the_earlier(tmp_path: Path) -> None:
    config = make_config("http://127.0.0.1:9", mappings=MAPPINGS)
    mapper = RecordMapper.for_config(config)
    people = 5_000

    def records() -> Iterator[dict[str, Any]]:
        for n in range(2 * people):
            yield {"id": f"p{n % people}", "name": str(n)}

    index = PersonIndex.of(records(), mapper.person_keys)
    merger = Merger(mapper, index, hold_in_memory=500)
    merged = [w for n, record in enumerate(records()) if (w := feed(merger, n, record)) is not None]
    merger.close()
    # Each person's write came at their second record, with it the first's outcome to share.
    assert len(merged) == people
    assert all(isinstance(w, PersonUpdate) and w.covers == w.index - people for w in merged)


@pytest.mark.parametrize("transport", ["v1", "batch"])
def test_a_person_too_large_to_merge_is_written_one_record_at_a_time(
    emulator: Emulator, transport: str, hold: None
) -> None:
    # Forty records of one person, each setting its own 900-character attribute: merged, about
    # 36 KB, more than a batch item may hold; each on its own fits.
    records = [{"id": "big", f"a{n}": "x" * 900} for n in range(40)]
    records.insert(20, {"id": "small", "a0": "s"})
    mappings = [{"from": f"a{n}", "to": f"a{n}"} for n in range(40)]
    config = make_config(emulator.url, mappings=mappings, transport=transport)
    result = sync(config, records, http=FAST)
    assert (result.synced, result.invalid) == (41, 0)
    assert emulator.people()["big"] == {f"a{n}": "x" * 900 for n in range(40)}
    assert person_writes(emulator) == 41


def test_the_dry_run_sizes_a_batch_item_with_its_stamp(files: Files) -> None:
    mappings = [{"from": f"a{n}", "to": f"a{n}"} for n in range(40)]
    config = config_dict("http://127.0.0.1:9", mappings=mappings, transport="batch")
    mapper = RecordMapper.for_config(make_config("http://127.0.0.1:9", mappings=mappings, transport="batch"))
    # A record whose item is 31,990 bytes unstamped (values of at most 1,000 characters each):
    # with the run's ten-digit stamp it is over 32,000.
    record: dict[str, Any] = {"id": "p", **{f"a{n}": "" for n in range(40)}}
    for n in range(40):
        update = mapper.map(0, record)
        assert isinstance(update, PersonUpdate)
        record[f"a{n}"] = "x" * min(1000, 31_990 - len(batch_item(update)))
    update = mapper.map(0, record)
    assert isinstance(update, PersonUpdate) and len(batch_item(update)) == 31_990
    report = files.root / "plan.json"
    args = ["--config", files.config(config), "--data", files.data([record]), "--dry-run", "--report", str(report)]
    planned = run_cli(args)
    assert planned.code == 1
    assert json.loads(report.read_text())["counts"]["invalid"] == 1
    assert "as a batch item it is 32,0" in planned.stderr


def feed(merger: Merger, index: int, record: object) -> Work | None:
    """Record ``index`` was read: the work it makes ready, if any (more may follow in ``merger.after``)."""
    ready, taken = merger.feed_run([merger.mapper.map(index, record)], 0)
    assert taken == 1
    return ready[0] if ready else None


def test_a_stop_settles_the_work_made_ready_and_not_taken() -> None:
    config = make_config("http://127.0.0.1:9", mappings=[{"from": "n", "to": "n", "as": "integer"}])
    mapper = RecordMapper.for_config(config)
    records = [{"id": "a", "n": "1"}, {"id": "a", "n": "2"}, {"id": "a", "n": "x"}]
    merger = Merger(mapper, PersonIndex.of(records, mapper.person_keys))
    ready = [feed(merger, n, record) for n, record in enumerate(records)]
    # The invalid record ended the merge: the first two came out merged, and it is to follow.
    assert ready[:2] == [None, None]
    merged = ready[2]
    assert isinstance(merged, PersonUpdate) and (merged.index, merged.covers) == (1, 0)
    left = list(merger.drain())
    assert len(left) == 1 and isinstance(left[0], InvalidRecord) and left[0].index == 2
    merger.close()


def test_a_full_temporary_directory_ends_the_run_in_words_a_user_can_act_on(
    files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite's own cap on the database's pages stands for a full disk: SQLITE_FULL, as it comes.
    def tiny() -> sqlite3.Connection:
        db = temporary_database()
        db.execute("PRAGMA max_page_count = 8")
        return db

    monkeypatch.setattr(merge, "temporary_database", tiny)
    monkeypatch.setattr(merge, "HOLD_IN_MEMORY", 0)
    records = [{"id": f"p{n % 2000}", "name": "x" * 200} for n in range(4000)]
    with Emulator(SITE_ID, API_KEY) as emulator:
        config = files.config(config_dict(emulator.url, mappings=MAPPINGS))
        for extra in ([], ["--dry-run"]):
            run = run_cli(["--config", config, "--data", files.data(records), *extra])
            assert run.code == 74
            assert "temporary storage failed (database or disk is full)" in run.stderr
            assert "TMPDIR" in run.stderr
            assert "internal error" not in run.stderr


def test_a_data_file_handed_to_the_library_without_an_index_is_merged(files: Files) -> None:
    records = repeated(50, 3, seed=9)
    with Emulator(SITE_ID, API_KEY) as emulator, open_data_file(files.data(records)) as data:
        result = sync(make_config(emulator.url, mappings=MAPPINGS), data.records(), http=FAST)
        assert result.synced == 150
        assert emulator.people() == sequential(records)
        assert person_writes(emulator) == 50


@pytest.mark.parametrize("invalid", [False, True])
def test_a_dry_run_counts_a_plain_run_as_the_sync_would(emulator: Emulator, invalid: bool) -> None:
    # Runs of plain records are planned at once: the records merged into one write still count
    # as records (each person is named twice), and a person held back behind their invalid record
    # in an earlier run is still held back (each person is named once), as the sync finds them.
    config = make_config(emulator.url, mappings=[{"from": "name", "to": "name"}], transport="batch")
    people = 600 if invalid else 300
    records: list[object] = [{"id": "x", "name": "a" * 1001}] if invalid else []
    records += [{"id": f"p{n % people}", "name": f"n{n}"} for n in range(600)]
    records += [{"id": "x", "name": "ok"}] if invalid else []
    planned = plan(config, records)
    held = 1 if invalid else 0
    assert (planned.total, planned.invalid, planned.held_back) == (len(records), held, held)
    assert (planned.people, planned.to_send) == (people, people)
    result = sync(config, records, http=FAST)
    assert (result.total, result.invalid, result.held_behind_invalid) == (len(records), held, held)
    assert result.synced == 600
    assert person_writes(emulator) == people


def test_the_merges_made_ready_at_once_are_bounded() -> None:
    # The last records of 200 people, together, each ending a merge of 30 records of 900 bytes
    # each: the merger makes ready about a megabyte of merged bodies at once, and takes the rest
    # of the run after them (as a record at a time would), not 5 MB.
    mappings = [{"from": f"v{k}", "to": f"v{k}"} for k in range(30)]
    mapper = RecordMapper.for_config(make_config("http://127.0.0.1:9", mappings=mappings))
    records = [{"id": f"p{n % 200}", f"v{n // 200}": "x" * 900} for n in range(200 * 30)]
    merger = Merger(mapper, PersonIndex.of(records, mapper.person_keys))
    made, taken = merger.feed_run(mapper.map_run(0, records), 0)
    merger.close()
    assert 0 < len(made) < 200 and taken < len(records)
    assert merge.READY_BYTES <= sum(len(w.body) for w in made if isinstance(w, PersonUpdate)) < 2 * merge.READY_BYTES


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 6000),
    st.integers(1, 6000),
    st.integers(0, 2**32),
    st.sampled_from([1, 7, 64, 1000, 1 << 15]),
)
def test_the_index_counts_each_person_named_more_than_once(records: int, people: int, seed: int, run: int) -> None:
    # Hashes sorted a run at a time and counted a range at a time: each person named more than
    # once counts down from how often the file names them, whatever the runs and ranges.
    draw = random.Random(seed)
    keys = [f"p{draw.randrange(people)}" for _ in range(records)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(repeats, "_RUN", run)
        index = PersonIndex.of(keys, lambda records: cast("list[str | None]", list(records)))
    counted = collections.Counter(keys)
    assert index.repeats == any(count > 1 for count in counted.values())
    for key in sorted(counted, key=hash):
        expected = counted[key] - 1 if counted[key] > 1 else None
        assert index.take(key) == expected


def test_counting_a_person_named_in_every_record_takes_no_more_memory_than_one_named_once() -> None:
    # Each run of hashes is kept as its distinct hashes and their counts: one person named in
    # 300,000 records is a few bytes a run, not 8 bytes a record, when the counts are added up.
    index = PersonIndex(lambda records: cast("list[str | None]", list(records)))
    for _ in range(300):
        index.note(["anyone"] * 1000)
    tracemalloc.start()
    try:
        index.finish()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert index.take("anyone") == 300_000 - 1
    assert peak < 500_000


def test_the_count_of_a_stretch_that_names_no_one_twice_is_its_hashes_alone() -> None:
    # On disk, 8 bytes a hash for a run that names each person once (most do), 16 for one that
    # names someone twice; and the counts come out the same either way.
    runs = repeats._SortedRuns()
    once = array("q", range(0, 3000))
    twice = array("q", [*range(5000, 5500), 5000, 5000, 5001])
    runs.add(once)
    runs.add(twice)
    runs.add(array("q", range(2000, 2500)))  # named again, in another run
    assert runs._file is not None
    assert runs._file.tell() == 8 * 3000 + 16 * 500 + 8 * 500
    expected = [(h, 2) for h in range(2000, 2500)] + [(5000, 3), (5001, 2)]
    assert list(runs.repeated()) == expected


def test_the_count_holds_about_a_kilobyte_a_stretch_of_records() -> None:
    # Each run keeps where its parts begin, for the whole check: a list of 257 ints was 9.5 KB
    # a run (29 MB for 100,000,000 records), an array is 1 KB.
    runs = repeats._SortedRuns()
    tracemalloc.start()
    try:
        for run in range(200):
            runs.add(array("q", range(run * 1000, run * 1000 + 1000)))
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 200 * 2000
    assert list(runs.repeated()) == []

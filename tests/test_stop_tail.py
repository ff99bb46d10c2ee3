"""A stopped run does not read the rest of the file: the unread records are found by position,
copied to --failed as they stand, and counted; a re-run of --failed completes the sync."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cio_sync import Stop, sync
from cio_sync.emulator import Emulator
from cio_sync.errors import DataFileChanged
from cio_sync.input import csvfile, datafile
from cio_sync.input.csvfile import CsvRow, RaggedRow
from cio_sync.input.datafile import open_data_file
from cio_sync.input.schema import problems
from cio_sync.outcome import STOPPED_BEFORE_SENT, RecordOutcome, Status, StopReason
from cio_sync.outputs.failed import FailedRecordsFile

from .conftest import Files, Spawn, config_dict, finish, make_config, run_cli, wait_until

# Strings full of what a lexer could take for structure: quotes, backslashes, brackets, commas.
TEXT = st.text(alphabet='ab"\\[]{},: \n\u00e9\U0001f600', max_size=8)
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)


def parsed(text: str, ndjson: bool) -> list[Any]:
    if ndjson:
        return [json.loads(line) for line in text.split("\n") if line.strip()]
    return list(json.loads(f"[{text}]"))


@given(
    records=st.lists(VALUES, min_size=1, max_size=12),
    taken=st.integers(min_value=0, max_value=12),
    chunk=st.integers(min_value=17, max_value=200),
    ndjson=st.booleans(),
    indent=st.sampled_from([None, 0, 2]),
)
def test_the_unread_tail_is_exactly_the_records_not_handed_out(
    records: list[Any],
    taken: int,
    chunk: int,
    ndjson: bool,
    indent: int | None,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    path = tmp_path_factory.mktemp("tail") / ("d.ndjson" if ndjson else "d.json")
    if ndjson:
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    else:
        path.write_text(json.dumps(records, indent=indent))
    taken = min(taken, len(records))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datafile, "_CHUNK", chunk)
        with open_data_file(str(path)) as data:
            reader = data.records()
            handed = [next(reader) for _ in range(taken)]
            held, tail = reader.unread()
            read = [*handed, *held]
            rest: list[Any] = []
            if tail is not None:
                rest = parsed("".join(tail.chunks()), ndjson)
                assert tail.first == len(read)
                assert tail.count == len(rest)
    assert json.loads(json.dumps([*read, *rest], default=float)) == json.loads(json.dumps(records))


# People in the files of the stopped runs: few, so that the rerun is quick, but with long values,
# so that the file still spans blocks (the unread tail is copied from the next block on).
PEOPLE = 400
PAD = "x" * 300


def stopped_mid_run(emulator: Emulator, files: Files, spawn_cli: Spawn, args: list[str], failed: Path) -> Any:
    """Run ``args`` with ``--failed failed`` and a report, SIGTERM it once 20 people are synced;
    the report, once checked against its schema."""
    report = files.root / "report.json"
    # Slow enough that the signal comes long before the last person (8 s at 2 in flight).
    emulator.latency = 0.04
    proc = spawn_cli([*args, "--failed", str(failed), "--report", str(report)])
    wait_until(lambda: len(emulator.people()) >= 20 or proc.poll() is not None)
    proc.send_signal(signal.SIGTERM)
    run = finish(proc)
    assert run.code == 143, run.stderr
    document = json.loads(report.read_text())
    assert problems("report.schema.json", document) == []
    return document


@pytest.mark.parametrize("name", ["data.json", "data.ndjson"])
def test_a_stopped_run_copies_the_unread_records_to_failed_and_a_rerun_completes(
    emulator: Emulator, files: Files, spawn_cli: Spawn, name: str
) -> None:
    people = [{"id": i, "name": f'n{i} [{{"\\', "note": PAD} for i in range(PEOPLE)]
    if name.endswith(".ndjson"):
        data = files.data("".join(json.dumps(p) + "\n" for p in people), name)
    else:
        data = files.data(json.dumps(people, indent=1), name)
    assert os.path.getsize(data) > 2 * 65536
    failed = files.root / f"failed{Path(name).suffix}"
    args = ["--config", files.config(config_dict(emulator.url, parallelism=2)), "--data", data]
    document = stopped_mid_run(emulator, files, spawn_cli, args, failed)
    counts = document["counts"]
    assert sum(counts.values()) == PEOPLE
    # Every record the stop left unsent says so, read or not: one cause each way, never no reason.
    unsent = [p["reason"] or "" for p in document["problems"] if p["outcome"] == "not_attempted"]
    assert unsent and all(
        r == STOPPED_BEFORE_SENT or r.startswith("the run stopped before it was read") for r in unsent
    )
    assert {c["cause"] for c in document["causes"]} <= {STOPPED_BEFORE_SENT, "the run stopped before it was read"}
    text = failed.read_text()
    left = parsed(text, ndjson=True) if name.endswith(".ndjson") else json.loads(text)
    assert len(left) == PEOPLE - counts["synced"]
    assert {p["id"] for p in left} | {int(i) for i in emulator.people()} == set(range(PEOPLE))
    emulator.latency = 0
    rerun = run_cli(["--config", files.config(config_dict(emulator.url)), "--data", str(failed)])
    assert rerun.code == 0, rerun.stderr
    assert emulator.people() == {str(p["id"]): {"name": p["name"]} for p in people}


# Cells full of what a row scanner could take for structure: quotes, commas and line breaks.
CELL = st.text(alphabet='ab,"\r\n \u00e9\U0001f600', max_size=6)
LINE_ENDS = st.sampled_from(["\r\n", "\n", "\r"])


def csv_line(cells: list[str], quote_all: bool, end: str) -> str:
    """One row as a CSV line: cells quoted where they must be (or all of them), ended by ``end``."""
    quoted = ['"' + c.replace('"', '""') + '"' if quote_all or any(x in c for x in ',"\r\n') else c for c in cells]
    return ",".join(quoted) + end


def csv_rows(text: str) -> list[list[str]]:
    """The rows of CSV ``text`` that are not blank, as the csv module reads a file opened with newline=""."""
    return [row for row in csv.reader(io.StringIO(text, newline=""), strict=True) if row]


def cells(record: object) -> list[str]:
    if isinstance(record, RaggedRow):
        return list(record.cells)
    assert isinstance(record, CsvRow)
    return [cell or "" for cell in record.values()]


@given(
    header=st.lists(st.text(alphabet="abc", min_size=1, max_size=3), min_size=1, max_size=3, unique=True),
    rows=st.lists(st.tuples(st.lists(CELL, max_size=4), st.booleans(), LINE_ENDS), max_size=10),
    header_end=LINE_ENDS,
    bom=st.booleans(),
    final_break=st.booleans(),
    taken=st.integers(min_value=0, max_value=10),
    chunk=st.integers(min_value=1, max_value=40),
)
def test_the_unread_csv_tail_is_exactly_the_rows_not_handed_out(
    header: list[str],
    rows: list[tuple[list[str], bool, str]],
    header_end: str,
    bom: bool,
    final_break: bool,
    taken: int,
    chunk: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    text = csv_line(header, False, header_end) + "".join(csv_line(c, q, end) for c, q, end in rows)
    if not final_break:
        text = text.rstrip("\r\n") if text.endswith(('"', "\r", "\n")) else text
    path = tmp_path_factory.mktemp("tail") / "d.csv"
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode())
    _, *expected = csv_rows(text)
    taken = min(taken, len(expected))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(csvfile, "_CHUNK", chunk)  # every line break, quote and BOM cut between reads
        with open_data_file(str(path)) as data:
            assert data.count == len(expected)
            reader = data.records()
            handed = [cells(next(reader)) for _ in range(taken)]
            held, tail = reader.unread()
            rest = [cells(record) for record in held]
            if tail is not None:
                assert tail.first == taken
                tail_rows = csv_rows("".join(tail.chunks()))
                assert tail.count == len(tail_rows)
                rest += tail_rows
    assert tail is not None or taken == len(expected)
    assert handed + rest == expected


def test_a_csv_file_touched_since_its_check_is_read_on_not_copied(files: Files) -> None:
    path = Path(files.data("id,name\r\n1,a\r\n2,b\r\n3,c\r\n", "d.csv"))
    with open_data_file(str(path)) as data:
        reader = data.records()
        next(reader)
        os.utime(path, ns=(0, 0))  # positions found before a change need not hold after it
        held, tail = reader.unread()
        assert tail is None
        assert [cells(record) for record in held] == [["2", "b"], ["3", "c"]]


def test_csv_from_standard_input_has_its_tail_found_by_position() -> None:
    # Standard input is spooled to a file first, which can then be read by position.
    content = b'id,name\n1,"a\nb"\n2,c\n3,d\n'
    with open_data_file("-", "csv", stdin=io.BytesIO(content)) as data:
        reader = data.records()
        assert cells(next(reader)) == ["1", "a\nb"]
        held, tail = reader.unread()
        assert list(held) == []
        assert tail is not None
        assert (tail.first, tail.count, "".join(tail.chunks())) == (1, 2, "2,c\n3,d\n")


def test_a_csv_tail_in_failed_follows_the_rows_written_back_under_one_header(files: Files) -> None:
    # No line break after the last row: the copy gets one, so a row written after it cannot join it.
    data = files.data('\ufeff"id",name\n1,a\n\n2,"b\r\nc"\n3,d', "d.csv")
    failed = files.root / "failed.csv"
    with open_data_file(data) as source:
        reader = source.records()
        first = next(reader)
        _, tail = reader.unread()
        assert tail is not None
        assert (tail.first, tail.count) == (1, 2)
        out = FailedRecordsFile(str(failed), csv_header=source.header)
        out.add(RecordOutcome(0, Status.FAILED, "1", "refused", record=first))
        out.add(RecordOutcome(tail.first, Status.NOT_ATTEMPTED, record=tail, span=tail.count))
        out.commit()
    assert failed.read_bytes() == b'id,name\r\n1,a\r\n\n2,"b\r\nc"\n3,d\r\n'
    with open_data_file(str(failed)) as again:
        assert [cells(record) for record in again.records()] == [["1", "a"], ["2", "b\r\nc"], ["3", "d"]]


def csv_name(i: int) -> str:
    """Person ``i``'s name: quotes, commas and line breaks, and long."""
    return f'n{i} "q", {i % 3}\r\nline\n{i} {PAD}'


def csv_people(count: int, end: str) -> tuple[bytes, list[bytes]]:
    """A CSV file of ``count`` people whose names hold quotes, commas and line breaks, and its rows' bytes."""
    rows = [csv_line([str(i), csv_name(i)], i % 2 == 0, end).encode() for i in range(count)]
    return "\ufeffid,name\r\n".encode() + b"".join(rows), rows


@pytest.mark.parametrize("end", ["\r\n", "\n"])
def test_a_stopped_csv_run_copies_the_unread_rows_to_failed_and_a_rerun_completes(
    emulator: Emulator, files: Files, spawn_cli: Spawn, end: str
) -> None:
    content, rows = csv_people(PEOPLE, end)
    assert len(content) > 2 * 65536
    data = files.data(content, "data.csv")
    failed = files.root / "failed.csv"
    mappings = [{"from": "name", "to": "name"}]
    args = ["--config", files.config(config_dict(emulator.url, parallelism=2, mappings=mappings)), "--data", data]
    document = stopped_mid_run(emulator, files, spawn_cli, args, failed)
    counts = document["counts"]
    assert sum(counts.values()) == PEOPLE
    # Records read and not sent have no reason of their own; the unread tail says what it is.
    said = "the run stopped before it was read"
    (unread,) = [p for p in document["problems"] if (p["reason"] or "").startswith(said)]
    first = unread["index"]
    assert unread["reason"] == f"the run stopped before it was read (with the {PEOPLE - first - 1:,} records after it)"
    # The header once, then rows written back, then the unread rows byte for byte.
    written = failed.read_bytes()
    assert written.startswith(b"id,name\r\n")
    assert written.endswith(b"".join(rows[first:]))
    header, *left = csv_rows(written.decode())
    assert header == ["id", "name"]
    assert len(left) == PEOPLE - counts["synced"]
    assert {int(row[0]) for row in left} | {int(i) for i in emulator.people()} == set(range(PEOPLE))
    emulator.latency = 0
    config = files.config(config_dict(emulator.url, mappings=mappings))
    rerun = run_cli(["--config", config, "--data", str(failed)])
    assert rerun.code == 0, rerun.stderr
    assert emulator.people() == {str(i): {"name": csv_name(i)} for i in range(PEOPLE)}


# Records of the grown file: more than a run of them is read at once, of either format.
RECORDS = 8000


@pytest.mark.parametrize("name", ["d.ndjson", "d.csv"])
def test_a_file_that_grew_before_a_stop_ends_the_run_as_changed_with_every_record_read_counted(
    emulator: Emulator, files: Files, name: str
) -> None:
    # The stop finds the file touched, so it reads the rest on instead of copying it; there it
    # meets the record appended since the check. The file is more than one run: the stop comes
    # while the first is sent. The run still ends with its counts, as a run
    # that meets the change before the stop does.
    if name.endswith(".csv"):
        path = files.data("id\n" + "".join(f"{i}\n" for i in range(RECORDS)), name)
        appended = "999\n"
    else:
        path = files.data("".join(json.dumps({"id": i}) + "\n" for i in range(RECORDS)), name)
        appended = '{"id": 999}\n'
    stop = Stop()
    seen: list[RecordOutcome] = []
    read_at_stop: list[int] = []

    with open_data_file(path) as data:
        records = data.records()

        def grow_then_stop(outcome: RecordOutcome) -> None:
            seen.append(outcome)
            if not stop.requested:
                with open(path, "a") as f:
                    f.write(appended)
                stop(StopReason.TERMINATED)
                read_at_stop.append(records.handed)

        config = make_config(emulator.url, parallelism=1, mappings=[])
        result = sync(config, records, stop=stop, on_outcome=grow_then_stop)
    # The changed file outranks the signal: the records read are counted, and it says why.
    assert result.error is not None and "changed while being read" in result.error
    assert result.stopped is StopReason.DATA_FILE_CHANGED
    # Every record read on is counted, up to the block the append changed (which is not read).
    assert read_at_stop[0] <= result.total == len(seen) <= RECORDS
    assert sorted(o.index for o in seen) == list(range(result.total))


@pytest.mark.parametrize("name", ["d.ndjson", "d.csv"])
def test_a_file_that_grew_while_it_was_checked_is_not_read(
    files: Files, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # A row appended once the check has counted, before the run starts: the unread rows can no
    # longer be found by the positions of the file as checked.
    counting: object
    if name.endswith(".csv"):
        path = files.data("id\n1\n2\n3\n", name)
        appended, counting, function = "4\n", csvfile.CsvRecords, "check"
    else:
        path = files.data('{"id": 1}\n{"id": 2}\n{"id": 3}\n', name)
        appended, counting, function = '{"id": 4}\n', datafile, "_count_elements"
    count = getattr(counting, function)

    def count_then_grow(*args: Any) -> int:
        counted = int(count(*args))
        with open(path, "a") as f:
            f.write(appended)
        return counted

    monkeypatch.setattr(counting, function, count_then_grow)
    with open_data_file(path) as data:
        assert data.count == 3
        reader = data.records()
        # Its one block is no longer the one checked: no record is read from it.
        with pytest.raises(DataFileChanged, match="its bytes differ from those its check read"):
            next(reader)
        held, tail = reader.unread()
        assert tail is None
        assert list(held) == []


@pytest.mark.parametrize("taken", [0, 1, 2, 3])
def test_an_unread_ndjson_tail_keeps_each_line_as_it_was(taken: int, tmp_path: Path) -> None:
    # Lines that begin with commas are not JSON: they go back to --failed as they were, unreadable
    # still, rather than losing the commas and reading back as records the file never held.
    lines = ['{"id": "a"}', ',{"id": "b"}', '{"id": "c"}', ' ,, {"id": "d"}']
    path = tmp_path / "d.ndjson"
    path.write_text("".join(line + "\n" for line in lines))
    with open_data_file(str(path)) as data:
        reader = data.records()
        for _ in range(taken):
            next(reader)
        _, tail = reader.unread()
        assert tail is not None
        text = "".join(tail.chunks())
    assert text == "".join(line + "\n" for line in lines[tail.first :]).lstrip(" ")

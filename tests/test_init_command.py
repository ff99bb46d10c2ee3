"""``cio-sync init``: reading a sample of the data file, the configuration on standard output,
the notes on standard error, bad input, and a sync with the proposal sending every column."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from cio_sync.cli.init import app
from cio_sync.emulator import Emulator
from cio_sync.input import sample as sampling
from cio_sync.input.config import config_from_dict
from cio_sync.input.datafile import UnreadableRecord, open_data_file
from cio_sync.input.sample import Sample
from cio_sync.input.schema import problems

from .conftest import API_KEY, CLI, SITE_ID, Files, Run, checked, cli_env, run_cli, run_process

runner = CliRunner()
CREDENTIALS = {"CIO_SITE_ID": SITE_ID, "CIO_API_KEY": API_KEY}


def init(*args: str, input: bytes | None = None) -> Run:
    """``cio-sync init`` in-process, checked for tracebacks as every run is."""
    result = runner.invoke(app, list(args), input=input, catch_exceptions=False)
    return checked(result.exit_code, result.stdout, result.stderr)


def proposed(run: Run) -> dict[str, Any]:
    """The configuration a successful run printed, checked against the schema."""
    assert run.code == 0, run.stderr
    config: dict[str, Any] = json.loads(run.stdout)
    assert problems("config.schema.json", config) == []
    return config


def sync_with(emulator: Emulator, files: Files, config: dict[str, Any], data: str, *extra: str) -> Run:
    """A sync of ``data`` with ``config`` exactly as proposed, credentials from the environment."""
    assert "siteId" not in config and "apiKey" not in config
    path = files.config(config, name="proposed.json")
    return run_cli(["--config", path, "--data", data, "--base-url", emulator.url, *extra], env=CREDENTIALS)


# --- a sync with the proposal sends every column, typed ------------------------------------------

PEOPLE_CSV = (
    "Customer ID,Email,First Name,age,score,active,signed_up,zip,notes\r\n"
    "c-1,ada@example.com,Ada,36,1.5,true,2024-01-02T03:04:05Z,02139,first\r\n"
    'c-2,bo@example.com,"Bo, Jr.",41,2,FALSE,2024-02-03,10001,\r\n'
    "c-3,cy@example.com,Cy,0,-0.25,True,2024-02-03 10:00:00.123 UTC,94105,third\r\n"
)


def test_a_csv_proposal_syncs_every_column_with_the_proposed_types(emulator: Emulator, files: Files) -> None:
    data = files.data(PEOPLE_CSV, name="people.csv")
    config = proposed(init("--data", data))
    assert config["userId"] == "Customer ID"
    assert {m["from"]: m.get("as") for m in config["mappings"]} == {
        "Customer ID": None,
        "Email": None,
        "First Name": None,
        "age": "integer",
        "score": "number",
        "active": "boolean",
        "signed_up": "timestamp",
        "zip": None,
        "notes": None,
    }
    run = sync_with(emulator, files, config, data)
    assert run.code == 0, run.stderr
    common = {"Customer ID": "c-1", "Email": "ada@example.com", "First Name": "Ada"}
    assert emulator.people() == {
        "c-1": {**common, "age": 36, "score": 1.5, "active": True, "signed_up": 1704164645, "zip": "02139"}
        | {"notes": "first"},
        "c-2": {"Customer ID": "c-2", "Email": "bo@example.com", "First Name": "Bo, Jr.", "age": 41, "score": 2}
        | {"active": False, "signed_up": 1706918400, "zip": "10001"},  # the empty cell is not sent
        "c-3": {"Customer ID": "c-3", "Email": "cy@example.com", "First Name": "Cy", "age": 0, "score": -0.25}
        | {"active": True, "signed_up": 1706954400, "zip": "94105", "notes": "third"},
    }


NESTED = [
    {
        "user": {"id": "u-1", "email": "ada@example.com"},
        "profile": {"plan": "pro", "seats": "12", "ltv": "1520.50", "trial": "false"},
        "signed_up": "2024-01-02T09:30:00+01:00",
        "last_seen": 1709660712000,
        "orders": [{"total": "31.5"}],
        "company": None,
    },
    {
        "user": {"id": "u-2", "email": "grace@example.com"},
        "profile": {"plan": None, "seats": "3", "ltv": "0", "trial": "TRUE", "referrer": {"code": "X1"}},
        "signed_up": "2023-12-31",
        "last_seen": "2024-03-05T17:45:12.875Z",
        "orders": [],
        "company": "Navy",
    },
]


def test_an_ndjson_proposal_maps_nested_keys_as_paths_and_syncs_them(emulator: Emulator, files: Files) -> None:
    data = files.data("".join(json.dumps(r) + "\n" for r in NESTED), name="people.ndjson")
    config = proposed(init("--data", data))
    assert config["userId"] == ["user", "id"]
    assert config["mappings"] == [
        {"from": ["user", "id"], "to": "id"},
        {"from": ["user", "email"], "to": "email"},
        {"from": ["profile", "plan"], "to": "plan"},
        {"from": ["profile", "seats"], "to": "seats", "as": "integer"},
        {"from": ["profile", "ltv"], "to": "ltv", "as": "number"},
        {"from": ["profile", "trial"], "to": "trial", "as": "boolean"},
        {"from": "signed_up", "to": "signed_up", "as": "timestamp"},
        {"from": "last_seen", "to": "last_seen", "as": "timestamp"},
        {"from": "orders", "to": "orders"},
        {"from": "company", "to": "company"},
        {"from": ["profile", "referrer", "code"], "to": "code"},
    ]
    run = sync_with(emulator, files, config, data)
    assert run.code == 0, run.stderr
    assert emulator.people() == {
        "u-1": {"id": "u-1", "email": "ada@example.com", "plan": "pro", "seats": 12, "ltv": 1520.5}
        | {"trial": False, "signed_up": 1704184200, "last_seen": 1709660712, "orders": [{"total": "31.5"}]}
        | {"company": None},
        "u-2": {"id": "u-2", "email": "grace@example.com", "plan": None, "seats": 3, "ltv": 0, "trial": True}
        | {"signed_up": 1703980800, "last_seen": 1709660712, "orders": [], "company": "Navy", "code": "X1"},
    }


def test_cio_sync_init_as_its_own_process_feeds_a_real_sync(emulator: Emulator, files: Files) -> None:
    data = files.data(PEOPLE_CSV, name="people.csv")
    proc = subprocess.run(
        [*CLI, "init", "--data", data],
        capture_output=True,
        env=cli_env(),
        timeout=60,
    )
    run = checked(proc.returncode, proc.stdout.decode(), proc.stderr.decode())
    path = files.config(proposed(run), name="proposed.json")
    synced = run_process(["--config", path, "--data", data, "--base-url", emulator.url], env=CREDENTIALS)
    assert synced.code == 0, synced.stderr
    assert sorted(emulator.people()) == ["c-1", "c-2", "c-3"]
    assert emulator.people()["c-1"]["age"] == 36


def test_the_proposal_loads_as_a_configuration_once_credentials_are_in_the_environment(files: Files) -> None:
    config = proposed(init("--data", files.data(NESTED)))
    assert "siteId" not in config and "apiKey" not in config
    config_from_dict(config, env=CREDENTIALS)


# --- what standard error says --------------------------------------------------------------------


def test_two_lines_say_what_was_picked_and_what_to_check(files: Files) -> None:
    run = init("--data", files.data(PEOPLE_CSV, name="people.csv"))
    lines = run.stderr.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("cio-sync: proposed 9 mappings from 3 rows of ")
    assert '(the whole file); userId "Customer ID" (also id-like: "Email")' in lines[0]
    assert '"age" as integer, "score" as number, "active" as boolean, "signed_up" as timestamp' in lines[0]
    assert "check userId and each" in lines[1] and "CIO_SITE_ID and CIO_API_KEY" in lines[1]
    assert "only the first" not in run.stderr


def test_a_sample_that_stops_before_the_end_says_later_keys_are_missed(files: Files) -> None:
    records = [{"id": str(i)} for i in range(5)] + [{"id": "late", "late_key": 1}]
    run = init("--data", files.data(records), "--sample", "5")
    config = proposed(run)
    assert [m["from"] for m in config["mappings"]] == ["id"]
    assert "(the file goes on)" in run.stderr
    assert "only the first 5 records were read: a key first seen after them is not mapped" in run.stderr
    assert len(run.stderr.splitlines()) == 2
    # With room for them all, the late key is found.
    assert [m["from"] for m in proposed(init("--data", files.data(records), "--sample", "6"))["mappings"]] == [
        "id",
        "late_key",
    ]


def test_problems_in_the_sample_get_a_line_each(files: Files) -> None:
    # No name says id, and no column has one in every row: the first column it is.
    data = files.data("handle,size\nada,\nbo\n,2\n", name="odd.csv")
    run = init("--data", data)
    config = proposed(run)
    assert config["userId"] == "handle"
    assert "no key is named like a person id" in run.stderr
    assert '1 sampled record has no usable id at "handle" (of 2): a sync reports them as invalid' in run.stderr
    assert "1 sampled row has more or fewer cells than the header" in run.stderr
    assert len(run.stderr.splitlines()) == 5


def test_values_too_large_to_send_get_a_line(files: Files) -> None:
    run = init("--data", files.data([{"id": "1", "bio": "x" * 2000}]))
    assert proposed(run)["mappings"][1] == {"from": "bio", "to": "bio"}
    assert '"bio" holds values over 1,000 bytes in the sample, which the Track API refuses' in run.stderr


def test_records_that_are_not_objects_get_a_line(files: Files) -> None:
    run = init("--data", files.data([{"id": "1"}, 2, "x"]))
    assert proposed(run)["userId"] == "id"
    assert "2 sampled records are not objects: a sync reports them as invalid" in run.stderr


def test_a_header_alone_is_enough(files: Files) -> None:
    run = init("--data", files.data("email,plan\n", name="h.csv"))
    assert proposed(run)["mappings"] == [{"from": "email", "to": "email"}, {"from": "plan", "to": "plan"}]
    assert "from the header" in run.stderr


# --- bad input: exit 2, one line, nothing on standard output -------------------------------------


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (None, "missing.json", "missing.json: no such data file"),
        (b"", "empty.json", "the data file is empty"),
        (b" \n\t\n", "blank.ndjson", "the data file is empty"),
        (b"", "empty.csv", "the data file is empty; a CSV file needs a header row"),
        (b"\n\n", "blank.csv", "a CSV file needs a header row"),
        (b"[]", "none.json", "holds no records, so there is nothing to propose from"),
        (b"[{}, {}]", "keyless.json", "none of the first 2 records holds a key to map"),
        (b'{"id": 1}', "object.json", "must be a JSON array of objects (for one object per line, use --format ndjson)"),
        (b'[{"id": 1}, {"id": ', "cut.json", "not valid JSON after 1 complete record"),
        (b"id,id\n1,2\n", "twice.csv", 'the header row names the column "id" twice'),
        (b'id,name\n1,"open\n', "quote.csv", "not valid CSV"),
        (b"id,n\xffme\n1,a\n", "latin.csv", "not UTF-8 text: the header row on line 1"),
        (
            b'{"id" 1}\n{"id": "\xff"}\n',
            "unreadable.ndjson",
            "2 lines could not be read (the first, record 0: line 1 is not valid JSON: Expecting ':' delimiter "
            "at byte offset 6), and no other record was read: there is nothing to propose from",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line_and_no_output(
    files: Files, content: bytes | None, name: str, message: str
) -> None:
    path = files.data(content, name=name) if content is not None else str(files.root / name)
    run = init("--data", path)
    assert (run.code, run.stdout) == (2, "")
    assert len(run.stderr.splitlines()) == 1
    assert run.stderr.startswith("cio-sync: error: ") and message in run.stderr


# A line a sync reads as one invalid record, syncing the others: init reads it the same way.
# How the sync names the record: by its id where that can be read, though another value cannot.
UNREADABLE_LINES = {
    "not UTF-8": (b'{"id": "2", "name": "B\xffo"}', "holds bytes that are not UTF-8 at byte offset 62", ' (id "2")'),
    "not JSON": (b'{"id": "2", "name" "Bo"}', "line 2 is not valid JSON: Expecting ':' delimiter", ""),
}


@pytest.mark.parametrize("case", list(UNREADABLE_LINES))
def test_an_ndjson_line_a_sync_finds_invalid_is_read_past_and_the_proposal_syncs_the_rest(
    emulator: Emulator, files: Files, case: str
) -> None:
    line, problem, named = UNREADABLE_LINES[case]
    data = files.data(
        b'{"id": "1", "name": "Ada", "age": "36"}\n' + line + b'\n{"id": "3", "name": "Cy", "age": "41"}\n',
        name="people.ndjson",
    )
    run = init("--data", data)
    config = proposed(run)
    assert config["userId"] == "id"
    assert config["mappings"] == [
        {"from": "id", "to": "id"},
        {"from": "name", "to": "name"},
        {"from": "age", "to": "age", "as": "integer"},
    ]
    notes = run.stderr.splitlines()
    assert notes[0].startswith("cio-sync: proposed 3 mappings from 2 records of ")
    assert notes[2].startswith(f"cio-sync: 1 line could not be read (record 1: {problem}")
    assert notes[2].endswith("): a sync reports it as invalid; nothing was proposed from it")
    assert len(notes) == 3
    synced = sync_with(emulator, files, config, data)
    assert synced.code == 1, synced.stderr
    (invalid,) = [note for note in synced.stderr.splitlines() if note.startswith("cio-sync: record ")]
    assert invalid.startswith(f"cio-sync: record 1{named}: invalid: {problem}"), invalid
    assert emulator.people() == {"1": {"id": "1", "name": "Ada", "age": 36}, "3": {"id": "3", "name": "Cy", "age": 41}}


def test_a_directory_and_an_unreadable_file_exit_2(files: Files, tmp_path: Path) -> None:
    run = init("--data", str(tmp_path))
    assert (run.code, run.stdout) == (2, "")
    assert "is a directory" in run.stderr
    if os.geteuid() != 0:  # root reads whatever the mode says
        locked = Path(files.data('[{"id": 1}]', name="locked.json"))
        locked.chmod(0)
        run = init("--data", str(locked))
        assert (run.code, run.stdout) == (2, "")
        assert "cannot read the data file" in run.stderr


def test_a_bad_sample_size_is_refused_by_the_option(files: Files) -> None:
    result = runner.invoke(app, ["--data", files.data([{"id": 1}]), "--sample", "0"])
    assert result.exit_code == 2
    assert result.stdout == ""


# --- reading a sample ----------------------------------------------------------------------------


def test_standard_input_is_read_in_the_format_given(files: Files) -> None:
    run = init("--data", "-", "--format", "csv", input=b"\xef\xbb\xbfemail,n\na@x.com,1\n")
    config = proposed(run)
    assert config["userId"] == "email" and config["idType"] == "email"
    assert "of <stdin>" in run.stderr


def test_a_byte_order_mark_before_json_is_skipped(files: Files) -> None:
    assert proposed(init("--data", files.data(b'\xef\xbb\xbf[{"id": 1}]')))["userId"] == "id"


def test_the_end_is_known_only_when_the_sample_reaches_it(files: Files) -> None:
    path = files.data([{"id": i} for i in range(3)])
    for limit, reached in ((2, False), (3, True), (4, True)):
        with Sample(path, limit=limit) as sample:
            assert len(list(sample.records())) == min(limit, 3)
            assert sample.reached_end is reached


def test_what_follows_the_sample_is_not_read(files: Files) -> None:
    # Broken after its first records, and far longer than the reader's buffers: a proposal only
    # reads what it samples, so the break goes unseen (the sync's own check refuses such a file).
    good = "".join(json.dumps({"id": i, "pad": "x" * 100}) + "\n" for i in range(1000))
    path = files.data(good + "{broken\n" + "x" * 4_000_000, name="big.ndjson")
    run = init("--data", path, "--sample", "10")
    assert proposed(run)["userId"] == "id"
    assert "(the file goes on)" in run.stderr


def test_a_sample_stops_at_its_byte_budget(files: Files, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sampling, "MAX_SAMPLE_BYTES", 100_000)
    path = files.data("".join(json.dumps({"id": i, "pad": "x" * 1000}) + "\n" for i in range(1000)), name="p.ndjson")
    with Sample(path) as sample:
        count = len(list(sample.records()))
        assert 0 < count < 1000 and not sample.reached_end


def test_unreadable_lines_are_read_within_the_byte_budget_too(files: Files, monkeypatch: pytest.MonkeyPatch) -> None:
    # They are not counted in the sample's records: only its bytes bound a file of nothing else.
    monkeypatch.setattr(sampling, "MAX_SAMPLE_BYTES", 100_000)
    path = files.data(
        b"".join(b'{"id": %d, "pad": "\xff%s"}\n' % (i, b"x" * 1000) for i in range(1000)), name="p.ndjson"
    )
    with Sample(path) as sample:
        assert list(sample.records()) == []
        assert 0 < sample.unreadable < 1000 and not sample.reached_end


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("one.json", b'[{"id": 1, "n": "' + b"x" * 3_000_000 + b'"}, {"id": 2}]'),
        ("one.ndjson", b'{"id": 1, "n": "' + b"x" * 3_000_000 + b'"}\n{"id": 2}\n'),
        ("rows.csv", b"id,n\n" + b"1,2,3\n" * 500_000 + b"4,5\n"),
    ],
)
def test_the_sample_reads_no_further_than_its_bound_whatever_the_record(
    files: Files, monkeypatch: pytest.MonkeyPatch, name: str, body: bytes
) -> None:
    # A record that goes on past the bound (or rows skipped one after another) is not read to
    # its end: an endless one on standard input would keep init reading for ever.
    monkeypatch.setattr(sampling, "MAX_SAMPLE_BYTES", 100_000)
    with Sample(files.data(body, name=name)) as sample:
        assert list(sample.records()) == []
        assert sample.cut and not sample.reached_end
        assert sample._counted.count <= 100_000 + 3 * 65_536


@pytest.mark.parametrize("name", ["s.json", "s.ndjson"])
def test_a_record_a_sync_reads_as_invalid_is_read_past_as_a_sync_reads_it(files: Files, name: str) -> None:
    # Nested deeper than a sync reads, an integer no attribute can hold (whose reading once
    # crashed the JSON parser a sample used), bytes that are not UTF-8: each is one unreadable
    # record, and the records around it are read as a sync reads them.
    depth = 5000
    bad = [
        b'{"id": 1, "deep": ' + b"[" * depth + b"]" * depth + b"}",
        b'{"id": 2, "n": ' + b"9" * 4301 + b"}",
        b'{"id": 3, "name": "\xff"}',
        b'{"id": 4, "n": 1e400}',
    ]
    good = [b'{"id": 5, "n": 2}', b'{"id": 6, "n": 3.5}']
    rows = [bad[0], good[0], bad[1], bad[2], good[1], bad[3]]
    body = b"[" + b",".join(rows) + b"]" if name.endswith(".json") else b"\n".join(rows) + b"\n"
    path = files.data(body, name=name)
    with Sample(path) as sample:
        records = list(sample.records())
    with open_data_file(path) as source:
        synced = [r for r in source.records() if not isinstance(r, UnreadableRecord)]
    assert records == synced
    assert [r["id"] for r in records if isinstance(r, dict)] == [5, 6, 4]
    assert sample.unreadable == 3 and sample.reached_end


# Pieces of records, some a sync reads as invalid (bytes that are not UTF-8, an integer no
# attribute can hold, a lone surrogate escape, nesting too deep), some not.
_PIECES = st.sampled_from(
    [
        b'"a"',
        b"1",
        b"-2.5e3",
        b"null",
        b"true",
        b'"\\u00e9"',
        b'"\xc3\xa9"',
        b'"\xff"',
        b"9" * 4400,
        b"1e400",
        b'"\\ud800"',
        b"[" * 40 + b"]" * 40,
        b'{"x": [1, {"y": 2}]}',
        b'" , ] } "',
    ]
)


_FORMATS = st.sampled_from(["s.json", "s.ndjson", "s.csv"])


@given(st.lists(st.lists(_PIECES, max_size=3), min_size=1, max_size=12), _FORMATS)
def test_a_sample_reads_every_record_as_a_sync_reads_it(
    tmp_path_factory: Any, rows: list[list[bytes]], name: str
) -> None:
    if name.endswith(".csv"):
        body = b"id,a,b,c\n" + b"".join(
            b",".join([b"%d" % i, *(p.replace(b",", b";") for p in row)]) + b"\n" for i, row in enumerate(rows)
        )
    else:
        records = [
            b"{" + b", ".join([b'"id": %d' % i, *(b'"k%d": %s' % (n, p) for n, p in enumerate(row))]) + b"}"
            for i, row in enumerate(rows)
        ]
        body = b"[" + b",\n".join(records) + b"]" if name.endswith(".json") else b"\n".join(records)
    path = tmp_path_factory.mktemp("sample") / name
    path.write_bytes(body)
    with Sample(str(path)) as sample:
        sampled = list(sample.records())
    with open_data_file(str(path)) as source:
        read = list(source.records())
    readable = [r for r in read if isinstance(r, dict)]
    assert sampled == readable
    assert sample.unreadable + sample.ragged == len(read) - len(readable)


def test_a_csv_row_a_sync_reads_as_invalid_is_read_past_as_a_sync_reads_it(files: Files) -> None:
    path = files.data(b'id,name\r\n1,a\r\n2,\xff\r\n3,c,extra\r\n\r\n4,"d\r\ne"\r\n', name="rows.csv")
    with Sample(path) as sample:
        records = list(sample.records())
    with open_data_file(path) as source:
        synced = [r for r in source.records() if isinstance(r, dict)]
    assert records == synced == [{"id": "1", "name": "a"}, {"id": "4", "name": "d\r\ne"}]
    assert (sample.unreadable, sample.ragged, sample.reached_end) == (1, 1, True)
    run = init("--data", path)
    assert run.code == 0, run.stderr
    assert "1 record could not be read (record 1: the row on line 3 holds bytes that are not UTF-8" in run.stderr


def test_the_example_in_the_docs_is_what_init_prints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = (Path(__file__).resolve().parent.parent / "docs" / "init.md").read_text(encoding="utf-8")
    example = page.split("## An example", 1)[1].split("\n## ", 1)[0]
    data, output, stderr = re.findall(r"^```[a-z]*\n(.*?)^```", example, re.DOTALL | re.MULTILINE)
    monkeypatch.chdir(tmp_path)
    Path("people.csv").write_text(data, encoding="utf-8")
    run = init("--data", "people.csv")
    assert (run.code, run.stdout, run.stderr) == (0, output, stderr)


def test_a_closed_standard_output_is_an_output_failure_not_a_success(files: Files) -> None:
    data = files.data('{"id": 1, "name": "Ada"}\n', "one.ndjson")
    shell = 'exec "$0" -m cio_sync init "$@" >&-'
    proc = subprocess.run(["sh", "-c", shell, CLI[0], "--data", data], capture_output=True, env=cli_env(), timeout=60)
    assert proc.returncode == 74, proc.stderr
    assert b"cannot write the configuration to standard output: it is closed" in proc.stderr


def test_a_standard_error_that_cannot_be_written_loses_the_notes_not_the_configuration(files: Files) -> None:
    data = files.data('{"id": 1, "name": "Ada"}\n', "one.ndjson")
    with open("/dev/full", "w") as full:
        proc = subprocess.run([*CLI, "init", "--data", data], stdout=subprocess.PIPE, stderr=full, env=cli_env())
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["userId"] == "id"

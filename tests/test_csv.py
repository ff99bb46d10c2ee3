"""CSV data files end to end: RFC 4180 quoting, BOM, empty cells, ragged rows, stdin and --failed."""

from __future__ import annotations

from typing import Any

import pytest

from cio_sync.emulator import Emulator
from cio_sync.input import csvfile
from cio_sync.input.datafile import open_data_file

from .conftest import Files, Run, config_dict, run_cli, unstamped

MAPPINGS: list[dict[str, Any]] = [
    {"from": "name", "to": "name"},
    {"from": "seats", "to": "seats", "as": "integer"},
    {"from": "signed_up", "to": "created_at", "as": "timestamp"},
]


def csv_run(emulator: Emulator, files: Files, data: str | bytes, *extra: str, **config: Any) -> Run:
    document = config_dict(emulator.url, **({"mappings": MAPPINGS} | config))
    return run_cli(["--config", files.config(document), "--data", files.data(data, name="people.csv"), *extra])


def bodies(emulator: Emulator) -> list[tuple[str | None, Any]]:
    return [(r.person_id, unstamped(r.body)) for r in emulator.requests() if r.method == "PUT"]


def test_cells_are_text_and_as_types_them(emulator: Emulator, files: Files) -> None:
    data = "id,name,seats,signed_up\r\n1,Ada,12,2024-01-02T10:00:00Z\r\n2,Grace,3,2023-12-31\r\n"
    run = csv_run(emulator, files, data)
    assert run.code == 0, run.stderr
    assert emulator.people() == {
        "1": {"name": "Ada", "seats": 12, "created_at": 1704189600},
        "2": {"name": "Grace", "seats": 3, "created_at": 1703980800},
    }


def test_without_a_cast_a_cell_stays_a_string(emulator: Emulator, files: Files) -> None:
    run = csv_run(emulator, files, "id,seats\n1,12\n", mappings=[{"from": "seats", "to": "seats"}])
    assert run.code == 0, run.stderr
    assert emulator.people() == {"1": {"seats": "12"}}


def test_quoted_fields_hold_commas_line_breaks_and_quotes(emulator: Emulator, files: Files) -> None:
    data = 'id,name,seats,signed_up\r\n"a,b","Smith, ""Ada""\r\nsecond line\nthird","7",\r\n'
    run = csv_run(emulator, files, data)
    assert run.code == 0, run.stderr
    assert bodies(emulator) == [("a,b", {"name": 'Smith, "Ada"\r\nsecond line\nthird', "seats": 7})]


def test_a_byte_order_mark_and_lf_line_ends(emulator: Emulator, files: Files) -> None:
    run = csv_run(emulator, files, "\ufeffid,name\n1,Zoë\n".encode(), mappings=[{"from": "name", "to": "name"}])
    assert run.code == 0, run.stderr
    assert emulator.people() == {"1": {"name": "Zoë"}}


def test_an_empty_cell_is_absent_unless_skip_null_is_false(emulator: Emulator, files: Files) -> None:
    mappings = [
        {"from": "name", "to": "name"},
        {"from": "plan", "to": "plan"},
        {"from": "seats", "to": "seats", "as": "integer", "skipNull": False},
    ]
    first = csv_run(emulator, files, "id,name,plan,seats\n1,Ada,pro,5\n", mappings=mappings)
    assert first.code == 0, first.stderr
    second = csv_run(emulator, files, 'id,name,plan,seats\n1,,"",\n', mappings=mappings)
    assert second.code == 0, second.stderr
    assert bodies(emulator)[-1] == ("1", {"seats": None})
    assert emulator.people() == {"1": {"name": "Ada", "plan": "pro", "seats": None}}


def test_an_empty_id_cell_is_invalid(emulator: Emulator, files: Files) -> None:
    run = csv_run(emulator, files, "id,name\n,Ada\n2,Bo\n", mappings=[{"from": "name", "to": "name"}])
    assert run.code == 1
    assert 'record 0: invalid: the "id" cell is empty' in run.stderr
    assert emulator.people() == {"2": {"name": "Bo"}}


def test_ragged_rows_are_invalid_with_their_line_number(emulator: Emulator, files: Files) -> None:
    data = 'id,name\n1,Ada\n2\n"3","multi\nline",extra\n4,Dee\n'
    failed = files.root / "failed.csv"
    run = csv_run(emulator, files, data, "--failed", str(failed), mappings=[{"from": "name", "to": "name"}])
    assert run.code == 1
    assert "record 1: invalid: the row on line 3 has 1 cell; the header has 2" in run.stderr
    assert "record 2: invalid: the row on line 4 has 3 cells; the header has 2" in run.stderr
    assert emulator.people() == {"1": {"name": "Ada"}, "4": {"name": "Dee"}}
    assert failed.read_bytes() == b'id,name\r\n2\r\n3,"multi\nline",extra\r\n'


def test_failed_rows_are_written_back_as_csv_and_feed_back_in(emulator: Emulator, files: Files) -> None:
    emulator.add_fault("status=400,person=2,times=1")
    data = 'id,name,seats,signed_up\n1,Ada,1,2024-01-01\n2,"Bo, ""B""",,2024-01-02\n3,Cy,4.5,2024-01-03\n'
    failed = files.root / "failed.csv"
    run = csv_run(emulator, files, data, "--failed", str(failed))
    assert run.code == 1
    assert 'record 2 (id "3"): invalid: mappings[1] ("seats", as integer): the string "4.5" is not an integer' in (
        run.stderr
    )
    header, *rows = failed.read_bytes().split(b"\r\n")
    assert header == b"id,name,seats,signed_up"
    assert sorted(rows) == [b"", b'2,"Bo, ""B""",,2024-01-02', b"3,Cy,4.5,2024-01-03"]
    config = files.config(config_dict(emulator.url, mappings=MAPPINGS), "again.json")
    again = run_cli(["--config", config, "--data", str(failed)])
    assert again.code == 1
    assert 'record 0 (id "3"): invalid: mappings[1] ("seats", as integer): the string "4.5"' in again.stderr
    assert emulator.people()["2"] == {"name": 'Bo, "B"', "created_at": 1704153600}


def test_a_first_column_name_beginning_with_u_feff_comes_back_from_the_failed_file(
    emulator: Emulator, files: Files
) -> None:
    # A byte order mark, then a column name that begins with U+FEFF (a file saved with a mark twice):
    # written bare at the start of the --failed file, the name's U+FEFF read as a byte order mark.
    emulator.add_fault("status=400,person=1,times=1")
    mappings = [{"from": "name", "to": "name"}]
    failed = files.root / "failed.csv"
    run = csv_run(
        emulator, files, "\ufeff\ufeffnote,id,name\nx,1,Ada\n".encode(), "--failed", str(failed), mappings=mappings
    )
    assert run.code == 1
    with open_data_file(str(failed)) as data:
        assert data.header == ("\ufeffnote", "id", "name")
        assert list(data.records()) == [{"\ufeffnote": "x", "id": "1", "name": "Ada"}]
    config = files.config(config_dict(emulator.url, mappings=mappings), "again.json")
    again = run_cli(["--config", config, "--data", str(failed)])
    assert again.code == 0, again.stderr
    assert emulator.people() == {"1": {"name": "Ada"}}


def test_csv_from_standard_input(emulator: Emulator, files: Files) -> None:
    config = files.config(config_dict(emulator.url, mappings=[{"from": "name", "to": "name"}]))
    run = run_cli(["--config", config, "--data", "-", "--format", "csv"], input=b"id,name\n1,Ada\n2,Bo\n")
    assert run.code == 0, run.stderr
    assert emulator.people() == {"1": {"name": "Ada"}, "2": {"name": "Bo"}}


def test_format_csv_overrides_the_suffix(emulator: Emulator, files: Files) -> None:
    config = files.config(config_dict(emulator.url, mappings=[{"from": "name", "to": "name"}]))
    data = files.data("id,name\n1,Ada\n", name="export.txt")
    run = run_cli(["--config", config, "--data", data, "--format", "csv"])
    assert run.code == 0, run.stderr
    assert emulator.people() == {"1": {"name": "Ada"}}


def test_a_header_only_file_has_no_records(emulator: Emulator, files: Files) -> None:
    run = csv_run(emulator, files, "id,name\n", mappings=[{"from": "name", "to": "name"}])
    assert run.code == 0, run.stderr
    assert emulator.requests() == []


def test_blank_lines_are_skipped(emulator: Emulator, files: Files) -> None:
    run = csv_run(emulator, files, "id,name\n\n1,Ada\n\n", mappings=[{"from": "name", "to": "name"}])
    assert run.code == 0, run.stderr
    assert emulator.people() == {"1": {"name": "Ada"}}


def test_blank_lines_before_the_header_are_skipped(emulator: Emulator, files: Files) -> None:
    run = csv_run(emulator, files, "\r\n\nid,name\n1,Ada\n", mappings=[{"from": "name", "to": "name"}])
    assert run.code == 0, run.stderr
    assert emulator.people() == {"1": {"name": "Ada"}}


@pytest.mark.parametrize(
    ("header", "mappings", "message"),
    [
        (
            "id,Name,plan",
            [{"from": "plan", "to": "plan"}, {"from": "name", "to": "name"}],
            '"mappings[1].from": the header has no column "name" (did you mean "Name"?)',
        ),
        (
            "id, email",
            [{"from": ["email"], "to": "email"}],
            '"mappings[0].from": the header has no column "email" (did you mean " email"?)',
        ),
        ("user_id,name", [{"from": "name", "to": "name"}], '"userId": the header has no column "id"'),
        (
            "id,profile",
            [{"from": ["profile", "plan"], "to": "plan"}],
            '"mappings[0].from": a CSV cell is text, so ["profile", "plan"] finds nothing past the column "profile"',
        ),
        (
            "user_id,Name",
            [{"from": "name", "to": "name"}],
            '2 problems:\n  - "userId": the header has no column "id"\n'
            '  - "mappings[0].from": the header has no column "name" (did you mean "Name"?)\n',
        ),
    ],
)
def test_a_mapped_column_missing_from_the_header_is_refused(
    emulator: Emulator, files: Files, header: str, mappings: list[dict[str, Any]], message: str
) -> None:
    row = ",".join(["1"] * len(header.split(",")))
    run = csv_run(emulator, files, f"{header}\n{row}\n", "--dry-run", mappings=mappings)
    assert run.code == 2, run.stderr
    assert f"people.csv: {message}" in run.stderr
    assert emulator.requests() == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("", "the data file is empty; a CSV file needs a header row"),
        ("\n\r\n", "the data file is empty; a CSV file needs a header row"),
        ('id,name\n1,"unterminated\n', "not valid CSV in the row from line 2: unexpected end of data"),
        ('id,name\n1,"a"b\n', "not valid CSV in the row from line 2: ',' expected after '\"'"),
        # Column names must be text: a row that is not is an invalid record, but a header is the file.
        (b"id,n\xffame\n1,a\n", "not UTF-8 text: the header row on line 1 holds bytes that are not UTF-8"),
        (b'\n\nid,"na\r\nm\xe9"\n1,a\n', "not UTF-8 text: the header row on line 4 holds bytes"),
        ("id,name,id\n1,2,3\n", 'the header row names the column "id" twice'),
        ("id,,name,,\n1,,a,,\n", "more than one column without a name (at columns 2, 4, 5): name them, or remove"),
    ],
)
def test_a_broken_csv_file_is_refused_before_sending(
    emulator: Emulator, files: Files, data: str | bytes, message: str
) -> None:
    run = csv_run(emulator, files, data, mappings=[{"from": "name", "to": "name"}])
    assert run.code == 2
    assert message in run.stderr
    assert emulator.requests() == []


def test_a_line_too_long_to_hold_is_refused_before_sending(
    emulator: Emulator, files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A file without line breaks is not gathered whole: reading stops once a line passes the bound.
    monkeypatch.setattr(csvfile, "MAX_LINE", 1000)
    monkeypatch.setattr(csvfile, "_CHUNK", 64)
    run = csv_run(emulator, files, "id,name\n1," + "a" * 2000 + "\n2,b\n", mappings=[{"from": "name", "to": "name"}])
    assert run.code == 2
    assert "people.csv: not valid CSV in the row from line 2: a line is longer than 1,000 bytes" in run.stderr
    assert emulator.requests() == []
    near = csv_run(emulator, files, "id,name\n1," + "a" * 900 + "\n", mappings=[{"from": "name", "to": "name"}])
    assert near.code == 0, near.stderr
    assert emulator.people() == {"1": {"name": "a" * 900}}
    # A cell past the csv module's bound (raised to MAX_CELL) is refused on its own.
    monkeypatch.undo()
    sent = len(emulator.requests())
    cell = csv_run(emulator, files, "id,name\n1," + "a" * (csvfile.MAX_CELL + 1) + "\n")
    assert cell.code == 2
    assert "people.csv: not valid CSV in the row from line 2: field larger than field limit" in cell.stderr
    assert len(emulator.requests()) == sent


def test_rows_are_read_as_records_of_text(files: Files) -> None:
    path = files.data("id,v,w\n" + "".join(f"{i},{i},\n" for i in range(1000)), name="big.csv")
    with open_data_file(path) as data:
        assert (data.count, data.header, data.format) == (1000, ("id", "v", "w"), "csv")
        rows = data.records()
        assert next(rows) == {"id": "0", "v": "0", "w": None}
        assert next(rows) == {"id": "1", "v": "1", "w": None}
        assert sum(1 for _ in rows) == 998


@pytest.mark.parametrize(
    ("data_name", "failed_name", "message"),
    [
        ("people.csv", "retry.json", "--failed {failed}: it is written as CSV, like the data file, but a file of"),
        ("people.json", "retry.csv", "--failed {failed}: it is written as JSON, like the data file, but a file of"),
        ("people.ndjson", "retry.json", "name it *.ndjson, or give --format"),
    ],
)
def test_a_failed_file_that_would_read_back_in_another_format_is_refused(
    emulator: Emulator, files: Files, data_name: str, failed_name: str, message: str
) -> None:
    failed = str(files.root / failed_name)
    contents = {"people.csv": "id,name\n1,Ada\n", "people.json": '[{"id": 1}]', "people.ndjson": '{"id": 1}\n'}
    data = files.data(contents[data_name], name=data_name)
    run = run_cli(["--config", files.config(config_dict(emulator.url)), "--data", data, "--failed", failed])
    assert run.code == 2
    assert message.format(failed=failed) in run.stderr
    assert emulator.requests() == []


def test_with_format_the_failed_file_may_have_any_name(emulator: Emulator, files: Files) -> None:
    failed = files.root / "retry.txt"
    config = files.config(config_dict(emulator.url, mappings=[{"from": "n", "to": "n", "as": "integer"}]))
    args = ["--config", config, "--format", "csv", "--failed", str(failed)]
    run = run_cli([*args, "--data", files.data("id,n\n1,x\n2,3\n", name="people.csv")])
    assert run.code == 1
    again = run_cli(["--config", config, "--format", "csv", "--data", str(failed)])
    assert again.code == 1
    assert 'record 0 (id "1"): invalid: mappings[0] ("n", as integer): the string "x" is not an integer' in again.stderr

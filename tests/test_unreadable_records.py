"""A record that cannot be read, where its bounds are known, is an invalid record of its own: the
others sync and the run exits 1. And a run sends nothing read from bytes other than those its
check read, however the file is changed under it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cio_sync.emulator import Emulator

from .conftest import Files, Spawn, config_dict, finish, run_cli, wait_until

DIGITS = "9" * 5000
GOOD = [{"id": 0, "name": "Ada"}, {"id": 2, "name": "Grace"}]

# Each a record 1, between two good ones, that holds what no attribute can carry; the reason its
# line gives. Bytes that are not UTF-8 are written as JSON escapes in the text and replaced below.
UNREADABLE: list[tuple[str, bytes, str]] = [
    ("mapped huge integer", b'{"id": 1, "name": ' + DIGITS.encode() + b"}", "integer of more than 4,300 digits"),
    ("unmapped huge integer", b'{"id": 1, "x": -' + DIGITS.encode() + b"}", "integer of more than 4,300 digits"),
    ("huge integer id", b'{"id": ' + DIGITS.encode() + b"}", "integer of more than 4,300 digits"),
    ("nested huge integer", b'{"id": 1, "x": [1,\t   ' + DIGITS.encode() + b"]}", "integer of more than 4,300"),
    ("huge exponent", b'{"id": 1, "x": 1e' + DIGITS.encode() + b"}", "number whose exponent is out of range"),
    ("exponent", b'{"id": 1, "x": 1e99999999999999999999}', "number whose exponent is out of range"),
    ("low surrogate", b'{"id": 1, "name": "\\udc00"}', "holds the escape \\udc00: half of a UTF-16 surrogate"),
    ("high surrogate", b'{"id": 1, "name": "\\ud800"}', "holds the escape \\ud800"),
    ("surrogate then a letter", b'{"id": 1, "name": "x\\ud800\\u0041"}', "holds the escape \\ud800"),
    ("escaped backslashes", b'{"id": 1, "name": "\\\\\\ud800\\\\udc00"}', "holds the escape \\ud800"),
    ("surrogate id", b'{"id": "\\uDBFF"}', "holds the escape \\udbff"),
    ("surrogate key", b'{"id": 1, "\\ud800": 1}', "holds the escape \\ud800"),
    ("overlong", b'{"id": 1, "x": "\xc0\xaf"}', "holds bytes that are not UTF-8 at byte offset"),
    ("encoded surrogate", b'{"id": 1, "x": "\xed\xa0\x80"}', "holds bytes that are not UTF-8"),
    ("beyond U+10FFFF", b'{"id": 1, "x": "\xf4\x90\x80\x80"}', "holds bytes that are not UTF-8"),
    ("overlong nul", b'{"id": 1, "x": "\xe0\x80\x80"}', "holds bytes that are not UTF-8"),
    ("latin-1", '{"id": 1, "x": "À¯ café"}'.encode("latin-1"), "holds bytes that are not UTF-8"),
    ("mapped latin-1", '{"id": 1, "name": "José"}'.encode("latin-1"), "holds bytes that are not UTF-8"),
    ("cut sequence", b'{"id": 1, "x": "\xe2\x82"}', "holds bytes that are not UTF-8"),
    ("deep", b'{"id": 1, "x": ' + b"[" * 600 + b"]" * 600 + b"}", "is nested more than 500 levels deep"),
    ("very deep", b'{"id": 1, "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "nested more than 500 levels"),
]


def data_file(files: Files, middle: bytes, ndjson: bool) -> str:
    first, last = (json.dumps(r).encode() for r in GOOD)
    if ndjson:
        return files.data(first + b"\n" + middle + b"\n" + last + b"\n", "data.ndjson")
    return files.data(b"[" + first + b",\n " + middle + b", " + last + b"]", "data.json")


@pytest.mark.parametrize("ndjson", [False, True], ids=["json", "ndjson"])
@pytest.mark.parametrize(("middle", "reason"), [c[1:] for c in UNREADABLE], ids=[c[0] for c in UNREADABLE])
def test_a_record_that_cannot_be_read_is_invalid_and_the_others_sync(
    emulator: Emulator, files: Files, middle: bytes, reason: str, ndjson: bool
) -> None:
    failed = files.root / ("failed.ndjson" if ndjson else "failed.json")
    config = files.config(config_dict(emulator.url))
    run = run_cli(["--config", config, "--data", data_file(files, middle, ndjson), "--failed", str(failed)])
    assert run.code == 1, run.stderr
    (line,) = [line for line in run.stderr.splitlines() if line.startswith("cio-sync: record ")]
    # Its id names person 1 wherever it can be read (not in the id, nor nested past the limit).
    named = ' (id "1")' if middle.startswith(b'{"id": 1,') and len(middle) < 10_000 else ""
    assert line.startswith(f"cio-sync: record 1{named}: invalid: ") and reason in line, line
    assert emulator.people() == {"0": {"name": "Ada"}, "2": {"name": "Grace"}}
    # Written back as it stands, so that a run of --failed finds it invalid again for the same
    # reason; bytes that are not UTF-8 come back as the bytes they were.
    again = run_cli(["--config", config, "--data", str(failed)])
    assert again.code == 1, again.stderr
    (line,) = [line for line in again.stderr.splitlines() if line.startswith("cio-sync: record ")]
    expected = "holds bytes that are not UTF-8" if "not UTF-8" in reason else reason
    assert line.startswith(f"cio-sync: record 0{named}: invalid: ") and expected in line, line
    assert len(emulator.people()) == 2


def test_a_csv_row_that_is_not_utf8_is_invalid_and_written_back_as_it_was(emulator: Emulator, files: Files) -> None:
    # Latin-1 far into the file (its fifth block), in a quoted cell across lines, and an overlong
    # sequence. Long names make the bytes: what matters is where the bad rows are, not how many
    # people there are.
    rows = [b"%d,n%d %s\n" % (i, i, b"x" * 100) for i in range(3_000)]
    rows[1] = b'1,"Ren\xe9\r\nline two"\n'
    rows[2_900] = b"2900,\xc0\xaf\n"
    content = b"id,name\n" + b"".join(rows)
    assert len(b"".join(rows[:2_900])) > 4 * 65536
    data = files.data(content, "data.csv")
    failed = files.root / "failed.csv"
    mappings = [{"from": "name", "to": "name"}]
    config = files.config(config_dict(emulator.url, mappings=mappings, transport="batch"))
    run = run_cli(["--config", config, "--data", data, "--failed", str(failed)])
    assert run.code == 1, run.stderr
    reason = "holds bytes that are not UTF-8 (save the export as UTF-8)"
    lines = [line for line in run.stderr.splitlines() if line.startswith("cio-sync: record ")]
    assert lines == [
        # Their id cells are whole: each names its person.
        f'cio-sync: record 1 (id "1"): invalid: the row on line 3 {reason}',
        f'cio-sync: record 2900 (id "2900"): invalid: the row on line 2903 {reason}',
    ]
    assert len(emulator.people()) == 2_998
    assert "1" not in emulator.people() and "2900" not in emulator.people()
    # The rows' bytes, as they were: a rerun finds them invalid for the same reason.
    assert failed.read_bytes() == b'id,name\r\n1,"Ren\xe9\r\nline two"\r\n2900,\xc0\xaf\r\n'
    again = run_cli(["--config", config, "--data", str(failed)])
    assert again.code == 1
    assert f'record 0 (id "1"): invalid: the row on line 2 {reason}' in again.stderr


@pytest.mark.parametrize(
    ("name", "content", "tail"),
    [
        ("d.json", b'[{"id": 0}, {"id": 1, "x": "\xc0"}, {"id": 2}]', '{"id": 1, "x": "\udcc0"}, {"id": 2}'),
        ("d.ndjson", b'{"id": 0}\n{"id": 1, "x": "\xe9"}\n', '{"id": 1, "x": "\udce9"}\n'),
        ("d.csv", b"id,x\n0,a\n1,\xe9\n", "1,\udce9\n"),
    ],
)
def test_an_unread_tail_with_bytes_that_are_not_utf8_is_copied_so_it_reads_invalid_again(
    files: Files, name: str, content: bytes, tail: str
) -> None:
    from cio_sync.input.datafile import open_data_file

    with open_data_file(files.data(content, name)) as data:
        records = data.records()
        next(records)
        held, unread = records.unread()
        assert list(held) == []
        assert unread is not None and unread.count == data.count - 1
        # The bytes as the lone surrogates they are read as, which --failed writes back as the
        # bytes they were.
        assert "".join(unread.chunks()) == tail


# Bytes that are not UTF-8 next to what would read them otherwise once written as escapes: a
# \ud83d escape (with \udce9 it would pair into one character) or a backslash (\\udce9 would read
# as text). In the id, and in another value.
BESIDE_ESCAPES = [
    b'{"id": "p2\\ud83d\xa9"}',
    b'{"id": 1, "x": "a\\ud83d\xe9"}',
    b'{"id": "p2\\\xe9"}',
    b'{"id": 1, "x": "a\\\xe9"}',
]


@pytest.mark.parametrize("ndjson", [False, True], ids=["json", "ndjson"])
@pytest.mark.parametrize("middle", BESIDE_ESCAPES)
def test_failed_fed_back_finds_a_record_with_bytes_beside_escapes_invalid_again(
    emulator: Emulator, files: Files, middle: bytes, ndjson: bool
) -> None:
    failed = files.root / ("failed.ndjson" if ndjson else "failed.json")
    config = files.config(config_dict(emulator.url))
    data = data_file(files, middle, ndjson)
    first = run_cli(["--config", config, "--data", data, "--failed", str(failed)])
    if first.code == 2:  # an array whose syntax breaks there: refused whole, nothing to feed back
        assert not ndjson and not failed.exists()
        return
    assert first.code == 1, first.stderr
    again = run_cli(["--config", config, "--data", str(failed)])
    assert again.code in (1, 2), again.stderr
    assert emulator.people() == {"0": {"name": "Ada"}, "2": {"name": "Grace"}}
    assert failed.read_bytes().count(middle) == 1  # the record as it stood in the data file


@pytest.mark.parametrize("space", ["\u00a0", "\x0c", "\x1f", "\u2028", "\u3000"])
@pytest.mark.parametrize("where", ["after", "before"])
def test_failed_keeps_the_space_that_made_an_ndjson_line_unreadable(
    emulator: Emulator, files: Files, space: str, where: str
) -> None:
    # Not JSON's own whitespace: the line is not one value, and must not become one on its way
    # through --failed.
    line = '{"id": 1, "name": "x"}'
    middle = (line + space if where == "after" else space + line).encode()
    failed = files.root / "failed.ndjson"
    config = files.config(config_dict(emulator.url))
    assert run_cli(["--config", config, "--data", data_file(files, middle, True), "--failed", str(failed)]).code == 1
    assert middle in failed.read_bytes()
    again = run_cli(["--config", config, "--data", str(failed)])
    assert again.code == 1, again.stderr
    assert "1" not in emulator.people()


NOT_JSON_LINES: list[tuple[bytes, list[tuple[int, int, str]], list[str]]] = [
    (
        b'{"id": 1}\n{"id": 2}\n{"id": 3\n{"id": 4}\n',
        [(2, 3, "Expecting ',' delimiter at byte")],
        ["1", "2", "4"],
    ),
    (b'\n{"id": 1}\n\n\n{"id": oops}\n{"id": 2}', [(1, 5, "expected a value at byte offset 20")], ["1", "2"]),
    (b'{oops}\n{"id": 1}\n{"id": 2}\n', [(0, 1, "Expecting property name enclosed in double quotes")], ["1", "2"]),
    (b'{"id": 1} {"id": 9}\n{"id": 2}\n', [(0, 1, "more follows the value on its line at byte offset 9")], ["2"]),
    (b'{"id": 1,\n "name": "x"}\n{"id": 2}\n', [(0, 1, "Expecting property name"), (1, 2, "more follows")], ["2"]),
    (b'{"id": 1}\n{"id": 2}\n{"id": 9, "name": "cut', [(2, 3, "Unterminated string")], ["1", "2"]),
]


@pytest.mark.parametrize(("data", "invalid", "synced"), NOT_JSON_LINES)
def test_an_ndjson_line_that_is_not_json_is_an_invalid_record(
    emulator: Emulator, files: Files, data: bytes, invalid: list[tuple[int, int, str]], synced: list[str]
) -> None:
    # A line break always ends a record (a JSON string cannot hold one): the bounds are known.
    run = run_cli(["--config", files.config(config_dict(emulator.url)), "--data", files.data(data, "d.ndjson")])
    assert run.code == 1, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("cio-sync: record ")]
    assert len(lines) == len(invalid)
    for line, (index, number, reason) in zip(lines, invalid, strict=True):
        assert line.startswith(f"cio-sync: record {index}: invalid: line {number} is not valid JSON: "), line
        assert reason in line, line
    assert sorted(emulator.people()) == synced


def test_a_record_longer_than_the_limit_is_invalid_and_not_held(emulator: Emulator, files: Files) -> None:
    data = '[{"id": 0}, {"id": 1, "unmapped": "' + "a" * 12_000_000 + '"}, {"id": 2, "name": "Grace"}]'
    run = run_cli(["--config", files.config(config_dict(emulator.url)), "--data", files.data(data)])
    assert run.code == 1, run.stderr
    assert "record 1: invalid: is longer than 10,000,000 characters (at byte offset 12)" in run.stderr
    assert emulator.people() == {"0": {}, "2": {"name": "Grace"}}


@pytest.mark.parametrize(
    ("name", "text"),
    [
        # Long runs of digits in strings, after what could precede a number elsewhere.
        ("data.json", '[{"id": 1, "note": "a,' + DIGITS + '", "more": "b:' + DIGITS + '"}, {"id": 2}]'),
        ("data.json", '[{"id": 1, "note": "[' + DIGITS + '"}, {"id": 2, "k": {"' + DIGITS + '": 1}}]'),
        ("data.ndjson", '{"id": 1, "note": "' + DIGITS + '"}\n{"id": 2, "note": "e' + DIGITS + '"}\n'),
        ("data.ndjson", '{"id": 1, "note": "1.' + DIGITS + "e" + DIGITS + '"}\n{"id": 2}\n'),
    ],
)
def test_digits_in_strings_are_text(emulator: Emulator, files: Files, name: str, text: str) -> None:
    # The notes are not mapped (too long for an attribute): read, they must not refuse the file.
    run = run_cli(["--config", files.config(config_dict(emulator.url)), "--data", files.data(text, name)])
    assert run.code == 0, run.stderr
    assert emulator.people() == {"1": {}, "2": {}}


@pytest.mark.parametrize("space", [b" " * 70_000, b"\n" * 200_000, b" \t\r\n" * 50_000])
def test_much_whitespace_before_the_array_is_whitespace(emulator: Emulator, files: Files, space: bytes) -> None:
    data = files.data(b"\xef\xbb\xbf" + space + b'[{"id": 1, "name": "Ada"}]' + space)
    run = run_cli(["--config", files.config(config_dict(emulator.url)), "--data", data])
    assert run.code == 0, run.stderr
    assert emulator.people() == {"1": {"name": "Ada"}}


def test_only_whitespace_is_still_an_empty_file(emulator: Emulator, files: Files) -> None:
    run = run_cli(["--config", files.config(config_dict(emulator.url)), "--data", files.data(b" " * 200_000)])
    assert run.code == 2
    assert "the data file is empty" in run.stderr
    assert emulator.requests() == []


def test_a_syntax_error_after_an_unreadable_record_still_refuses_the_file(emulator: Emulator, files: Files) -> None:
    data = b'[{"id": 1, "x": "\xff"}, {"id": 2}, {id: 3}]'
    run = run_cli(["--config", files.config(config_dict(emulator.url)), "--data", files.data(data)])
    assert run.code == 2
    assert (
        "not valid JSON after 2 complete records: Expecting property name enclosed in double quotes at byte offset 34"
        in run.stderr
    )
    assert emulator.requests() == []


def people_file(version: str, count: int) -> bytes:
    """NDJSON people whose values are all ``version`` (three letters): the same size whatever it is."""
    pad = "x" * 600  # an unmapped note, so that a few people span many blocks
    return "".join(json.dumps({"id": i, "name": f"{version}{i:05}", "note": pad}) + "\n" for i in range(count)).encode()


@pytest.mark.parametrize("keep_time", [True, False], ids=["time kept", "time changed"])
def test_a_file_rewritten_in_place_mid_run_sends_nothing_read_from_the_new_bytes(
    emulator: Emulator, files: Files, spawn_cli: Spawn, keep_time: bool
) -> None:
    count = 1100
    old, new = people_file("old", count), people_file("new", count)
    assert len(old) == len(new) > 10 * 65536
    path = Path(files.data(old, "data.ndjson"))
    before = os.stat(path)
    emulator.latency = 0.01
    config = files.config(config_dict(emulator.url, parallelism=2))
    proc = spawn_cli(["--config", config, "--data", str(path)])
    wait_until(lambda: len(emulator.people()) >= 20 or proc.poll() is not None)
    # In place, as an editor or a rewriting export does: same size, maybe the same time.
    with path.open("r+b") as f:
        f.write(new)
    if keep_time:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    emulator.latency = 0
    run = finish(proc, timeout=120)
    assert run.code == 1, run.stderr
    assert "changed while being read (its bytes differ from those its check read)" in run.stderr
    people = emulator.people()
    # Nothing sent was read from bytes the check did not read: every value is the old one, whole.
    assert 20 <= len(people) < count
    assert all(person == {"name": f"old{int(i):05}"} for i, person in people.items())


@pytest.mark.parametrize("name", ["data.json", "data.csv"])
def test_a_json_or_csv_file_rewritten_between_the_passes_sends_nothing_new(
    emulator: Emulator, files: Files, name: str
) -> None:
    from cio_sync import sync
    from cio_sync.input.datafile import open_data_file
    from cio_sync.outcome import StopReason

    from .conftest import make_config

    # Names near the API's limit: a few people fill the batches sent before the change is met.
    pad = "x" * 900

    def content(version: str) -> str:
        if name.endswith(".csv"):
            return "id,name\n" + "".join(f"{i},{version}{i:05}{pad}\n" for i in range(2_000))
        return json.dumps([{"id": i, "name": f"{version}{i:05}{pad}"} for i in range(2_000)])

    path = Path(files.data(content("old"), name))
    before = os.stat(path)
    with open_data_file(str(path)) as data:
        with path.open("r+") as f:
            f.seek(len(content("old")) // 2)  # the second half: the first blocks are as checked
            f.write(content("new")[len(content("old")) // 2 :])
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        result = sync(make_config(emulator.url, parallelism=2, transport="batch"), data.records())
    assert result.stopped is StopReason.DATA_FILE_CHANGED
    assert result.error is not None and "its bytes differ" in result.error
    # Usually some batches are on their way before the change is met; on a busy machine the
    # reader may meet it before a worker starts the first (the stop then keeps it from starting).
    assert result.synced < 2_000 and result.synced + result.not_attempted == result.total
    people = emulator.people()
    assert len(people) == result.synced
    assert all(person == {"name": f"old{int(i):05}{pad}"} for i, person in people.items())

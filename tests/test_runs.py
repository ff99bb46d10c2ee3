"""Reading an array's elements, or NDJSON's lines, a run at a time (cio_sync/input/runs.py) reads
exactly what reading them one by one reads: the same values, the same unreadable records, the same
refusals, the same place to copy an unread tail from."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cio_sync.errors import DataFileError
from cio_sync.input import datafile, runs
from cio_sync.input.datafile import open_data_file

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
# Elements as text, with what a run must not read as one by one would not: a brace and comma in a
# string, lone and paired surrogate escapes, bytes that are not UTF-8 (written as U+DC80 after
# decoding), numbers Python reads only as Decimal or not at all, nesting past the limit, and
# text that is not JSON.
hostile = st.sampled_from(
    [
        '{"s": "},{"}',
        '{"a": {"b": 1}, "c": [{"d": "}"}]}',
        '{"s": "\\ud800"}',
        '{"s": "\\ud83d\\ude00"}',
        '{"s": "<not UTF-8>"}',
        '{"n": 18446744073709551616}',
        '{"n": -9223372036854775809}',
        '{"n": 1.10, "e": 1E400}',
        '{"n": ' + "9" * 5000 + "}",
        '{"deep": ' + "[" * 600 + "]" * 600 + "}",
        '{"deep": ' + '{"a":' * 500 + "1" + "}" * 500 + "}",  # one level past the limit, in objects
        '{"a": {}, "b": [{"c": {}}, {"d": []}], "e": {"f": {"g": 1}}}',
        '{"x": NaN}',
        '{"x": }',
        '"a string"',
        "12",
        "[1, 2]",
    ]
)
elements = st.lists(
    values.map(lambda v: json.dumps({"id": 1, "v": v}, ensure_ascii=False)) | hostile | st.just('{"id": 2}'),
    max_size=30,
)


def write(path: Path, texts: list[str], space: str) -> Path:
    """The array of ``texts``, ``space`` around every comma."""
    text = "[" + space + f",{space}".join(texts) + space + "]"
    path.write_bytes(text.encode("utf-8").replace(b"<not UTF-8>", b"\xff\xfe"))
    return path


# Lines that hold less or more than one value, alone or together: a run must not read them as values.
broken_lines = st.sampled_from(
    ["1,2", "[3", "4]", "1],[2", '"x', 'y"', '{"a": 1', "}", "", "  \t", "1 2", "\x0c1", "[]],[[", "1\r", "null"]
)
lines = st.lists(
    values.map(lambda v: json.dumps({"id": 1, "v": v}, ensure_ascii=False)) | hostile | broken_lines,
    max_size=30,
)


def read(path: Path, run_characters: int, chunk: int) -> object:
    """Every record of ``path``, or the refusal."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runs, "RUN_CHARACTERS", run_characters)
        patch.setattr(datafile, "_CHUNK", chunk)
        try:
            with open_data_file(str(path)) as data:
                return data.count, list(data.records())
        except DataFileError as e:
            return str(e)


def tails(path: Path, run_characters: int) -> list[object]:
    """After each number of records handed out: where the unread tail begins, and what is held."""
    found: list[object] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runs, "RUN_CHARACTERS", run_characters)
        with open_data_file(str(path)) as data:
            for taken in range(data.count + 1):
                records = data.records()
                handed = [next(records) for _ in range(taken)]
                held, tail = records.unread()
                found.append((handed, list(held), tail and (tail.first, tail.start, tail.end)))
    return found


@settings(deadline=None)
@given(elements, st.sampled_from(["", " ", "\n  "]), st.sampled_from([7, 64, 1 << 16]))
# A record one level too deep among scalars, whose brackets leave the others none each.
@example(texts=["1", "2", '{"x": ' + "[" * 500 + "]" * 500 + "}", "3"], space="", chunk=1 << 16)
def test_runs_read_what_one_by_one_reads(
    tmp_path_factory: pytest.TempPathFactory, texts: list[str], space: str, chunk: int
) -> None:
    path = write(tmp_path_factory.mktemp("runs") / "d.json", texts, space)
    assert read(path, runs.RUN_CHARACTERS, chunk) == read(path, 0, chunk)


@settings(deadline=None)
@given(lines, st.sampled_from(["\n", "\r\n", "\n\n \n"]), st.sampled_from([7, 64, 1 << 16]))
# One line too many values, two lines one string between them: as many arrays as lines, of one each,
# unless the brackets between lines carry a line break (which no string may hold).
@example(texts=["1],[2", '"x', 'y"'], newline="\n", chunk=1 << 16)
@example(texts=["1],[2", "[3", "4]"], newline="\n", chunk=1 << 16)
# Lines whose brackets balance across them, as one array of one value a line would read them.
@example(texts=["[[", "]]],[1"], newline="\n", chunk=1 << 16)
@example(texts=['{"id": 1, "m": [[1', '2]]}],[{"id": 666}'], newline="\r\n", chunk=1 << 16)
def test_runs_of_lines_read_what_line_by_line_reads(
    tmp_path_factory: pytest.TempPathFactory, texts: list[str], newline: str, chunk: int
) -> None:
    path = tmp_path_factory.mktemp("runs") / "d.ndjson"
    path.write_bytes(newline.join(texts).encode("utf-8").replace(b"<not UTF-8>", b"\xff\xfe") + b"\n")
    assert read(path, runs.RUN_CHARACTERS, chunk) == read(path, 0, chunk)


def test_a_stop_within_a_run_of_lines_copies_the_tail_from_the_next_line(tmp_path: Path) -> None:
    path = tmp_path / "d.ndjson"
    path.write_text(
        "".join(json.dumps({"id": i, "s": "\\n" * (i % 3)}) + ("\n\n" if i % 4 else " \r\n") for i in range(40))
    )
    by_runs = tails(path, runs.RUN_CHARACTERS)
    assert by_runs == tails(path, 0)
    twentieth = by_runs[20]
    assert isinstance(twentieth, tuple) and twentieth[2] is not None
    assert path.read_bytes()[twentieth[2][1] :].startswith(b'{"id": 20')


@pytest.mark.parametrize(
    "text",
    [
        '[{"id":"a1"},{"id":"a2"}]\n[{"id":"b1"},{"id":"b2"}]\n',  # two arrays, one after the other
        '[{"a":1}] junk {"b":2},{"c":3}]',
        '[{"id":"a1"}, ] oops {"id":"b1"},{"id":"b2"}]',  # a trailing comma, then more
    ],
)
def test_an_array_closed_within_a_run_is_refused_as_one_by_one_refuses_it(tmp_path: Path, text: str) -> None:
    path = tmp_path / "d.json"
    path.write_text(text)
    refused = read(path, runs.RUN_CHARACTERS, 1 << 16)
    assert isinstance(refused, str) and "not valid JSON" in refused
    assert refused == read(path, 0, 1 << 16)


@pytest.mark.parametrize("suffix", [".json", ".ndjson"])
def test_reading_stays_linear_in_the_file_when_records_hold_objects(tmp_path: Path, suffix: str) -> None:
    """Runs cut at the last brace and comma read: within a record holding objects (the last one
    read, cut off by the end of what was read), the decoder fails. Each record must not try the
    same run again: all the runs tried hold a few times the file, not the file for each record."""
    records = [
        {"id": i, "attrs": {"plan": "pro"}, "items": [{"x": j} for j in range(6)], "e": "x"} for i in range(3000)
    ]
    path = tmp_path / f"d{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(records))
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    handed: list[int] = []
    with pytest.MonkeyPatch.context() as patch:
        for name in ("run_of_elements", "run_of_lines"):
            original = getattr(runs, name)

            def counted(text: str, start: int, scan: runs.Scan, original: Callable[..., object] = original) -> object:
                def counting(wrapped: str, at: int) -> tuple[object, int]:
                    handed.append(len(wrapped))
                    return scan(wrapped, at)

                return original(text, start, counting)

            patch.setattr(datafile, name, counted)
        patch.setattr(datafile, "_CHUNK", 4096)
        with open_data_file(str(path)) as data:
            assert list(data.records()) == records
    assert sum(handed) <= 8 * path.stat().st_size


@pytest.mark.parametrize(
    "record",
    [
        '{"a": {}, "s": "\\ud800"}',  # a surrogate escape after an object: the run is cut before it
        '{"id": %d, "items": [{"id": 1, "v": "x"}, {"id": 2, "v": "y"}]}',  # the first key, nested
    ],
)
def test_a_window_that_gives_no_run_is_tried_once(tmp_path: Path, record: str) -> None:
    """Where no run can be read, the window is read one by one; not tried again for each record."""
    path = tmp_path / "d.json"
    count = 20_000
    path.write_text("[" + ",".join(record.replace("%d", str(i)) for i in range(count)) + "]")
    calls: list[int] = []
    with pytest.MonkeyPatch.context() as patch:
        original = runs.run_of_elements

        def counted(text: str, start: int, scan: runs.Scan) -> object:
            calls.append(start)
            return original(text, start, scan)

        patch.setattr(datafile, "run_of_elements", counted)
        with open_data_file(str(path)) as data:
            assert data.count == count
    assert len(calls) < count / 20


def test_a_stop_within_a_run_copies_the_tail_from_the_next_element(tmp_path: Path) -> None:
    texts = [json.dumps({"id": i, "s": "},{" * (i % 3), "n": {"a": [i]}}) for i in range(40)]
    path = write(tmp_path / "d.json", texts, " \n")
    by_runs = tails(path, runs.RUN_CHARACTERS)
    assert by_runs == tails(path, 0)
    # Not vacuous: the tail after the 20th record starts at the 21st.
    twentieth = by_runs[20]
    assert isinstance(twentieth, tuple) and twentieth[2] is not None
    assert path.read_bytes()[twentieth[2][1] :].startswith(b'{"id": 20')

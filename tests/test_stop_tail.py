"""A stopped run does not read the rest of the file: the unread records are found by position,
copied to --failed as they stand, and counted; a re-run of --failed completes the sync."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cio_sync import datafile
from cio_sync.datafile import open_data_file
from cio_sync.emulator import Emulator
from cio_sync.schema import problems

from .conftest import Files, Spawn, config_dict, finish, run_process, wait_until

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


@settings(max_examples=200, deadline=None)
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


@pytest.mark.parametrize("name", ["data.json", "data.ndjson"])
def test_a_stopped_run_copies_the_unread_records_to_failed_and_a_rerun_completes(
    emulator: Emulator, files: Files, spawn_cli: Spawn, name: str
) -> None:
    people = [{"id": i, "name": f'n{i} [{{"\\'} for i in range(3000)]
    if name.endswith(".ndjson"):
        data = files.data("".join(json.dumps(p) + "\n" for p in people), name)
    else:
        data = files.data(json.dumps(people, indent=1), name)
    failed, report = files.root / f"failed{Path(name).suffix}", files.root / "report.json"
    emulator.latency = 0.01
    args = ["--config", files.config(config_dict(emulator.url, parallelism=2)), "--data", data]
    proc = spawn_cli([*args, "--failed", str(failed), "--report", str(report)])
    wait_until(lambda: len(emulator.people()) >= 20)
    proc.send_signal(signal.SIGTERM)
    run = finish(proc)
    assert run.code == 143, run.stderr
    document = json.loads(report.read_text())
    assert problems("report.schema.json", document) == []
    counts = document["counts"]
    assert sum(counts.values()) == 3000
    text = failed.read_text()
    left = parsed(text, ndjson=True) if name.endswith(".ndjson") else json.loads(text)
    assert len(left) == 3000 - counts["synced"]
    assert {p["id"] for p in left} | {int(i) for i in emulator.people()} == set(range(3000))
    emulator.latency = 0
    rerun = run_process(["--config", files.config(config_dict(emulator.url)), "--data", str(failed)])
    assert rerun.code == 0, rerun.stderr
    assert emulator.people() == {str(p["id"]): {"name": p["name"]} for p in people}

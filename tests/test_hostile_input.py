"""Odd files, odd values and odd environments: a one-line message and a documented exit code, never
a crash, and never a value changed on its way to the workspace."""

from __future__ import annotations

import json
import os
import resource
import signal
import sqlite3
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cio_sync.emulator import Emulator
from cio_sync.input import datafile
from cio_sync.input.datafile import UnreadableRecord, open_data_file
from cio_sync.input.schema import problems

from .conftest import CLI, Files, Run, checked, config_dict, people_puts, run_cli

DIGITS = "9" * 5000


def test_what_merely_looks_odd_is_sent_exactly(emulator: Emulator, files: Files) -> None:
    text = (
        '[{"id": 1, "name": "' + DIGITS + '", "computed_ltv": 1.' + DIGITS + "},"
        ' {"id": 2, "name": "\\ud83d\\ude00 \\\\ud800 \\\\\\ud83d\\ude00", "unmapped": "a' + "b" * 3_000_000 + '"}]'
    )
    run = run_cli(["--config", files.config(config_dict(emulator.url)), "--data", files.data(text)])
    assert run.code == 1, run.stderr  # the 5,000-character name is over the API's 1,000 bytes
    assert 'record 0 (id "1"): invalid: the value of attribute "name" is 5000 bytes' in run.stderr
    assert emulator.people()["2"] == {"name": "\U0001f600 \\ud800 \\\U0001f600"}


# Strings with surrogates (lone and paired), backslashes, and the letters of escapes.
TEXTS = st.text(alphabet=st.sampled_from(["\ud800", "\udc00", "\U0001f600", "\\", "u", "d", "8", "c", "0", "a", '"']))


@given(strings=st.lists(TEXTS, max_size=6), chunk=st.integers(min_value=1, max_value=40))
def test_exactly_the_records_with_a_lone_surrogate_are_unreadable(
    strings: list[str], chunk: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("surrogates") / "d.json"
    path.write_bytes(json.dumps([{"s": s} for s in strings]).encode())  # every surrogate as a \u escape
    # As JSON reads them: a high escape followed by a low one is a pair, whatever wrote them.
    expected = json.loads(path.read_bytes())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datafile, "_CHUNK", chunk)
        with open_data_file(str(path)) as data:
            records = list(data.records())
    assert len(records) == len(expected)
    for record, want in zip(records, expected, strict=True):
        if _has_lone_surrogate(want["s"]):
            assert isinstance(record, UnreadableRecord)
            assert "half of a UTF-16 surrogate pair" in record.reason()
        else:
            assert record == want


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


@given(
    values=st.lists(
        st.tuples(st.integers(min_value=4290, max_value=4310), st.sampled_from(["int", "-int", "str", "dec", "key"])),
        max_size=4,
    ),
    chunk=st.integers(min_value=17, max_value=5000),
    ndjson=st.booleans(),
)
def test_long_runs_of_digits_are_unreadable_only_as_integers(
    values: list[tuple[int, str]], chunk: int, ndjson: bool, tmp_path_factory: pytest.TempPathFactory
) -> None:
    parts = []
    for digits, kind in values:
        run = "7" * digits
        parts.append(
            {"int": run, "-int": "-" + run, "str": f'"{run}"', "dec": run + ".5", "key": f'{{"{run}": 1}}'}[kind]
        )
    path = tmp_path_factory.mktemp("digits") / ("d.ndjson" if ndjson else "d.json")
    path.write_text("\n".join(parts) + "\n" if ndjson else "[" + ", ".join(parts) + "]")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datafile, "_CHUNK", chunk)
        with open_data_file(str(path)) as data:
            records = list(data.records())
    assert len(records) == len(values)
    for record, (digits, kind) in zip(records, values, strict=True):
        too_long = digits > 4300 and kind in ("int", "-int")
        assert isinstance(record, UnreadableRecord) == too_long
        assert not isinstance(record, UnreadableRecord) or "integer of more than 4,300 digits" in record.reason()


def feed_fifo(path: Path, payload: bytes) -> threading.Thread:
    os.mkfifo(path)

    def write() -> None:
        with path.open("wb") as fifo:
            fifo.write(payload)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    return writer


def test_a_fifo_is_read_as_standard_input_is(emulator: Emulator, files: Files) -> None:
    fifo = files.root / "people.json"
    writer = feed_fifo(fifo, json.dumps([{"id": 1, "name": "Ada"}, {"id": 2}]).encode())
    run = run_cli(["--config", files.config(config_dict(emulator.url)), "--data", str(fifo)])
    writer.join()
    assert run.code == 0, run.stderr
    assert sorted(people_puts(emulator), key=str) == ["1", "2"]


def process(
    args: list[str], stdin: bytes | None = None, close: tuple[int, ...] = (), env: dict[bytes, bytes] | None = None
) -> Run:
    """``python -m cio_sync`` with some of its standard descriptors closed (0, 1 or 2)."""
    base = {k.encode(): v.encode() for k, v in os.environ.items() if not k.startswith("CIO_")}

    def close_descriptors() -> None:
        for fd in close:
            os.close(fd)

    proc = subprocess.run(
        [*CLI, *args],
        input=stdin,
        capture_output=True,
        env={**base, **(env or {})},
        preexec_fn=close_descriptors if close else None,
        timeout=60,
    )
    return checked(proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"))


def test_dev_stdin_from_a_pipe_is_read_as_dash_is(emulator: Emulator, files: Files) -> None:
    config = files.config(config_dict(emulator.url))
    run = process(["--config", config, "--data", "/dev/stdin"], stdin=b'[{"id": 1, "name": "Ada"}]')
    assert run.code == 0, run.stderr
    assert people_puts(emulator) == ["1"]


def test_closed_standard_input_is_refused(emulator: Emulator, files: Files) -> None:
    run = process(["--config", files.config(config_dict(emulator.url)), "--data", "-"], close=(0,))
    assert run.code == 2
    assert "cio-sync: error: <stdin>: standard input is closed" in run.stderr
    assert emulator.requests() == []


def test_a_report_to_a_closed_standard_output_is_refused_before_sending(emulator: Emulator, files: Files) -> None:
    args = ["--config", files.config(config_dict(emulator.url)), "--data", files.data([{"id": 1}]), "--report", "-"]
    run = process(args, close=(1,))
    assert run.code == 2
    assert "--report -: standard output is closed" in run.stderr
    assert emulator.requests() == []


def test_a_report_into_a_broken_pipe_says_so_and_exits_74(emulator: Emulator, files: Files) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    args = ["--config", files.config(config_dict(emulator.url)), "--data", files.data([{"id": 1}]), "--report", "-"]
    try:
        proc = subprocess.run([*CLI, *args], stdout=write_end, stderr=subprocess.PIPE, timeout=60)
    finally:
        os.close(write_end)
    stderr = checked(proc.returncode, "", proc.stderr.decode()).stderr
    assert proc.returncode == 74, stderr
    assert stderr.endswith("cio-sync: error: --report -: cannot write the report to standard output: Broken pipe\n")
    assert people_puts(emulator) == ["1"]


@pytest.mark.parametrize("stderr", ["closed", "/dev/full"])
def test_exit_code_and_report_agree_without_a_usable_standard_error(
    emulator: Emulator, files: Files, stderr: str
) -> None:
    report = files.root / "report.json"
    data = files.data([{"id": 1}, "not a record"])
    args = [*CLI, "--config", files.config(config_dict(emulator.url)), "--data", data]
    args += ["--report", str(report)]
    if stderr == "closed":
        proc = subprocess.run(args, preexec_fn=lambda: os.close(2), timeout=60)
    else:
        with open(stderr, "w") as full:
            proc = subprocess.run(args, stderr=full, timeout=60)
    assert proc.returncode == 1
    assert json.loads(report.read_text())["exit_code"] == 1


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--timeout", "inf"], "Invalid value for '--timeout'"),
        (["--timeout", "1e10"], "Invalid value for '--timeout'"),
        (["--timeout", "nan"], "Invalid value for '--timeout'"),
        (["--rate-limit", "inf"], "Invalid value for '--rate-limit'"),
        (["--rate-limit", "1e-300"], "Invalid value for '--rate-limit'"),
        (["--retries", "21"], "Invalid value for '--retries'"),
        (["--retries", "-1"], "Invalid value for '--retries'"),
        (["--give-up-after", "0.5"], "Invalid value for '--give-up-after'"),
        (["--give-up-after", "86401"], "Invalid value for '--give-up-after'"),
        (["--give-up-after", "nan"], "Invalid value for '--give-up-after'"),
    ],
)
def test_numbers_out_of_bounds_are_refused(emulator: Emulator, files: Files, option: list[str], message: str) -> None:
    args = ["--config", files.config(config_dict(emulator.url)), "--data", files.data([{"id": 1}]), *option]
    run = run_cli(args)
    assert run.code == 2
    assert message in run.stderr
    assert emulator.requests() == []


@pytest.mark.parametrize(
    ("key", "raw", "message"),
    [
        ("rateLimit", "1e-300", '"rateLimit" must be at least 0.1, got number 1e-300'),
        ("rateLimit", "NaN", "not valid JSON: NaN is not a JSON number"),
        ("rateLimit", "-Infinity", "not valid JSON: -Infinity is not a JSON number"),
        ("apiKey", '"k\\ud800"', "holds a lone surrogate escape such as \\ud800"),
        ("userId", '"\\udc00"', "holds a lone surrogate escape such as \\ud800"),
    ],
)
def test_configuration_values_out_of_bounds_are_refused(
    emulator: Emulator, files: Files, key: str, raw: str, message: str
) -> None:
    text = json.dumps(config_dict(emulator.url, **{key: "@@"})).replace('"@@"', raw)
    run = run_cli(["--config", files.config(text), "--data", files.data([{"id": 1}])])
    assert run.code == 2, run.stderr
    assert message in run.stderr
    assert emulator.requests() == []


def test_a_configuration_path_without_end_is_refused(emulator: Emulator, files: Files) -> None:
    run = run_cli(["--config", "/dev/zero", "--data", files.data([{"id": 1}])])
    assert run.code == 2
    assert "cio-sync: error: /dev/zero: is larger than 1,000,000 bytes, which no configuration needs" in run.stderr


@pytest.mark.parametrize("variable", [b"CIO_API_KEY", b"CIO_SITE_ID"])
def test_credentials_that_are_not_utf8_are_refused(emulator: Emulator, files: Files, variable: bytes) -> None:
    config = files.config(config_dict(emulator.url))
    run = process(["--config", config, "--data", files.data([{"id": 1}])], env={variable: b"demo\xffkey"})
    assert run.code == 2
    what = "API key" if variable == b"CIO_API_KEY" else "site id"
    assert f"the {what} from {variable.decode()} is not valid UTF-8 text" in run.stderr
    assert "demo" not in run.stderr
    assert emulator.requests() == []


def test_a_state_file_of_another_shape_is_refused_and_left_alone(emulator: Emulator, files: Files) -> None:
    other = files.root / "app.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE synced (a, b)")
        db.execute("CREATE TABLE users (name)")
    before = other.read_bytes()
    args = ["--config", files.config(config_dict(emulator.url)), "--data", files.data([{"id": 1}])]
    for extra in ([], ["--dry-run"]):
        run = run_cli([*args, "--state", str(other), *extra])
        assert run.code == 2
        assert "an SQLite database, but not a cio-sync ledger (its tables are synced, users)" in run.stderr
    assert other.read_bytes() == before
    assert emulator.requests() == []


def limited_files(size: int) -> Callable[[], None]:
    """For a child process: files may grow to ``size`` bytes, as on a nearly full disk."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return limit


@pytest.mark.parametrize("limit", [30_000, 2_000], ids=["--failed lost", "--failed and --report lost"])
def test_a_full_disk_under_the_outputs_says_what_was_lost_and_exits_74(
    emulator: Emulator, files: Files, limit: int
) -> None:
    # --failed holds the records (500-byte blobs): about 50 KB; the report about 20 KB.
    data = files.data([{"id": 1, "name": "Ada"}] + [{"id": i + 0.5, "blob": "x" * 500} for i in range(100)])
    failed, report = files.root / "failed.json", files.root / "report.json"
    failed.write_text('[{"id": "left by an earlier run"}]')
    args = [*CLI, "--config", files.config(config_dict(emulator.url)), "--data", data]
    args += ["--failed", str(failed), "--report", str(report)]
    proc = subprocess.run(args, capture_output=True, text=True, preexec_fn=limited_files(limit), timeout=60)
    run = checked(proc.returncode, proc.stdout, proc.stderr)
    assert run.code == 74, run.stderr
    last = run.stderr.splitlines()[-1]
    assert f"--failed {failed}: could not be written (File too large)" in last
    assert not failed.exists()  # no half-written file, and no earlier one to be taken for this run's
    if limit == 2_000:
        assert f"--report {report}: could not be written (File too large)" in last
        assert not report.exists()
    else:
        document = json.loads(report.read_text())
        assert (document["exit_code"], document["counts"]["invalid"]) == (74, 100)
        assert "--failed" in document["error"]
    assert people_puts(emulator) == ["1"]
    assert [p.name for p in files.root.iterdir() if p.name.endswith(".tmp")] == []


def test_a_full_disk_under_the_ledger_stops_the_run_with_every_record_accounted_for(
    emulator: Emulator, files: Files
) -> None:
    data = files.data([{"id": i, "name": "n"} for i in range(300)])
    failed, report = files.root / "failed.json", files.root / "report.json"
    args = [*CLI, "--config", files.config(config_dict(emulator.url, parallelism=1)), "--data", data]
    args += ["--state", str(files.root / "ledger"), "--failed", str(failed), "--report", str(report)]
    # Room for the empty ledger (a page per table, in the file and its WAL) and a few records.
    proc = subprocess.run(args, capture_output=True, text=True, preexec_fn=limited_files(100_000), timeout=120)
    run = checked(proc.returncode, proc.stdout, proc.stderr)
    assert run.code == 74, run.stderr
    assert run.stderr.splitlines()[-1].startswith(f"cio-sync: error: --state {files.root / 'ledger'}: the ledger")
    document = json.loads(report.read_text())
    assert problems("report.schema.json", document) == []
    counts = document["counts"]
    assert (document["exit_code"], document["stopped"]) == (74, "ledger_lost")
    assert sum(counts.values()) == 300
    assert 0 < counts["synced"] < 300
    # What did not sync is in --failed, and what synced reached the workspace.
    left = json.loads(failed.read_text())
    assert len(left) == 300 - counts["synced"]
    assert len(emulator.people()) == counts["synced"] + sum(1 for p in document["problems"] if p["outcome"] == "failed")

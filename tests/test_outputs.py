"""The files and streams for machines: --failed, --report, --log-format json, --dry-run."""

from __future__ import annotations

import base64
import fcntl
import json
import os
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cio_sync.emulator import Emulator
from cio_sync.input.schema import problems

from .conftest import (
    API_KEY,
    SITE_ID,
    Files,
    Spawn,
    assert_no_secret,
    config_dict,
    finish,
    people_puts,
    run_cli,
    run_process,
    wait_until,
)
from .hostile import answer, hostile

MIXED: list[Any] = [
    {"id": 1, "name": "ok"},
    {"id": "bad", "name": "refused"},
    "not a record",
    {"id": 2, "name": "ok", "computed_ltv": 1.25, "extra": {"kept": [1, None]}},
    {"id": "flaky", "name": "never lands"},
    {"id": 5.0},
]


def read_report(path: Path) -> dict[str, Any]:
    text = path.read_text()
    assert_no_secret(text)
    report: dict[str, Any] = json.loads(text)
    assert problems("report.schema.json", report) == []
    return report


def refuse_bad_and_flaky(emulator: Emulator) -> None:
    """MIXED's "bad" is refused for good (400); "flaky" never gets past 503."""
    emulator.add_fault(status=400, person="bad")
    emulator.add_fault(status=503, person="flaky", times=None)


def test_failed_file_holds_exactly_the_records_not_synced(emulator: Emulator, files: Files) -> None:
    refuse_bad_and_flaky(emulator)
    failed = files.root / "failed.json"
    args = ["--config", files.config(config_dict(emulator.url)), "--data", files.data(MIXED)]
    run = run_cli([*args, "--failed", str(failed), "--retries", "1"])
    assert run.code == 1
    written = json.loads(failed.read_text())
    # Written as outcomes arrive (memory stays flat), so only each person's order is kept.
    assert sorted(written, key=json.dumps) == sorted([MIXED[1], MIXED[2], MIXED[4], MIXED[5]], key=json.dumps)
    assert not list(files.root.glob(".failed.json.*"))


def test_the_failed_file_re_fed_syncs_exactly_those(emulator: Emulator, files: Files) -> None:
    emulator.add_fault(status=503, person="flaky", times=4)
    failed = files.root / "failed.json"
    config = files.config(config_dict(emulator.url))
    data = [{"id": i, "name": f"n{i}"} for i in range(10)] + [{"id": "flaky", "name": "late"}]
    first = run_cli(["--config", config, "--data", files.data(data), "--failed", str(failed), "--retries", "1"])
    assert first.code == 1
    assert json.loads(failed.read_text()) == [{"id": "flaky", "name": "late"}]
    before = len(people_puts(emulator))
    again = files.root / "again.json"
    second = run_cli(["--config", config, "--data", str(failed), "--failed", str(again), "--retries", "3"])
    assert second.code == 0, second.stderr
    assert people_puts(emulator)[before:] == ["flaky", "flaky", "flaky"]
    assert emulator.people()["flaky"] == {"name": "late"}
    assert json.loads(again.read_text()) == []


def test_failed_file_keeps_ndjson_for_ndjson_input(emulator: Emulator, files: Files) -> None:
    data = files.data('{"id": 1}\n{"nope": 1}\n"x"\n', name="d.ndjson")
    failed = files.root / "failed.ndjson"
    run = run_cli(["--config", files.config(config_dict(emulator.url)), "--data", data, "--failed", str(failed)])
    assert run.code == 1
    assert failed.read_text().splitlines() == ['{"nope": 1}', '"x"']


def test_outputs_through_a_link_or_into_a_pipe_leave_the_link_and_the_pipe(emulator: Emulator, files: Files) -> None:
    # Written beside the file and renamed over it, an output would replace a link with a file,
    # and a pipe or a device (/dev/stdout, /dev/full) too: the link's target is written instead,
    # and a pipe or a device is written into.
    target, link, pipe = files.root / "target.json", files.root / "link.json", files.root / "pipe"
    link.symlink_to(target)
    os.mkfifo(pipe)
    with ThreadPoolExecutor(1) as pool:
        # Opened without waiting, as the run opens its end at once; read once the run has written.
        read_end = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)
        args = ["--config", files.config(config_dict(emulator.url)), "--data", files.data(MIXED)]
        run = run_cli([*args, "--report", str(link), "--failed", str(pipe)])
        os.set_blocking(read_end, True)
        received = pool.submit(lambda: b"".join(iter(lambda: os.read(read_end, 65536), b""))).result(timeout=10)
        os.close(read_end)
    assert run.code == 1, run.stderr
    assert link.is_symlink() and json.loads(target.read_text())["counts"]["synced"] == 4
    assert pipe.is_fifo() and json.loads(received) == ["not a record", {"id": 5.0}]


def test_a_pipe_no_one_reads_is_refused_before_sending(emulator: Emulator, files: Files) -> None:
    pipe = files.root / "pipe"
    os.mkfifo(pipe)
    args = ["--config", files.config(config_dict(emulator.url)), "--data", files.data(MIXED)]
    run = run_cli([*args, "--report", str(pipe)])
    assert run.code == 2
    assert f"--report {pipe}: cannot write there" in run.stderr
    assert emulator.requests() == []
    assert pipe.is_fifo()


def test_an_unwritable_failed_path_is_refused_before_sending(emulator: Emulator, files: Files) -> None:
    args = ["--config", files.config(config_dict(emulator.url)), "--data", files.data(MIXED)]
    run = run_cli([*args, "--failed", str(files.root / "missing-dir" / "f.json")])
    assert run.code == 2
    assert "--failed" in run.stderr and "cannot write there" in run.stderr
    assert emulator.requests() == []
    run = run_cli([*args, "--report", str(files.root)])
    assert run.code == 2
    assert "is a directory" in run.stderr
    run = run_cli([*args, "--failed", "-"])
    assert run.code == 2
    assert "--failed needs a file path" in run.stderr
    assert emulator.requests() == []


def test_report_counts_add_up_and_name_every_problem(emulator: Emulator, files: Files) -> None:
    refuse_bad_and_flaky(emulator)
    report_path = files.root / "report.json"
    args = ["--config", files.config(config_dict(emulator.url)), "--data", files.data(MIXED)]
    run = run_cli([*args, "--report", str(report_path), "--retries", "2"])
    assert run.code == 1
    report = read_report(report_path)
    assert report["exit_code"] == 1
    assert report["total"] == len(MIXED) == sum(report["counts"].values())
    assert report["counts"] == {"synced": 2, "unchanged": 0, "failed": 2, "invalid": 2, "not_attempted": 0}
    # Every answer as received: the check's 200, two records' 200, the 400, three 503s.
    assert report["http_statuses"] == {"200": 3, "400": 1, "503": 3}
    assert report["retries"] == 2
    assert report["requests"] == 7
    by_index = {p["index"]: p for p in report["problems"]}
    assert sorted(by_index) == [1, 2, 4, 5]
    assert by_index[1] == {
        "index": 1,
        "id": "bad",
        "outcome": "failed",
        "status": 400,
        "reason": "HTTP 400: injected fault",
    }
    assert by_index[2]["outcome"] == "invalid"
    assert by_index[4]["reason"] == "HTTP 503 after 3 attempts: injected fault"


def test_report_to_stdout_keeps_stdout_machine_readable(emulator: Emulator, files: Files) -> None:
    args = ["--config", files.config(config_dict(emulator.url)), "--data", files.data(MIXED[:1])]
    run = run_cli([*args, "--report", "-"])
    assert run.code == 0
    report = json.loads(run.stdout)
    assert report["counts"]["synced"] == 1
    assert report["problems"] == []


def test_json_log_lines(emulator: Emulator, files: Files) -> None:
    args = ["--config", files.config(config_dict(emulator.url)), "--data", files.data(MIXED[:4])]
    run = run_cli([*args, "--log-format", "json"])
    assert run.code == 1
    events = [json.loads(line) for line in run.stderr.splitlines()]
    assert [e["event"] for e in events] == ["start", "record", "causes", "summary"]
    assert events[0]["records"] == 4
    assert events[1] == {**events[1], "index": 2, "outcome": "invalid", "id": None}
    assert [(c["outcome"], c["count"], c["first_index"]) for c in events[2]["causes"]] == [("invalid", 1, 2)]
    assert events[3]["synced"] == 3 and events[3]["invalid"] == 1 and events[3]["exit_code"] == 1
    assert all(e["time"].endswith("Z") for e in events)


@pytest.mark.parametrize("dry_run", [False, True])
def test_quiet_json_logs_write_nothing_unless_the_run_went_wrong(
    emulator: Emulator, files: Files, dry_run: bool
) -> None:
    config = files.config(config_dict(emulator.url))
    extra = ["--quiet", "--log-format", "json", *(["--dry-run"] if dry_run else [])]
    run = run_cli(["--config", config, "--data", files.data(MIXED[:2]), *extra])
    assert (run.code, run.stderr) == (0, "")
    run = run_cli(["--config", config, "--data", files.data(MIXED[:4]), *extra])
    assert run.code == 1
    events = [json.loads(line) for line in run.stderr.splitlines()]
    assert [e["event"] for e in events] == ["record", "causes", "summary"]
    assert events[0] == {**events[0], "index": 2, "outcome": "invalid", "id": None}
    assert events[2]["invalid"] == 1 and events[2]["exit_code"] == 1


def test_json_log_errors_are_json_too(emulator: Emulator, files: Files) -> None:
    run = run_cli(["--config", files.config("{"), "--data", files.data([]), "--log-format", "json"])
    assert run.code == 2
    (event,) = [json.loads(line) for line in run.stderr.splitlines()]
    assert event["event"] == "error" and event["exit_code"] == 2
    assert "not valid JSON" in event["message"]


def test_dry_run_sends_nothing_and_shows_requests(emulator: Emulator, files: Files) -> None:
    data = [{"id": "a/b", "name": "Ada"}, {"id": True}, {"id": 2}, {"id": 3}, {"id": 4}]
    report_path = files.root / "report.json"
    args = ["--config", files.config(config_dict(emulator.url)), "--data", files.data(data)]
    run = run_cli([*args, "--dry-run", "--report", str(report_path)])
    assert run.code == 1
    assert emulator.requests() == []
    assert f"would send: PUT {emulator.url}/api/v1/customers/a%2Fb" in run.stderr
    assert '{"name":"Ada"}' in run.stderr
    assert "Authorization: Basic <site id and API key, redacted>" in run.stderr
    assert run.stderr.count("would send:") == 3
    assert "record 1: invalid" in run.stderr
    assert "dry run: 5 records: 4 valid, 1 invalid; 4 people to write; nothing sent" in run.stderr
    report = read_report(report_path)
    assert report["dry_run"] is True
    assert report["counts"] == {"valid": 4, "invalid": 1, "held_back": 0, "people": 4, "to_send": 4}


def test_dry_run_exit_codes_follow_the_inputs(emulator: Emulator, files: Files) -> None:
    config = files.config(config_dict(emulator.url))
    assert run_cli(["--config", config, "--data", files.data([{"id": 1}]), "--dry-run"]).code == 0
    assert run_cli(["--config", config, "--data", files.data("[1,"), "--dry-run"]).code == 2
    assert emulator.requests() == []


@pytest.mark.parametrize("fmt", ["ndjson", "jsonl"])
def test_ndjson_by_suffix(emulator: Emulator, files: Files, fmt: str) -> None:
    data = files.data('{"id": 1, "name": "a"}\n\n{"id": 2, "name": "b"}\r\n', name=f"d.{fmt}")
    run = run_cli(["--config", files.config(config_dict(emulator.url)), "--data", data])
    assert run.code == 0, run.stderr
    assert emulator.people() == {"1": {"name": "a"}, "2": {"name": "b"}}


def test_ndjson_from_stdin(emulator: Emulator, files: Files) -> None:
    args = ["--config", files.config(config_dict(emulator.url)), "--data", "-", "--format", "ndjson"]
    run = run_cli(args, input='{"id": "x", "name": "s"}\n')
    assert run.code == 0, run.stderr
    assert emulator.people() == {"x": {"name": "s"}}


def test_a_broken_ndjson_line_is_an_invalid_record(emulator: Emulator, files: Files) -> None:
    # A line break ends every NDJSON record: the line is known, and so are the others.
    data = files.data('{"id": 1}\n{"id": 2\n{"id": 3}\n', name="d.ndjson")
    run = run_cli(["--config", files.config(config_dict(emulator.url)), "--data", data])
    assert run.code == 1
    assert "record 1: invalid: line 2 is not valid JSON: Expecting ',' delimiter at byte offset 18" in run.stderr
    assert sorted(emulator.people()) == ["1", "3"]


def test_the_key_is_in_no_output_file(emulator: Emulator, files: Files) -> None:
    emulator.add_fault(status=401, times=None, endpoint="customers")
    report_path, failed = files.root / "r.json", files.root / "f.json"
    args = ["--config", files.config(config_dict(emulator.url)), "--data", files.data(MIXED)]
    run = run_cli([*args, "--report", str(report_path), "--failed", str(failed), "--log-format", "json"])
    assert run.code == 3
    assert API_KEY not in failed.read_text()
    report = read_report(report_path)
    assert report["stopped"] == "credentials"
    assert sum(report["counts"].values()) == len(MIXED)


def test_json_progress_events(emulator: Emulator, files: Files, monkeypatch: pytest.MonkeyPatch) -> None:
    import cio_sync.outputs.console

    monkeypatch.setattr(cio_sync.outputs.console, "JSON_PROGRESS_INTERVAL", 0.0)
    args = ["--config", files.config(config_dict(emulator.url)), "--data", files.data(MIXED[:4])]
    run = run_cli([*args, "--log-format", "json"])
    progress = [e for e in map(json.loads, run.stderr.splitlines()) if e["event"] == "progress"]
    assert [e["done"] for e in progress] == [1, 2, 3, 4]
    assert progress[-1] == {**progress[-1], "total": 4, "invalid": 1, "failed": 0}


def test_a_run_that_cannot_go_on_still_replaces_the_report(emulator: Emulator, files: Files) -> None:
    report_path = files.root / "report.json"
    report_path.write_text('{"stale": true}')
    args = ["--config", files.config(config_dict(emulator.url, apiKey="wrong")), "--data", files.data(MIXED)]
    run = run_cli([*args, "--report", str(report_path)])
    assert run.code == 3
    report = read_report(report_path)
    assert report["exit_code"] == 3
    assert "refused the credentials" in report["error"]
    assert report["problems"] == []
    assert "stale" not in report


def test_a_refused_run_leaves_the_outputs_as_they_were(emulator: Emulator, files: Files) -> None:
    # They may be the files of the run that made this one be refused.
    report, failed = files.root / "report.json", files.root / "failed.json"
    report.write_text('{"stale": true}')
    failed.write_text('[{"id": "left by an earlier run"}]')
    outputs = ["--report", str(report), "--failed", str(failed)]
    data = files.data(MIXED)
    refusals = {
        "bad configuration": [
            "--config",
            files.config(config_dict(emulator.url, parallelism=0), "bad.json"),
            "--data",
            data,
        ],
        "bad data file": [
            "--config",
            files.config(config_dict(emulator.url)),
            "--data",
            files.data("[1,", "broken.json"),
        ],
        "full without state": ["--config", files.config(config_dict(emulator.url)), "--data", data, "--full"],
    }
    for case, args in refusals.items():
        run = run_cli([*args, *outputs])
        assert run.code == 2, case
        assert (report.read_text(), failed.read_text()) == ('{"stale": true}', '[{"id": "left by an earlier run"}]')
        assert "removed" not in run.stderr
    assert sorted(p.name for p in files.root.iterdir() if p.name.startswith(".")) == []
    assert emulator.requests() == []


def spellings(root: Path, name: str) -> dict[str, str]:
    """Other names of the file ``root/name``: a different path, a symbolic link, a hard link."""
    (root / "sub").mkdir(exist_ok=True)
    (root / f"link-{name}").symlink_to(root / name)
    if (root / name).exists():
        (root / f"hard-{name}").hardlink_to(root / name)
    return {
        "plain": str(root / name),
        "dotted": str(root / "sub" / ".." / name),
        "symlink": str(root / f"link-{name}"),
        "hardlink": str(root / f"hard-{name}"),
    }


@pytest.mark.parametrize(
    ("option", "target", "spelling"),
    [
        ("--failed", "data.json", "plain"),
        ("--report", "data.json", "hardlink"),
        ("--report", "configuration.json", "dotted"),
        ("--failed", "configuration.json", "symlink"),
        ("--failed", "state.db", "symlink"),
        ("--report", "state.db", "dotted"),
    ],
)
def test_an_output_naming_an_input_is_refused_before_sending(
    emulator: Emulator, files: Files, option: str, target: str, spelling: str
) -> None:
    config = files.config(config_dict(emulator.url))
    data = files.data(MIXED)
    state = files.root / "state.db"
    assert run_cli(["--config", config, "--data", data, "--state", str(state)]).code == 1
    sent = len(emulator.requests())
    before = (files.root / target).read_bytes()
    path = spellings(files.root, target)[spelling]
    run = run_cli(["--config", config, "--data", data, "--state", str(state), option, path])
    assert run.code == 2
    assert f"cio-sync: error: {option} {path}: is also the " in run.stderr
    assert len(emulator.requests()) == sent
    assert (files.root / target).read_bytes() == before


def test_report_and_failed_naming_one_file_are_refused(emulator: Emulator, files: Files) -> None:
    args = ["--config", files.config(config_dict(emulator.url)), "--data", files.data(MIXED)]
    out = files.root / "out.json"
    run = run_cli([*args, "--failed", str(out), "--report", str(files.root / "sub" / ".." / "out.json")])
    assert run.code == 2
    assert "is also the --failed file" in run.stderr
    assert emulator.requests() == []
    assert not out.exists()


@pytest.mark.parametrize("case", ["credentials refused", "unreachable"])
def test_a_run_that_cannot_go_on_removes_an_earlier_failed_file(emulator: Emulator, files: Files, case: str) -> None:
    failed = files.root / "failed.json"
    failed.write_text('[{"id": "left by an earlier run"}]')
    cases: dict[str, dict[str, Any]] = {
        "credentials refused": {"apiKey": "wrong"},
        "unreachable": {"baseUrl": "http://127.0.0.1:9"},
    }
    overrides = cases[case]
    args = ["--config", files.config(config_dict(emulator.url, **overrides)), "--data", files.data(MIXED)]
    run = run_cli([*args, "--failed", str(failed), "--retries", "0"])
    assert run.code == {"credentials refused": 3, "unreachable": 4}[case]
    assert not failed.exists()
    assert f"removed {failed}: it was left by an earlier run, and this run could not finish" in run.stderr


def test_numbers_go_to_the_failed_file_as_they_were_read(emulator: Emulator, files: Files) -> None:
    failed = files.root / "failed.json"
    text = '[{"id": 1, "computed_ltv": 1e400, "precise": 0.1000000000000000000001, "n": -0.0, "d": 1.10}]'
    args = ["--config", files.config(config_dict(emulator.url)), "--data", files.data(text)]
    run = run_cli([*args, "--failed", str(failed)])
    assert run.code == 1
    assert "too large to send as JSON" in run.stderr
    written = failed.read_text()
    assert '"computed_ltv": 1E+400' in written
    assert json.loads(written, parse_float=Decimal) == json.loads(text, parse_float=Decimal)
    assert [str(v) for v in json.loads(written, parse_float=Decimal)[0].values()] == [
        "1",
        "1E+400",
        "0.1000000000000000000001",
        "-0.0",
        "1.10",
    ]


def test_a_data_file_changed_mid_run_is_counted_and_leaves_no_failed_file(
    emulator: Emulator, files: Files, spawn_cli: Spawn
) -> None:
    failed, report = files.root / "failed.json", files.root / "report.json"
    failed.write_text('[{"id": "left by an earlier run"}]')
    # Long unmapped notes: a block holds a hundred people, so the change is met a block on, soon.
    data = files.data([{"id": i, "name": "x" * 50, "note": "n" * 600} for i in range(2_000)])
    emulator.latency = 0.02  # 10 s for them all at 4 in flight: the change comes long before
    args = ["--config", files.config(config_dict(emulator.url)), "--data", data]
    proc = spawn_cli([*args, "--failed", str(failed), "--report", str(report)])
    wait_until(lambda: len(emulator.people()) >= 50)
    with open(data, "r+b") as f:
        f.truncate(20)
    run = finish(proc, timeout=60)
    assert run.code == 1, run.stderr
    assert "changed while being read" in run.stderr
    written = read_report(report)
    synced = sum(1 for r in emulator.requests() if r.method == "PUT" and r.status == 200)
    assert written["counts"]["synced"] == synced >= 50
    assert written["total"] == sum(written["counts"].values()) >= synced
    assert written["stopped"] == "data_file_changed"
    assert "changed while being read" in written["error"]
    assert not failed.exists()


@pytest.mark.parametrize("transport", ["v1", "batch"])
def test_a_later_record_never_overtakes_an_earlier_failed_one(emulator: Emulator, files: Files, transport: str) -> None:
    failed, again = files.root / "failed.json", files.root / "again.json"
    data = [
        {"id": "Y", "name": "free"},
        {"id": "Z", "name": "z"},
        {"id": "Y", "name": "pro"},
        {"id": "Y", "computed_ltv": 7},
    ]
    # Y's first record fails past its resends; nothing else is refused.
    if transport == "batch":
        emulator.add_fault(status=503, endpoint="batch", times=2)
    else:
        emulator.add_fault(status=503, person="Y", times=2)
    config = files.config(config_dict(emulator.url, parallelism=1, transport=transport))
    run = run_cli(["--config", config, "--data", files.data(data), "--failed", str(failed), "--retries", "1"])
    assert run.code == 1
    assert "Y" not in emulator.people()
    # Y's records merged into one write, which failed: all of them, in file order (on batch,
    # after Z's, which went in the same batch).
    expected = [data[0], data[2], data[3]] if transport == "v1" else [data[1], data[0], data[2], data[3]]
    assert json.loads(failed.read_text()) == expected
    fed = run_cli(["--config", config, "--data", str(failed), "--failed", str(again)])
    assert fed.code == 0, fed.stderr
    assert emulator.people()["Y"] == {"name": "pro", "ltv": 7}


def test_a_refused_report_path_leaves_an_earlier_failed_file(emulator: Emulator, files: Files) -> None:
    failed = files.root / "failed.json"
    failed.write_text('[{"id": "left by an earlier run"}]')
    data = files.data(MIXED)
    run = run_cli(
        ["--config", files.config(config_dict(emulator.url)), "--data", data, "--failed", str(failed), "--report", data]
    )
    assert run.code == 2
    assert "--report" in run.stderr and "is also the data file" in run.stderr
    assert failed.read_text() == '[{"id": "left by an earlier run"}]'
    assert json.loads(Path(data).read_text()) == MIXED
    assert emulator.requests() == []


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_output_files_get_the_mode_the_umask_allows(emulator: Emulator, files: Files, umask: int, mode: int) -> None:
    refuse_bad_and_flaky(emulator)
    failed, report = files.root / "failed.json", files.root / "report.json"
    args = ["--config", files.config(config_dict(emulator.url)), "--data", files.data(MIXED), "--retries", "0"]
    previous = os.umask(umask)
    try:
        run = run_cli([*args, "--failed", str(failed), "--report", str(report)])
    finally:
        os.umask(previous)
    assert run.code == 1
    assert (failed.stat().st_mode & 0o777, report.stat().st_mode & 0o777) == (mode, mode)


def test_a_replaced_output_file_keeps_its_mode(emulator: Emulator, files: Files) -> None:
    report = files.root / "report.json"
    report.write_text("{}")
    report.chmod(0o600)
    args = ["--config", files.config(config_dict(emulator.url)), "--data", files.data([{"id": 1}])]
    previous = os.umask(0o022)
    try:
        run = run_cli([*args, "--report", str(report)])
    finally:
        os.umask(previous)
    assert run.code == 0
    assert read_report(report)["exit_code"] == 0
    assert report.stat().st_mode & 0o777 == 0o600


def leftovers(root: Path) -> list[str]:
    """The hidden files in ``root``: temporary files of outputs, and the test's own stand-ins for them."""
    return sorted(p.name for p in root.iterdir() if p.name.startswith("."))


def test_a_run_refused_at_the_ledger_lock_touches_no_output(emulator: Emulator, files: Files) -> None:
    # The run holding the ledger may be writing these very files: they are its, not the refused run's.
    state, failed, report = files.root / "state.db", files.root / "failed.json", files.root / "report.json"
    args = ["--config", files.config(config_dict(emulator.url)), "--data", files.data(MIXED), "--state", str(state)]
    outputs = ["--failed", str(failed), "--report", str(report)]
    assert run_cli([*args, *outputs]).code == 1
    before = {path: path.read_bytes() for path in (failed, report, state)}
    dead = files.root / ".failed.json.0123abcd.tmp"  # as a killed run leaves it
    dead.write_text("[")
    sent = len(emulator.requests())
    holder = os.open(state, os.O_RDWR)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running cio-sync holds it
        run = run_cli([*args, *outputs])
    finally:
        os.close(holder)
    assert run.code == 2
    assert f"cio-sync: error: --state {state}: another cio-sync run is using this ledger" in run.stderr
    assert {path: path.read_bytes() for path in before} == before
    assert "removed" not in run.stderr
    assert leftovers(files.root) == [dead.name]
    assert len(emulator.requests()) == sent


def test_a_run_that_goes_ahead_removes_the_temporary_files_earlier_runs_left(emulator: Emulator, files: Files) -> None:
    dead = [".failed.json.0123abcd.tmp", ".report.json.89abcdef.tmp"]
    others = [".failed.json.0123abcd.tmp.keep", ".failed.json.xyz.tmp", ".other.json.01234567.tmp", ".failed.json"]
    live = ".report.json.fedcba98.tmp"  # another run is writing it: it holds the lock
    for name in [*dead, *others, live]:
        (files.root / name).write_text("{")
    holder = os.open(files.root / live, os.O_RDONLY)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        args = ["--config", files.config(config_dict(emulator.url)), "--data", files.data(MIXED[:1])]
        run = run_cli([*args, "--failed", str(files.root / "failed.json"), "--report", str(files.root / "report.json")])
    finally:
        os.close(holder)
    assert run.code == 0, run.stderr
    assert leftovers(files.root) == sorted([*others, live])
    assert read_report(files.root / "report.json")["exit_code"] == 0


def test_a_report_on_standard_output_is_utf8_whatever_its_encoding(emulator: Emulator, files: Files) -> None:
    person = "Zoë-日本-😀"
    emulator.add_fault(status=400, person=person)
    args = ["--config", files.config(config_dict(emulator.url)), "--data", files.data([{"id": person}])]
    run = run_process([*args, "--report", "-"], env={"PYTHONIOENCODING": "ascii"})
    assert run.code == 1, run.stderr
    report = json.loads(run.stdout)
    assert [p["id"] for p in report["problems"]] == [person]
    assert report["exit_code"] == 1


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_credentials_a_server_quotes_reach_no_output(files: Files, log_format: str) -> None:
    basic = base64.b64encode(f"{SITE_ID}:{API_KEY}".encode()).decode()
    body = json.dumps({"meta": {"error": f"bad request for {SITE_ID} with key {API_KEY} (Basic {basic})"}}).encode()
    report = files.root / "report.json"
    with hostile(answer(b"400 Bad Request", body)) as server:
        args = ["--config", files.config(config_dict(server.url)), "--data", files.data([{"id": 1}])]
        run = run_cli([*args, "--report", str(report), "--log-format", log_format])
    assert run.code == 1, run.stderr
    # The workspace's words are still shown, with every credential masked.
    assert "bad request for [redacted] with key [redacted] (Basic [redacted])" in run.stderr
    assert SITE_ID not in run.stderr
    text = report.read_text()
    assert SITE_ID not in text
    assert read_report(report)["problems"][0]["reason"] == (
        "HTTP 400: bad request for [redacted] with key [redacted] (Basic [redacted])"
    )


def test_every_console_masks_the_credentials_in_error_messages_too() -> None:
    import io

    from cio_sync.errors import ExitCode
    from cio_sync.outputs.console import JsonConsole, TextConsole
    from cio_sync.redact import Redactor

    for console_type in (TextConsole, JsonConsole):
        stream = io.StringIO()
        console = console_type(stream=stream)
        console.redact = Redactor((SITE_ID, API_KEY))
        console.error(f"the proxy said: {API_KEY}", ExitCode.INTERNAL_ERROR)
        console.note(f"site {SITE_ID}")
        assert_no_secret(stream.getvalue())
        assert SITE_ID not in stream.getvalue()
        assert stream.getvalue().count("[redacted]") == 2

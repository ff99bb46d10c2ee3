"""``cio-sync verify`` against the emulator's App API: real sockets, the command run in-process
(and once as its own process, as a user starts it).

Where waiting is the subject (pacing at 10 a second, a 429 storm) a fake clock drives it.
"""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cio_sync.cli.verify import VerifyOptions, run
from cio_sync.cli.verify import app as verify_app
from cio_sync.emulator import Emulator
from cio_sync.emulator.rules import path_identifier
from cio_sync.emulator.workspace import edit
from cio_sync.errors import ExitCode
from cio_sync.input.config import config_from_dict
from cio_sync.readback import Options, ReadStatus, Verdict, verify
from cio_sync.readback import reader as reader_module
from cio_sync.transport.client import HttpSettings

from .conftest import API_KEY, SITE_ID, Files, Run, checked, cli_env, run_cli
from .fakeclock import FakeClock

APP_KEY = "app-SECRET-5e0c7a"
VERIFY = (sys.executable, "-m", "cio_sync", "verify")
runner = CliRunner()


def no_secret(run: Run) -> Run:
    """``run``, once shown to print neither key."""
    for text in (run.stdout, run.stderr):
        assert APP_KEY not in text and API_KEY not in text
    return run


def run_verify(args: Sequence[str], env: dict[str, str] | None = None) -> Run:
    """``cio-sync verify`` in-process, checked for secrets and tracebacks as :func:`run_cli` is."""
    result = runner.invoke(verify_app, list(args), env=env, catch_exceptions=False)
    return no_secret(checked(result.exit_code, result.stdout, result.stderr))


def run_verify_process(args: Sequence[str]) -> Run:
    """``python -m cio_sync verify`` as its own process, exactly as a user starts it."""
    proc = subprocess.run([*VERIFY, *args], capture_output=True, env=cli_env(), timeout=120)
    return no_secret(checked(proc.returncode, proc.stdout.decode(), proc.stderr.decode()))


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(SITE_ID, API_KEY, app_api_key=APP_KEY) as emulator:
        yield emulator


def document(url: str, **overrides: Any) -> dict[str, Any]:
    """A configuration for the emulator at ``url``: Track and App API keys, both URLs."""
    doc: dict[str, Any] = {
        "parallelism": 4,
        "userId": "id",
        "mappings": [{"from": "name", "to": "name"}, {"from": "plan", "to": "plan"}, {"from": "v", "to": "v"}],
        "siteId": SITE_ID,
        "apiKey": API_KEY,
        "appApiKey": APP_KEY,
        "baseUrl": url,
        "appBaseUrl": url,
    }
    doc.update(overrides)
    return {k: v for k, v in doc.items() if v is not None}


def people(n: int) -> list[dict[str, Any]]:
    return [{"id": str(i), "name": f"person {i}", "plan": "pro", "v": i} for i in range(n)]


def edit_person(emu: Emulator, person: str, attributes: dict[str, Any]) -> None:
    """Change a person's attributes in the emulator as an edit in the workspace's UI would."""
    edit(emu.workspace, path_identifier(person, emu.choices), attributes)


def app_requests(emu: Emulator) -> list[Any]:
    return [r for r in emu.requests() if r.target.startswith("/v1/")]


def sync_file(files: Files, config: str, data: str) -> None:
    run = run_cli(["--config", config, "--data", data])
    assert run.code == 0, run.stderr


# -- the command, end to end ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "invalid",
    [b'{"id": "1", "name": "b\xff"}', b'{"id": "1", "v": "not a number"}'],
    ids=["unreadable", "cannot be cast"],
)
def test_what_a_sync_holds_back_behind_an_invalid_record_is_not_expected(
    emu: Emulator, files: Files, invalid: bytes
) -> None:
    # A sync holds back a person's records after their invalid one (they would overtake it once
    # fixed and fed back): the workspace holds "a", and verify must expect just that.
    mappings = [{"from": "name", "to": "name"}, {"from": "v", "to": "v", "as": "integer"}]
    config = files.config(document(emu.url, mappings=mappings))
    lines = [b'{"id": "1", "name": "a"}', invalid, b'{"id": "1", "name": "c"}', b'{"id": "2", "name": "z"}']
    data = files.data(b"\n".join(lines) + b"\n", name="data.ndjson")
    assert run_cli(["--config", config, "--data", data]).code == 1
    assert emu.people() == {"1": {"name": "a"}, "2": {"name": "z"}}
    failed = files.root / "failed.ndjson"
    run = run_verify(["--config", config, "--data", data, "--failed", str(failed)])
    assert run.code == 0, run.stderr
    assert "2 people: 2 hold the file, 0 differ, 0 missing" in run.stderr
    # Changed in the workspace: verify's --failed gives what comes before the invalid record only.
    edit_person(emu, "1", {"name": "edited"})
    again = run_verify(["--config", config, "--data", data, "--failed", str(failed)])
    assert again.code == 1, again.stderr
    assert failed.read_bytes() == lines[0] + b"\n"


def test_a_faithful_workspace_verifies_clean_whatever_the_values(emu: Emulator, files: Files) -> None:
    values: list[object] = [
        7,
        1.0,
        1e2,
        12.5,
        -0.001,
        10**20,
        True,
        False,
        None,
        "",
        "007",
        "ü 😀",
        [1, "x"],
        {"b": 1, "a": [True, None]},
    ]
    records = [{"id": f"p{i}", "name": "n", "v": value} for i, value in enumerate(values)]
    records.append({"id": "p0", "plan": "second record of p0"})
    config, data = files.config(document(emu.url)), files.data(records)
    sync_file(files, config, data)
    run = run_verify(["--config", config, "--data", data])
    assert run.code == 0, run.stderr
    assert f"{len(values)} people: {len(values)} hold the file, 0 differ, 0 missing" in run.stderr


def test_the_round_trip_finds_differences_feeds_them_back_and_verifies_clean(emu: Emulator, files: Files) -> None:
    records = [*people(12), {"id": "3", "plan": "team"}, {"id": "nobody", "name": "never synced"}]
    config = files.config(document(emu.url))
    synced = files.data(records[:-1], "synced.json")
    data = files.data(records)
    sync_file(files, config, synced)
    edit_person(emu, "3", {"plan": "free"})
    edit_person(emu, "5", {"v": "05", "name": None})
    failed, report = str(files.root / "fix.json"), str(files.root / "report.json")

    first = run_verify(["--config", config, "--data", data, "--failed", failed, "--report", report])
    assert first.code == 1, first.stderr
    assert "13 people: 10 hold the file, 2 differ, 1 missing" in first.stderr
    assert 'cio-sync:   3: "plan" is "team" in the file, "free" in the workspace' in first.stderr
    assert 'cio-sync:   5: "name" is "person 5" in the file, nothing in the workspace' in first.stderr
    assert 'cio-sync:   5: "v" is 5 in the file, "05" in the workspace' in first.stderr
    assert "cio-sync:   nobody: missing from the workspace" in first.stderr
    # Every record of each person who differs or is missing, in file order, as the data file had them.
    with open(failed, encoding="utf-8") as f:
        assert json.load(f) == [records[3], records[5], records[12], records[13]]
    with open(report, encoding="utf-8") as f:
        found = json.load(f)
    assert found["summary"]["differing"] == 2 and found["summary"]["missing"] == 1
    assert found["summary"]["exitCode"] == 1
    assert {"attribute": "plan", "file": "team", "workspace": "free"} in found["people"][0]["differences"]

    sync_file(files, config, failed)
    again = run_verify(["--config", config, "--data", data])
    assert again.code == 0, again.stderr
    assert "13 people: 13 hold the file, 0 differ, 0 missing" in again.stderr


def test_a_lone_surrogate_the_workspace_holds_is_written_escaped(files: Files) -> None:
    # A server may answer one (escaped in its JSON); UTF-8 cannot hold it, so the report escapes it.
    from cio_sync.readback.expected import Verdict
    from cio_sync.readback.report import ReportFile
    from cio_sync.readback.verify import Difference, VerifyResult

    path = files.root / "report.json"
    report = ReportFile(str(path))
    report.add("1", Verdict.DIFFERS, [Difference("1", "plan", '"pro"', "\ud800")])
    report.commit(VerifyResult(differing=1), 1)
    (person,) = json.loads(path.read_text(encoding="utf-8"))["people"]
    assert person["differences"] == [{"attribute": "plan", "file": "pro", "workspace": "\ud800"}]


def test_a_mapping_to_timestamp_is_not_compared(emu: Emulator, files: Files) -> None:
    # _timestamp orders writes; the workspace keeps no attribute by that name.
    mappings = [{"from": "name", "to": "name"}, {"from": "t", "to": "_timestamp", "as": "timestamp"}]
    config = files.config(document(emu.url, mappings=mappings))
    data = files.data([{"id": "1", "name": "Ada", "t": 1_700_000_000}])
    sync_file(files, config, data)
    run = run_verify(["--config", config, "--data", data])
    assert run.code == 0, run.stderr
    assert "1 person: 1 holds the file, 0 differ, 0 missing" in run.stderr


@pytest.mark.parametrize("suffix", [".ndjson", ".csv"])
def test_failed_keeps_the_data_files_format(emu: Emulator, files: Files, suffix: str) -> None:
    records = people(4)
    if suffix == ".csv":
        text = "id,name,plan,v\n" + "".join(f"{r['id']},{r['name']},{r['plan']},{r['v']}\n" for r in records)
    else:
        text = "".join(json.dumps(r) + "\n" for r in records)
    config, data = files.config(document(emu.url)), files.data(text, "data" + suffix)
    sync_file(files, config, data)
    edit_person(emu, "2", {"plan": "free"})
    failed = str(files.root / ("fix" + suffix))
    run = run_verify(["--config", config, "--data", data, "--failed", failed])
    assert run.code == 1, run.stderr
    with open(failed, encoding="utf-8") as f:
        written = f.read()
    assert written.splitlines()[-1] == text.splitlines()[-2]  # person 2's record, as the file wrote it
    sync_file(files, config, failed)
    assert run_verify(["--config", config, "--data", data]).code == 0


def test_no_key_exits_2_naming_both_ways_before_any_request(emu: Emulator, files: Files) -> None:
    config, data = files.config(document(emu.url, appApiKey=None)), files.data(people(3))
    run = run_verify(["--config", config, "--data", data])
    assert run.code == 2
    assert '"appApiKey"' in run.stderr and "CIO_APP_API_KEY" in run.stderr
    assert emu.stats()["requests"] == 0
    # The environment variable gives one too, and wins over the configuration.
    assert run_verify(["--config", config, "--data", data], env={"CIO_APP_API_KEY": APP_KEY}).code == 1


def test_a_refused_key_exits_3_and_is_never_printed(emu: Emulator, files: Files) -> None:
    config, data = files.config(document(emu.url, appApiKey="app-wrong-key")), files.data(people(150))
    run = run_verify(["--config", config, "--data", data])
    assert run.code == 3, run.stderr
    assert "the App API refused the key (HTTP 401)" in run.stderr
    assert "app-wrong-key" not in run.stderr + run.stdout
    assert "not read back" in run.stderr


def test_an_unreachable_app_api_exits_4(files: Files) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    config, data = files.config(document(closed)), files.data(people(3))
    run = run_verify(["--config", config, "--data", data, "--retries", "0"])
    assert run.code == 4, run.stderr
    assert "cannot reach the App API" in run.stderr


def test_a_request_the_app_api_refuses_exits_2(files: Files) -> None:
    # The workspace does not identify people by email: id_type=email is answered 400.
    from cio_sync.emulator import Choices

    with Emulator(SITE_ID, API_KEY, app_api_key=APP_KEY, choices=Choices(email_identifier=False)) as emu:
        config = files.config(document(emu.url, idType="email", transport="batch"))
        run = run_verify(["--config", config, "--data", files.data([{"id": "a@example.com", "name": "A"}])])
    assert run.code == 2, run.stderr
    assert "email is not enabled as an identifier" in run.stderr


def test_a_sample_with_a_seed_is_repeatable(emu: Emulator, files: Files) -> None:
    config, data = files.config(document(emu.url)), files.data(people(60))
    sync_file(files, config, data)
    args = ["--config", config, "--data", data, "--sample", "7", "--seed", "42"]

    def chosen(run_args: list[str]) -> list[str]:
        before = len(app_requests(emu))
        run = run_verify(run_args)
        assert run.code == 0, run.stderr
        assert "7 people: 7 hold the file" in run.stderr
        return sorted(i for r in app_requests(emu)[before:] for i in r.body["ids"])

    first, second = chosen(args), chosen(args)
    assert first == second and len(first) == 7
    assert chosen([*args[:-1], "43"]) != first
    unseeded = run_verify(["--config", config, "--data", data, "--sample", "7"])
    assert "--sample 7 --seed " in unseeded.stderr  # says how to repeat it


def test_a_429_then_success_through_the_real_process(emu: Emulator, files: Files) -> None:
    config, data = files.config(document(emu.url)), files.data(people(5))
    sync_file(files, config, data)
    emu.add_fault(status=429, endpoint="app-people", times=2)
    run = run_verify_process(["--config", config, "--data", data])
    assert run.code == 0, run.stderr
    assert [r.status for r in app_requests(emu)] == [429, 429, 200]


@pytest.mark.parametrize("year", ["99999999999999999999", "99999"])
def test_a_retry_after_dated_past_any_year_is_backed_off_not_an_internal_error(
    emu: Emulator, files: Files, year: str
) -> None:
    config, data = files.config(document(emu.url)), files.data(people(5))
    sync_file(files, config, data)
    emu.add_fault(status=429, retry_after=f"Mon, 1 Jan {year} 00:00:00 GMT", endpoint="app-people", times=1)
    run = run_verify(["--config", config, "--data", data])
    assert run.code == 0, run.stderr
    assert [r.status for r in app_requests(emu)] == [429, 200]


def test_every_attempt_has_a_deadline(emu: Emulator, files: Files) -> None:
    config, data = files.config(document(emu.url)), files.data(people(5))
    sync_file(files, config, data)
    emu.add_fault(delay=1, endpoint="app-people", times=1)
    run = run_verify(["--config", config, "--data", data, "--timeout", "0.5"])
    assert run.code == 0, run.stderr
    # The first attempt was cut at its deadline (the emulator answers it only later), the second answered.
    assert emu.stats()["endpoints"]["app-people"] == 2


def test_seed_without_sample_is_refused(emu: Emulator, files: Files) -> None:
    run = run_verify(["--config", files.config(document(emu.url)), "--data", files.data([]), "--seed", "1"])
    assert run.code == 2 and "--seed goes with --sample" in run.stderr


# -- the library, with a fake clock ---------------------------------------------------------------


def attempts_at(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> list[float]:
    """The fake time at which each attempt (resends included) was let through."""
    times: list[float] = []
    original = reader_module.Pacer.wait_turn

    def wait_turn(self: reader_module.Pacer) -> None:
        original(self)
        times.append(clock.monotonic())

    monkeypatch.setattr(reader_module.Pacer, "wait_turn", wait_turn)
    return times


def test_a_429_storm_is_ridden_out_at_most_10_requests_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(monotonic=0.0)
    times = attempts_at(monkeypatch, clock)
    with Emulator(SITE_ID, API_KEY, app_api_key=APP_KEY, app_rate_limit=None) as emu:
        for person in people(450):
            emu.add_person(id=person["id"], attributes={k: v for k, v in person.items() if k != "id"})
        emu.add_fault(status=429, endpoint="app-people", times=10)
        emu.add_fault(status=503, endpoint="app-people", times=2)
        config = config_from_dict(document(emu.url), env={})
        options = Options(http=HttpSettings(retries=3), workers=1, clock=clock)
        result = verify(config, people(450), options)
        statuses = [r.status for r in app_requests(emu)]
    assert result.stopped is None, result.error
    assert (result.matching, result.differing, result.missing) == (450, 0, 0)
    assert statuses.count(429) == 10 and statuses.count(503) == 2 and statuses.count(200) == 5
    assert result.requests == len(statuses) == len(times)
    # No ten attempts within one second, and every 429 paused everyone (fake seconds: no real waiting).
    assert all(later - earlier >= 1.0 - 1e-9 for earlier, later in zip(times, times[10:], strict=False))
    assert clock.monotonic() > 10 * 0.25


def test_a_storm_that_never_ends_is_unreachable_not_a_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(monotonic=0.0)
    with Emulator(SITE_ID, API_KEY, app_api_key=APP_KEY, app_rate_limit=None) as emu:
        emu.add_fault(status=429, endpoint="app-people", times=None)
        config = config_from_dict(document(emu.url), env={})
        result = verify(config, people(250), Options(http=HttpSettings(retries=1), clock=clock))
    assert result.stopped is ReadStatus.UNREACHABLE
    assert result.unchecked == 250 and result.checked == 0
    assert "HTTP 429" in (result.error or "")


def test_a_long_retry_after_is_resent_only_within_the_resend_window() -> None:
    # Retry-After: 100 on every answer: eleven attempts would take 17 minutes; the window ends it
    # after five (fake seconds: none waited for).
    clock = FakeClock(monotonic=0.0)
    with Emulator(SITE_ID, API_KEY, app_api_key=APP_KEY, app_rate_limit=None) as emu:
        emu.add_fault(status=429, retry_after="100", endpoint="app-people", times=None)
        config = config_from_dict(document(emu.url), env={})
        options = Options(http=HttpSettings(retries=0, resend_window=300), workers=1, clock=clock)
        result = verify(config, people(3), options)
        attempts = len(app_requests(emu))
    assert result.stopped is ReadStatus.UNREACHABLE and "HTTP 429" in (result.error or "")
    assert attempts == 5
    assert clock.monotonic() <= 400


def test_ids_go_100_a_request_with_the_id_type_the_configuration_implies() -> None:
    records = [*people(230), {"id": "Ada@Example.com", "name": "Ada"}, {"id": "cio_00000001", "name": "By cio_id"}]
    # Not paced (the App API's rate is not what this is about): no request waits its turn.
    with Emulator(SITE_ID, API_KEY, app_api_key=APP_KEY, app_rate_limit=None) as emu:
        emu.add_person(id="0", cio_id="00000001")
        config = config_from_dict(document(emu.url), env={})
        findings: list[tuple[str, Verdict]] = []
        collect = Options(rate=1000, on_person=lambda person, verdict, _: findings.append((person, verdict)))
        verify(config, records, collect)
    sent = [(r.target.split("?")[1], len(r.body["ids"])) for r in app_requests(emu)]
    assert sorted(sent) == sorted(
        [("id_type=id", 100), ("id_type=id", 100), ("id_type=id", 30), ("id_type=email", 1), ("id_type=cio_id", 1)]
    )
    assert ("Ada@Example.com", Verdict.MISSING) in findings
    assert ("cio_00000001", Verdict.DIFFERS) in findings  # person 0 holds no name "By cio_id"


def test_people_held_behind_an_invalid_record_go_to_disk_past_the_buffer() -> None:
    from cio_sync.input.mapping import PersonUpdate, RecordMapper
    from cio_sync.readback.expected import ExpectedState

    mapper = RecordMapper.for_config(config_from_dict(document("http://127.0.0.1:1"), env={}))
    state = ExpectedState(buffer_people=3)
    for n in range(7):
        state.hold(str(n), 100 + n)
    state.hold("2", 500)  # the first invalid record counts
    assert [state.held_from(str(n)) for n in range(8)] == [100, 101, 102, 103, 104, 105, 106, None]
    for i, record in enumerate([{"id": "5", "name": "held"}, {"id": "7", "name": "expected"}]):
        update = mapper.map(i, record)
        assert isinstance(update, PersonUpdate)
        state.add(update)
    assert [(p.key, p.attributes) for p in state.people()] == [("7", {"name": "expected"})]
    state.close()


def test_memory_stays_in_the_expected_state_file_not_in_python() -> None:
    from cio_sync.input.mapping import PersonUpdate, RecordMapper
    from cio_sync.readback.expected import ExpectedState

    config = config_from_dict(document("http://127.0.0.1:1"), env={})
    mapper = RecordMapper.for_config(config)
    state = ExpectedState(buffer_people=10)
    for i, record in enumerate([*people(35), {"id": "3", "plan": "later"}, {"id": "34", "name": None}]):
        update = mapper.map(i, record)
        assert isinstance(update, PersonUpdate)
        state.add(update)
    everyone = list(state.people())
    assert [p.seq for p in everyone] == list(range(35))
    assert everyone[3].attributes == {"name": "person 3", "plan": "later", "v": 3}
    assert everyone[34].attributes == {"name": None, "plan": "pro", "v": 34}
    assert [p.identifier for p in state.people([0, 17, 34])] == ["0", "17", "34"]
    state.close()


class FakeTerminal(io.StringIO):
    """Standard error as a terminal, kept in memory."""

    def isatty(self) -> bool:
        return True


def test_a_progress_bar_on_a_terminal_and_the_report_on_standard_output(
    emu: Emulator, files: Files, capsys: pytest.CaptureFixture[str]
) -> None:
    config, data = files.config(document(emu.url)), files.data(people(250))
    sync_file(files, config, data)
    edit_person(emu, "200", {"plan": "free"})
    screen = FakeTerminal()
    options = VerifyOptions(config, data, None, None, None, None, None, "-", 5.0, 1, False)
    assert run(options, stream=screen) == ExitCode.RECORDS_FAILED
    assert "verify" in screen.getvalue() and "250/250" in screen.getvalue()
    report = json.loads(capsys.readouterr().out)
    assert report["people"] == [
        {
            "person": "200",
            "verdict": "differs",
            "differences": [{"attribute": "plan", "file": "pro", "workspace": "free"}],
        }
    ]
    assert report["summary"]["matching"] == 249


def test_a_retry_after_that_comes_is_honoured_and_capped() -> None:
    clock = FakeClock(monotonic=0.0)
    with Emulator(SITE_ID, API_KEY, app_api_key=APP_KEY, app_rate_limit=None) as emu:
        emu.add_fault(status=429, retry_after="7", endpoint="app-people", times=1)
        emu.add_fault(status=503, retry_after="86400", endpoint="app-people", times=1)
        config = config_from_dict(document(emu.url), env={})
        settings = HttpSettings(retry_after_max=60.0)
        result = verify(config, people(3), Options(http=settings, clock=clock, workers=1))
    assert result.stopped is None and result.missing == 3
    assert 7 + 60 <= clock.monotonic() < 7 + 60 + 1


def test_every_option_of_the_command_is_on_the_verify_page() -> None:
    from typer.main import get_command

    from cio_sync.cli.verify import app

    options = {name for param in get_command(app).params for name in [*param.opts, *param.secondary_opts]}
    assert {"--config", "-config", "--data", "--sample", "--seed", "--failed", "--report"} <= options
    page = (Path(__file__).resolve().parent.parent / "docs" / "verify.md").read_text(encoding="utf-8")
    assert sorted(o for o in options if o.startswith("-") and f"`{o}" not in page and o not in ("-h", "--help")) == []


def test_the_hint_to_feed_failed_back_names_the_format_its_name_does_not(emu: Emulator, files: Files) -> None:
    config, data = files.config(document(emu.url)), files.data(people(2))
    failed = str(files.root / "again.ndjson")
    run = run_verify(["--config", config, "--data", data, "--format", "json", "--failed", failed])
    assert run.code == 1, run.stderr
    assert f"wrote 2 records to {failed}: cio-sync --data {failed} --format json sends them again" in run.stderr
    assert json.loads(Path(failed).read_text()) == people(2)

"""Mirroring (whenRemoved, maxRemovals): people who leave the data file leave the workspace, under a guard.

Every test runs against the emulator on loopback; the removals go through the real transports.
"""

from __future__ import annotations

import json
import signal
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from cio_sync.emulator import Drop, Emulator, Fault
from cio_sync.emulator.rules import Choices, Endpoint, Identifier, IdKind
from cio_sync.emulator.workspace import edit, suppressed
from cio_sync.engine.mirror import Removed
from cio_sync.engine.sync import sync
from cio_sync.engine.tally import SyncResult
from cio_sync.errors import ConfigError
from cio_sync.input.config import parse_max_invalid, parse_max_removals
from cio_sync.input.schema import problems
from cio_sync.outcome import Stop, StopReason
from cio_sync.state.ledger import Ledger
from cio_sync.state.roster import workspace_fingerprint

from .conftest import API_KEY, FAST, SITE_ID, Files, Spawn, config_dict, finish, make_config, run_cli, wait_until

PEOPLE = [{"id": f"p{i}", "name": f"n{i}", "computed_ltv": i} for i in range(10)]
TRANSPORTS = ["v1", "batch"]


def library_run(url: str, state: Path, records: list[dict[str, Any]], **config: Any) -> SyncResult:
    """One sync through the library with the ledger at ``state``."""
    settings = make_config(url, **config)
    with Ledger(str(state), settings) as ledger:
        return sync(settings, records, http=FAST, ledger=ledger)


def expected(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(r["id"]): {"name": r["name"], "ltv": r["computed_ltv"]} for r in records}


def people_rows(state: Path | str) -> dict[str, tuple[Any, ...]]:
    """The ledger's people: each one's removal mode, removed flag and suppressed flag."""
    with sqlite3.connect(state) as db:
        rows = db.execute("SELECT person_id, removal, removed, suppressed FROM people").fetchall()
    return {str(r[0]): tuple(r[1:]) for r in rows}


def test_one_ledger_serves_runs_in_turn_each_naming_its_own_people(emulator: Emulator, tmp_path: Path) -> None:
    # Who an earlier run on the same open Ledger named must not keep anyone from leaving.
    settings = make_config(emulator.url, whenRemoved="delete", maxRemovals="all")
    with Ledger(str(tmp_path / "state.db"), settings) as ledger:
        assert sync(settings, PEOPLE[:5], http=FAST, ledger=ledger).ok
        result = sync(settings, PEOPLE[:3], http=FAST, ledger=ledger)
    assert result.ok and result.mirror is not None and result.mirror.leaving == 2
    assert sorted(emulator.people()) == ["p0", "p1", "p2"]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("mode", ["delete", "suppress"])
def test_people_who_left_the_file_leave_the_workspace(
    emulator: Emulator, tmp_path: Path, transport: str, mode: str
) -> None:
    state = tmp_path / "state.db"
    assert library_run(emulator.url, state, PEOPLE, transport=transport).ok
    kept = PEOPLE[:9]
    result = library_run(emulator.url, state, kept, transport=transport, whenRemoved=mode)
    assert result.ok and result.mirror is not None
    assert [(e.person_id, e.outcome.value) for e in result.mirror.entries] == [("p9", "removed")]
    assert emulator.people() == expected(kept)
    assert people_rows(state)["p9"] == (mode, 1, int(mode == "suppress"))
    if mode == "suppress":
        assert suppressed(emulator.workspace) == ["p9"]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("mode", ["delete", "suppress"])
def test_a_person_whose_email_a_file_spells_in_two_cases_leaves_and_comes_back(
    emulator: Emulator, tmp_path: Path, transport: str, mode: str
) -> None:
    # One person (an email address is not case sensitive), written once, merged: named as the
    # first record spells them, their id as the last spells it. Removed once they leave the
    # file, and written again (unsuppressed first) once they come back in both spellings.
    state = tmp_path / "state.db"
    twice = [{"id": "Dup@x.com", "name": "a"}, {"id": "dup@x.com", "name": "b"}, {"id": "s", "name": "s"}]
    mirror = {
        "transport": transport,
        "whenRemoved": mode,
        "maxRemovals": "all",
        "mappings": [{"from": "name", "to": "name"}],
    }
    assert library_run(emulator.url, state, twice, **mirror).ok
    assert emulator.person("dup@x.com") is not None
    gone = library_run(emulator.url, state, twice[2:], **mirror)
    assert gone.ok, [e.reason for e in gone.mirror.entries] if gone.mirror else gone
    assert emulator.person("dup@x.com") is None
    back = library_run(emulator.url, state, [{"id": "DUP@x.com", "name": "c"}, *twice[1:]], **mirror)
    assert back.ok, back
    assert emulator.people() == {"DUP@x.com": {"name": "b"}, "s": {"name": "s"}}
    assert suppressed(emulator.workspace) == []


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_clear_removes_every_mapped_attribute_and_keeps_the_person(tmp_path: Path, transport: str) -> None:
    with Emulator(SITE_ID, API_KEY, choices=Choices(empty_removes=True)) as emu:
        state = tmp_path / "state.db"
        library_run(emu.url, state, PEOPLE, transport=transport)
        edit(emu.workspace, Identifier(IdKind.ID, "p9"), {"plan": "gold"})  # not the mapping's
        result = library_run(emu.url, state, PEOPLE[:9], transport=transport, whenRemoved="clear")
        assert result.mirror is not None and result.mirror.count(Removed.REMOVED) == 1
        assert emu.people()["p9"] == {"plan": "gold"}
        bodies = [r.body for r in emu.requests() if r.method in ("PUT", "POST")][-1]
    sent = bodies if transport == "v1" else bodies["batch"][0]["attributes"]
    assert {k: v for k, v in sent.items() if k != "_timestamp"} == {"name": "", "ltv": "", "_update": True}


def test_without_a_ledger_mirroring_is_refused_before_anything_is_sent(emulator: Emulator, files: Files) -> None:
    args = ["--config", files.config(config_dict(emulator.url)), "--data", files.data(PEOPLE)]
    run = run_cli([*args, "--when-removed", "delete"])
    assert run.code == 2
    assert "needs --state" in run.stderr
    assert emulator.requests() == []
    with pytest.raises(ConfigError, match="needs --state"):
        sync(make_config(emulator.url, whenRemoved="suppress"), PEOPLE, http=FAST)
    assert emulator.requests() == []


def test_a_changed_mapping_changes_no_ones_membership(emulator: Emulator, tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    library_run(emulator.url, state, PEOPLE)
    renamed = [{"from": "name", "to": "full_name"}]
    result = library_run(emulator.url, state, PEOPLE[1:], mappings=renamed, whenRemoved="delete")
    assert result.mirror is not None and [e.person_id for e in result.mirror.entries] == ["p0"]
    assert sorted(emulator.people()) == [f"p{i}" for i in range(1, 10)]


def test_an_invalid_record_still_names_its_person(emulator: Emulator, tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    cast = [{"from": "name", "to": "name"}, {"from": "computed_ltv", "to": "ltv", "as": "integer"}]
    library_run(emulator.url, state, PEOPLE, mappings=cast)
    broken: list[dict[str, Any]] = [*PEOPLE[:8], {"id": "p8", "name": "x", "computed_ltv": "not a number"}]
    result = library_run(emulator.url, state, broken, mappings=cast, whenRemoved="delete")
    assert result.invalid == 1
    assert result.mirror is not None and [e.person_id for e in result.mirror.entries] == ["p9"]
    assert "p8" in emulator.people() and "p9" not in emulator.people()


def test_over_the_guard_no_one_is_removed_and_the_run_says_how_to_allow_it(emulator: Emulator, files: Files) -> None:
    state = str(files.root / "state.db")
    config = files.config(config_dict(emulator.url, whenRemoved="delete"))
    assert run_cli(["--config", config, "--data", files.data(PEOPLE), "--state", state]).code == 0
    two_left = files.data(PEOPLE[:8], name="fewer.json")
    run = run_cli(["--config", config, "--data", two_left, "--state", state])
    assert run.code == 1
    assert "2 people of the 10 the ledger holds left the data file" in run.stderr
    assert "--max-removals 2" in run.stderr
    assert len(emulator.people()) == 10
    allowed = run_cli(["--config", config, "--data", two_left, "--state", state, "--max-removals", "20%"])
    assert allowed.code == 0, allowed.stderr
    assert "2 people left the data file: 2 removed" in allowed.stderr
    assert sorted(emulator.people()) == [f"p{i}" for i in range(8)]


@pytest.mark.parametrize(("guard", "removed"), [(1, False), (2, True), ("all", True), ("19%", False), ("20%", True)])
def test_the_guard_is_a_count_a_share_or_all(emulator: Emulator, tmp_path: Path, guard: object, removed: bool) -> None:
    state = tmp_path / "state.db"
    library_run(emulator.url, state, PEOPLE)
    result = library_run(emulator.url, state, PEOPLE[:8], whenRemoved="delete", maxRemovals=guard)
    assert result.mirror is not None and result.mirror.allowed is removed
    assert len(emulator.people()) == (8 if removed else 10)


def test_an_empty_data_file_removes_no_one_unless_the_guard_is_all(emulator: Emulator, files: Files) -> None:
    state = str(files.root / "state.db")
    config = files.config(config_dict(emulator.url, whenRemoved="delete", maxRemovals="100%"))
    run_cli(["--config", config, "--data", files.data(PEOPLE), "--state", state])
    empty = files.data([], name="empty.json")
    run = run_cli(["--config", config, "--data", empty, "--state", state])
    assert run.code == 1
    assert "the data file holds no records" in run.stderr and "--max-removals all" in run.stderr
    assert len(emulator.people()) == 10
    assert run_cli(["--config", config, "--data", empty, "--state", state, "--max-removals", "all"]).code == 0
    assert emulator.people() == {}


def test_a_run_that_stops_early_removes_no_one(emulator: Emulator, tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    library_run(emulator.url, state, PEOPLE)
    settings = make_config(emulator.url, whenRemoved="delete", maxRemovals="all")
    stop = Stop()
    changed = [{**p, "name": "changed"} for p in PEOPLE[:5]]
    with Ledger(str(state), settings) as ledger:
        result = sync(settings, changed, http=FAST, ledger=ledger, stop=stop, on_outcome=lambda o: stop())
    assert result.stopped is StopReason.STOPPED
    assert result.mirror is not None and result.mirror.skipped is not None and result.mirror.entries == ()
    assert len(emulator.people()) == 10
    assert all(r.method != "DELETE" for r in emulator.requests())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_lost_answer_leaves_the_removal_pending_and_the_next_run_removes_again(
    emulator: Emulator, tmp_path: Path, transport: str
) -> None:
    state = tmp_path / "state.db"
    library_run(emulator.url, state, PEOPLE, transport=transport)
    # Applied, then the answer is lost, on every attempt: past the retries.
    emulator.add_fault(Fault(drop=Drop.AFTER, person="p9", times=None))
    result = library_run(emulator.url, state, PEOPLE[:9], transport=transport, whenRemoved="delete")
    assert result.mirror is not None and not result.mirror.ok
    assert [e.outcome.value for e in result.mirror.entries] == ["failed"]
    assert "p9" not in emulator.people()  # the delete landed: only its answer was lost
    assert people_rows(state)["p9"] == ("delete", 0, 0)  # pending
    emulator.faults.clear()
    again = library_run(emulator.url, state, PEOPLE[:9], transport=transport, whenRemoved="delete")
    assert again.mirror is not None and again.mirror.ok
    assert [e.outcome.value for e in again.mirror.entries] == ["removed"]
    assert people_rows(state)["p9"] == ("delete", 1, 0)


def test_a_5xx_past_the_retries_fails_the_run_and_never_blocks_the_upserts(emulator: Emulator, files: Files) -> None:
    state = str(files.root / "state.db")
    config = files.config(config_dict(emulator.url, whenRemoved="suppress", maxRemovals="all"))
    run_cli(["--config", config, "--data", files.data(PEOPLE), "--state", state])
    emulator.add_fault(Fault(status=503, person="p9", times=None))
    changed = [{**p, "name": "changed"} for p in PEOPLE[:9]]
    report = files.root / "report.json"
    run = run_cli(
        ["--config", config, "--data", files.data(changed), "--state", state, "--report", str(report), "--retries", "1"]
    )
    assert run.code == 1
    assert "1 of 1 removals did not succeed" in run.stderr
    assert all(emulator.people()[f"p{i}"]["name"] == "changed" for i in range(9))
    document = json.loads(report.read_text())
    assert problems("report.schema.json", document) == []
    removals = document["removals"]
    assert removals["counts"]["failed"] == 1 and removals["people"][0]["id"] == "p9"
    assert removals["people"][0]["status"] == 503
    emulator.faults.clear()
    assert run_cli(["--config", config, "--data", files.data(changed), "--state", state]).code == 0
    assert "p9" not in emulator.people() and suppressed(emulator.workspace) == ["p9"]


def test_a_run_killed_mid_removal_is_resumed_by_the_next(emulator: Emulator, files: Files, spawn_cli: Spawn) -> None:
    state = str(files.root / "state.db")
    config = files.config(config_dict(emulator.url, whenRemoved="delete", maxRemovals="all", parallelism=1))
    run_cli(["--config", config, "--data", files.data(PEOPLE), "--state", state])
    # p7's delete hangs at the emulator until the run is killed; p8's and p9's never leave.
    emulator.add_fault(Fault(delay=30, person="p7", times=1))
    fewer = files.data(PEOPLE[:7], name="fewer.json")
    proc = spawn_cli(["--config", config, "--data", fewer, "--state", state])
    wait_until(lambda: emulator.stats()["in_flight"] > 0)
    proc.send_signal(signal.SIGKILL)
    finish(proc)
    assert people_rows(state)["p7"] == ("delete", 0, 0)  # written ahead before it left
    emulator.faults.clear()
    run = run_cli(["--config", config, "--data", fewer, "--state", state])
    assert run.code == 0, run.stderr
    assert sorted(emulator.people()) == [f"p{i}" for i in range(7)]
    assert all(people_rows(state)[f"p{i}"] == ("delete", 1, 0) for i in (7, 8, 9))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_suppressed_person_who_comes_back_is_unsuppressed_then_written(
    emulator: Emulator, files: Files, transport: str
) -> None:
    state = str(files.root / "state.db")
    config = files.config(config_dict(emulator.url, whenRemoved="suppress", maxRemovals="all", transport=transport))
    run_cli(["--config", config, "--data", files.data(PEOPLE), "--state", state])
    run_cli(["--config", config, "--data", files.data(PEOPLE[:9], name="fewer.json"), "--state", state])
    assert suppressed(emulator.workspace) == ["p9"]
    report = files.root / "report.json"
    planned = run_cli(["--config", config, "--data", files.data(PEOPLE), "--state", state, "--dry-run"])
    assert "1 person cio-sync had suppressed came back and would be unsuppressed, then written: p9" in planned.stderr
    before = len(emulator.requests())
    run = run_cli(["--config", config, "--data", files.data(PEOPLE), "--state", state, "--report", str(report)])
    assert run.code == 0, run.stderr
    assert "were unsuppressed, then written: p9" in run.stderr
    assert emulator.people() == expected(PEOPLE)
    sent = emulator.requests()[before:]
    if transport == "v1":
        about = [(r.method, r.target) for r in sent if "/p9" in r.target]
        assert about == [("POST", "/api/v1/customers/p9/unsuppress"), ("PUT", "/api/v1/customers/p9")]
    else:
        batches = [r.body["batch"] for r in sent if r.method == "POST"]
        actions = [[i["action"] for i in b if i["identifiers"] == {"id": "p9"}] for b in batches]
        assert [a for a in actions if a] == [["unsuppress"], ["identify"]]
    document = json.loads(report.read_text())
    assert problems("report.schema.json", document) == [] and document["removals"]["unsuppressed"] == ["p9"]
    assert people_rows(state)["p9"] == (None, 0, 0)


def test_the_dry_run_names_who_would_go_and_whether_the_guard_stops_it(emulator: Emulator, files: Files) -> None:
    many = [{"id": f"p{i:02}", "name": "n"} for i in range(30)]
    state = str(files.root / "state.db")
    config = files.config(config_dict(emulator.url, whenRemoved="delete"))
    run_cli(["--config", config, "--data", files.data(many), "--state", state])
    sent = len(emulator.requests())
    report = files.root / "report.json"
    args = ["--config", config, "--data", files.data(many[:5], name="few.json"), "--state", state, "--dry-run"]
    run = run_cli([*args, "--report", str(report)])
    assert run.code == 1
    names = ", ".join(f"p{i:02}" for i in range(5, 25))
    assert (
        f"25 people left the data file and would be removed (over --max-removals 10%): {names} and 5 more" in run.stderr
    )
    assert "--max-removals would stop the removals" in run.stderr
    document = json.loads(report.read_text())
    assert problems("report.schema.json", document) == []
    removals = document["removals"]
    assert removals["allowed"] is False and len(removals["people"]) == 25
    assert removals["counts"]["would_remove"] == 25
    allowed = run_cli([*args, "--max-removals", "all"])
    assert allowed.code == 0 and "(within --max-removals all)" in allowed.stderr
    assert len(emulator.requests()) == sent and len(emulator.people()) == 30


def test_a_ledger_from_before_mirroring_is_still_a_ledger(emulator: Emulator, tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    library_run(emulator.url, state, PEOPLE)
    with sqlite3.connect(state) as db:
        db.execute("DROP TABLE people")
        db.execute("DROP TABLE kept")
    result = library_run(emulator.url, state, PEOPLE[:9], whenRemoved="delete")
    assert result.ok and result.mirror is not None and result.mirror.leaving == 0
    assert result.unchanged == 9


def test_removals_start_only_once_every_upsert_was_answered(emulator: Emulator, tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    library_run(emulator.url, state, PEOPLE)
    before = len(emulator.requests())
    changed = [{**p, "name": "changed"} for p in PEOPLE[:5]]
    result = library_run(emulator.url, state, changed, whenRemoved="delete", maxRemovals="all", parallelism=8)
    assert result.synced == 5 and result.mirror is not None and result.mirror.count(Removed.REMOVED) == 5
    sent = emulator.requests()[before:]
    last_put = max(r.answered_at for r in sent if r.method == "PUT")
    first_delete = min(r.started_at for r in sent if r.method == "DELETE")
    assert last_put < first_delete


def test_a_delete_answered_404_finds_nobody_to_remove_and_counts_as_done(emulator: Emulator, tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    library_run(emulator.url, state, PEOPLE)
    emulator.add_fault(Fault(status=404, person="p9", endpoint=Endpoint.CUSTOMERS))
    result = library_run(emulator.url, state, PEOPLE[:9], whenRemoved="delete")
    assert result.mirror is not None and result.mirror.ok
    assert people_rows(state)["p9"] == ("delete", 1, 0)


def test_removals_stop_once_the_api_went_away_and_the_rest_wait_for_the_next_run(
    emulator: Emulator, tmp_path: Path
) -> None:
    state = tmp_path / "state.db"
    library_run(emulator.url, state, PEOPLE)
    emulator.add_fault(Fault(drop=Drop.BEFORE, endpoint=Endpoint.CUSTOMERS, times=None))
    result = library_run(emulator.url, state, PEOPLE[:7], whenRemoved="delete", maxRemovals="all", parallelism=1)
    assert result.stopped is StopReason.UNREACHABLE
    assert result.mirror is not None
    assert [e.outcome for e in result.mirror.entries] == [Removed.FAILED, Removed.NOT_ATTEMPTED, Removed.NOT_ATTEMPTED]
    assert len(emulator.people()) == 10
    emulator.faults.clear()
    again = library_run(emulator.url, state, PEOPLE[:7], whenRemoved="delete", maxRemovals="all")
    assert again.mirror is not None and again.mirror.count(Removed.REMOVED) == 3
    assert sorted(emulator.people()) == [f"p{i}" for i in range(7)]


@pytest.mark.parametrize("person", ["a@b.com", "cio_abc"])
@pytest.mark.parametrize("mode", ["delete", "suppress", "clear"])
def test_a_person_v1_would_read_as_someone_else_is_not_removed_on_v1(
    emulator: Emulator, files: Files, person: str, mode: str
) -> None:
    state = str(files.root / "state.db")
    config = files.config(config_dict(emulator.url, idType="id", maxRemovals="all"))
    everyone = [*PEOPLE, {"id": person, "name": "n", "computed_ltv": 1}]
    written = run_cli(["--config", config, "--data", files.data(everyone), "--state", state, "--transport", "batch"])
    assert written.code == 0
    before = len(emulator.requests())
    report = files.root / "report.json"
    args = ["--config", config, "--data", files.data(PEOPLE, name="fewer.json"), "--state", state]
    run = run_cli([*args, "--transport", "v1", "--when-removed", mode, "--report", str(report)])
    assert run.code == 1
    assert "--transport batch" in run.stderr
    # v1 reads its path by shape: the request would have named an email address or a cio_id.
    assert [r.target for r in emulator.requests()[before:] if r.method != "GET"] == []
    assert person in emulator.people()
    entry = json.loads(report.read_text())["removals"]["people"]
    assert [(e["id"], e["outcome"], e["status"]) for e in entry] == [(person, "failed", None)]
    assert "--transport batch" in entry[0]["reason"]
    # Pending, for a run that can remove them (a suppression pending counts as one that may have landed).
    assert people_rows(state)[person] == (mode, 0, int(mode == "suppress"))
    again = run_cli([*args, "--transport", "batch", "--when-removed", mode])
    assert again.code == 0, again.stderr
    assert people_rows(state)[person] == (mode, 1, int(mode == "suppress"))


def mirror_args(files: Files, url: str, state: str, data: list[dict[str, Any]] | str, name: str) -> list[str]:
    """The CLI arguments of a mirroring run (delete) of ``data``, written to ``name``."""
    config = files.config(config_dict(url, whenRemoved="delete"))
    path = data if isinstance(data, str) else files.data(data, name=name)
    return ["--config", config, "--data", path, "--state", state]


def test_feeding_back_the_failed_file_of_a_mirroring_run_removes_no_one_it_named(
    emulator: Emulator, files: Files
) -> None:
    state = str(files.root / "state.db")
    people = [{"id": f"p{i:02}", "name": "n", "computed_ltv": i} for i in range(20)]
    assert run_cli(mirror_args(files, emulator.url, state, people, "all.json")).code == 0
    changed = [{**p, "name": "changed"} for p in people]
    for p in people[1:]:
        emulator.add_fault(Fault(status=503, person=str(p["id"]), times=None))
    failed = files.root / "failed.json"
    first = run_cli(
        [*mirror_args(files, emulator.url, state, changed, "changed.json"), "--retries", "0", "--failed", str(failed)]
    )
    assert first.code == 1
    emulator.faults.clear()
    assert len(json.loads(failed.read_text())) == 19
    # The failed file names 19 of the 20 people: the 20th, synced the night before, is not gone.
    again = run_cli([*mirror_args(files, emulator.url, state, str(failed), ""), "--report", str(files.root / "r.json")])
    assert again.code == 0, again.stderr
    assert "no one left the data file" in again.stderr
    assert "1 person not in the data file stays: the file of a run that did not end clean named them" in again.stderr
    assert emulator.people() == {str(p["id"]): {"name": "changed", "ltv": p["computed_ltv"]} for p in people}
    # A run that ended clean forgets the kept names: the next one removes whoever its file lacks.
    night = run_cli(mirror_args(files, emulator.url, state, changed[:19], "night.json"))
    assert night.code == 0, night.stderr
    assert "1 person left the data file: 1 removed" in night.stderr
    assert sorted(emulator.people()) == [str(p["id"]) for p in people[:19]]


def test_after_a_failed_night_only_people_missing_from_both_files_are_removed(
    emulator: Emulator, tmp_path: Path
) -> None:
    state = tmp_path / "state.db"
    library_run(emulator.url, state, PEOPLE)
    emulator.add_fault(Fault(status=400, person="p0", times=None))
    changed = [{**p, "name": "changed"} for p in PEOPLE[:9]]  # p9 left; p0's write is refused
    failed = library_run(emulator.url, state, changed, whenRemoved="delete", maxRemovals="all")
    assert failed.failed == 1 and failed.mirror is not None and failed.mirror.count(Removed.REMOVED) == 1
    emulator.faults.clear()
    # Tonight's file lacks p1 and p2; p1 was in the failed night's file, p2 too: kept, not removed.
    tonight = [p for p in changed if p["id"] not in ("p1", "p2")]
    result = library_run(emulator.url, state, tonight, whenRemoved="delete", maxRemovals="all")
    assert result.ok and result.mirror is not None and result.mirror.entries == () and result.mirror.spared == 2
    again = library_run(emulator.url, state, tonight, whenRemoved="delete", maxRemovals="all")
    assert again.mirror is not None and sorted(e.person_id for e in again.mirror.entries) == ["p1", "p2"]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("ragged.csv", "id,name,computed_ltv\n" + "".join(f"p{i},n{i},{i}\n" for i in range(8)) + "p8,n,8,stray\n"),
        ("float.ndjson", "".join(json.dumps(p) + "\n" for p in PEOPLE[:8]) + '{"id": 5.0}\n{"id": "p8", "na'),
        # An export whose id key was renamed: every record is invalid, none names anyone.
        ("renamed.json", json.dumps([{"user": p["id"], "name": p["name"]} for p in PEOPLE[:9]])),
        # A line of two records: it begins with p0's, but may be anyone's (here p8's too).
        (
            "glued.ndjson",
            "".join(json.dumps(p) + "\n" for p in PEOPLE[1:8]) + json.dumps(PEOPLE[0]) + ' {"id": "p8"}\n',
        ),
    ],
)
def test_records_that_name_no_one_stop_the_removals(emulator: Emulator, files: Files, name: str, content: str) -> None:
    state = str(files.root / "state.db")
    assert run_cli(mirror_args(files, emulator.url, state, PEOPLE, "all.json")).code == 0
    report = files.root / "report.json"
    args = mirror_args(files, emulator.url, state, files.data(content, name=name), "")
    planned = run_cli([*args, "--max-removals", "100%", "--max-invalid", "100%", "--dry-run"])
    assert planned.code == 1 and "records that name no one would stop the removals" in planned.stderr
    run = run_cli([*args, "--max-removals", "100%", "--max-invalid", "100%", "--report", str(report)])
    assert run.code == 1
    lines = [line for line in run.stderr.splitlines() if "name no one" in line or "names no one" in line]
    assert len(lines) == 1 and "fix those records and the removals go ahead" in lines[0], run.stderr
    assert len(emulator.people()) == 10
    assert all(r.method != "DELETE" for r in emulator.requests())
    removals = json.loads(report.read_text())["removals"]
    assert problems("report.schema.json", json.loads(report.read_text())) == []
    assert removals["allowed"] is False and removals["unnamed"] >= 1 and removals["people"] == []


@pytest.mark.parametrize(
    ("name", "broken"),
    [
        ("surrogate.json", '{"id": "p0", "name": "\\ud800", "computed_ltv": 0}'),
        ("bytes.ndjson", '{"id": "p0", "name": "caf\udcff", "computed_ltv": 0}'),
        ("bytes.csv", "p0,caf\udcff,0"),
    ],
)
def test_an_unreadable_record_whose_id_reads_names_its_person(
    emulator: Emulator, files: Files, name: str, broken: str
) -> None:
    # p0's record holds what no attribute can carry, elsewhere than in its id: it is invalid, yet
    # it still names p0, who is not taken for gone, and the removals of the others go ahead.
    state = str(files.root / "state.db")
    assert run_cli(mirror_args(files, emulator.url, state, PEOPLE, "all.json")).code == 0
    if name.endswith(".csv"):
        rows = [f"{p['id']},{p['name']},{p['computed_ltv']}" for p in PEOPLE[1:9]]  # p9 left the file
        text = "id,name,computed_ltv\n" + "\n".join([broken, *rows]) + "\n"
    else:
        rest = [json.dumps(p) for p in PEOPLE[1:9]]
        text = "[" + ",".join([broken, *rest]) + "]" if name.endswith(".json") else "\n".join([broken, *rest]) + "\n"
    data = files.root / name
    data.write_bytes(text.encode("utf-8", "surrogateescape"))
    run = run_cli([*mirror_args(files, emulator.url, state, str(data), ""), "--max-removals", "all"])
    assert run.code == 1, run.stderr  # the invalid record
    assert 'record 0 (id "p0"): invalid:' in run.stderr
    assert "1 person left the data file: 1 removed" in run.stderr
    assert sorted(emulator.people()) == [f"p{i}" for i in range(9)]


@pytest.mark.parametrize("share", ["0.00001%", "12.125%", "0%", "100%", "10%", "0.000000000000000000000000000001%"])
def test_a_guard_is_written_as_the_option_parsers_read_it_back(share: str) -> None:
    guard, tolerance = parse_max_removals(share), parse_max_invalid(share)
    assert str(guard) == share and parse_max_removals(str(guard)) == guard
    assert str(tolerance) == share and parse_max_invalid(str(tolerance)) == tolerance


def test_the_workspace_is_the_same_however_its_url_is_spelt() -> None:
    same = {
        workspace_fingerprint(make_config(u))
        for u in ("http://127.0.0.1:8080", "HTTP://127.0.0.1:8080", "http://127.0.0.1:8080/")
    }
    assert len(same) == 1
    other = {workspace_fingerprint(make_config(u)) for u in ("http://localhost:8080", "http://127.0.0.1:8081")}
    assert same.isdisjoint(other) and len(other) == 2

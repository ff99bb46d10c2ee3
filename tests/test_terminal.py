"""Nothing from a data file or a server can drive the operator's terminal or fake a line."""

from __future__ import annotations

import json

from cio_sync.emulator import Emulator
from cio_sync.outputs.terminal import json_line, one_line, visible

from .conftest import Files, config_dict, run_cli
from .hostile import answer, hostile

# An id that sets the window title, clears the screen, and then fakes a summary line.
HOSTILE_ID = "a\x1b]0;pwned\x07\x1b[2J\rcio-sync: 1 record: 1 synced\n\u202eevil\x9b31m"
CONTROLS = ("\x1b", "\x07", "\r", "\u202e", "\x9b")


def lines_of(text: str) -> list[str]:
    return text.splitlines()


def test_escapes_are_written_out() -> None:
    assert one_line("a\x1b[2J\r\nb\u202e\x9b\ud800") == "a\\x1b[2J\\r\\nb\\u202e\\x9b\\ud800"
    assert visible("a\x1b\nb") == "a\\x1b\nb"
    hostile = {"k": "\x9b\u2028\u202e\u2066\ud800é"}
    line = json_line(json.dumps(hostile, ensure_ascii=False))
    assert line == '{"k": "\\u009b\\u2028\\u202e\\u2066\\ud800é"}'
    assert json.loads(line) == hostile


def test_a_hostile_id_and_message_are_escaped_in_the_problem_list(emulator: Emulator, files: Files) -> None:
    emulator.add_fault(status=400, person=HOSTILE_ID)
    data = files.data([{"id": HOSTILE_ID, "name": "x"}, {"id": 7, "name": ["\x1b[31m"] * 400}])
    run = run_cli(["--config", files.config(config_dict(emulator.url)), "--data", data])
    assert run.code == 1
    for control in CONTROLS:
        assert control not in run.stderr
    assert "\\x1b]0;pwned\\x07\\x1b[2J\\rcio-sync: 1 record: 1 synced\\n\\u202eevil\\x9b31m" in run.stderr
    # Every line is one of cio-sync's own: the id's newline did not start a line.
    assert all(line.startswith("cio-sync: ") for line in lines_of(run.stderr))
    assert lines_of(run.stderr)[-1].startswith("cio-sync: 2 records: 0 synced, 1 failed, 1 invalid")


def test_the_workspace_s_own_words_are_escaped(files: Files) -> None:
    body = json.dumps({"meta": {"error": "\x1b]0;title\x07bad\rvalue\u202e"}}).encode()
    with hostile(answer(b"422 Unprocessable Entity", body)) as server:
        run = run_cli(["--config", files.config(config_dict(server.url)), "--data", files.data([{"id": 1}])])
    assert run.code == 1
    for control in CONTROLS:
        assert control not in run.stderr
    assert "HTTP 422: \\x1b]0;title\\x07bad value\\u202e" in run.stderr


def test_a_dry_run_shows_hostile_values_escaped(emulator: Emulator, files: Files) -> None:
    data = files.data([{"id": "x", "name": "\u202e\x9b2J"}, {"id": 5.5, "name": "\x1b[2J"}])
    run = run_cli(["--config", files.config(config_dict(emulator.url)), "--data", data, "--dry-run"])
    assert run.code == 1
    for control in CONTROLS:
        assert control not in run.stderr
    assert "\\u202e\\x9b2J" in run.stderr
    assert emulator.requests() == []


def test_json_logs_escape_what_json_leaves_raw(emulator: Emulator, files: Files) -> None:
    data = files.data([{"id": "\u202e\x9b\x1b", "name": "x"}, "not a record"])
    emulator.add_fault(status=400, person="\u202e\x9b\x1b")
    args = ["--config", files.config(config_dict(emulator.url)), "--data", data, "--log-format", "json"]
    run = run_cli(args)
    assert run.code == 1
    for control in CONTROLS:
        assert control not in run.stderr
    records = [json.loads(line) for line in lines_of(run.stderr)]
    assert {r.get("id") for r in records if r["event"] == "record"} == {"\u202e\x9b\x1b", None}

"""Every way an input can be wrong: the message, exit 2, and not one request sent."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cio_sync.emulator import Emulator

from .conftest import Files, config_dict, run_cli

VALID_DATA = [{"id": 1, "name": "Ada"}]


def refused(emulator: Emulator, files: Files, config: object, data: object = None) -> str:
    """Run with these inputs, check exit 2 and silence on the wire, and return stderr."""
    config_path = files.config(config)
    data_path = files.data(VALID_DATA if data is None else data)
    run = run_cli(["--config", config_path, "--data", data_path])
    assert run.code == 2, run.stderr
    assert emulator.requests() == []
    assert run.stdout == ""
    return run.stderr


SOURCE = '"mappings[0]" needs exactly one source: "from" (a key or a path) or "value" (a constant)'
AS_INT = (
    '"mappings[0].as" must be one of "timestamp", "integer", "number", "boolean", "string", got string "int" '
    '(did you mean "integer"?)'
)
STEP_BOOL = '"mappings[0].from[1]" must be a string or an integer, got boolean true'
STEP_FLOAT = '"mappings[0].from[1]" must be a string or an integer, got number 1.5'
SKIP_TEXT = '"mappings[0].skipNull" must be true or false, got string "yes"'
CONSTANT = '"mappings[0].value": the string "abc" is not an integer (as integer)'
NULL_CONSTANT = '"mappings[0].skipNull": the constant is null, so this mapping would never send anything'

CONFIG_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("typo", {"paralellism": 25}, 'unknown key "paralellism" (did you mean "parallelism"?)'),
    (
        "unknown",
        {"colour": "blue"},
        'unknown key "colour" (known keys: apiKey, appApiKey, appBaseUrl, baseUrl, idType, mappings',
    ),
    ("no parallelism", {"parallelism": None}, 'missing required key "parallelism"'),
    ("no userId", {"userId": None}, 'missing required key "userId"'),
    ("no mappings", {"mappings": None}, 'missing required key "mappings"'),
    ("parallelism 0", {"parallelism": 0}, '"parallelism" must be between 1 and 1000, got number 0'),
    ("parallelism 1001", {"parallelism": 1001}, '"parallelism" must be between 1 and 1000, got number 1001'),
    ("parallelism text", {"parallelism": "25"}, '"parallelism" must be an integer, got string "25"'),
    ("parallelism bool", {"parallelism": True}, '"parallelism" must be an integer, got boolean true'),
    ("parallelism fraction", {"parallelism": 2.5}, '"parallelism" must be an integer, got number 2.5'),
    ("userId empty", {"userId": ""}, '"userId" must not be empty'),
    ("userId number", {"userId": 5}, '"userId" must be a string or an array, got number 5'),
    ("userId empty path", {"userId": []}, '"userId" must not be empty'),
    ("userId negative index", {"userId": ["user", -1]}, '"userId[1]" must be at least 0, got number -1'),
    (
        "idType",
        {"idType": "mail"},
        '"idType" must be one of "auto", "id", "email", "cio_id", got string "mail" (did you mean "email"?)',
    ),
    ("mappings object", {"mappings": {"a": "b"}}, '"mappings" must be an array, got object'),
    ("mapping without to", {"mappings": [{"from": "a"}]}, 'missing required key "mappings[0].to"'),
    ("mapping without from", {"mappings": [{"to": "a"}]}, SOURCE),
    ("mapping with from and value", {"mappings": [{"from": "a", "value": 1, "to": "a"}]}, SOURCE),
    ("mapping extra key", {"mappings": [{"from": "a", "to": "b", "colour": "c"}]}, 'unknown key "mappings[0].colour"'),
    ("mapping form", {"mappings": [{"form": "a", "to": "b"}]}, 'unknown key "mappings[0].form" (did you mean "from"?)'),
    (
        "mapping type",
        {"mappings": [{"from": "a", "to": "b", "type": "integer"}]},
        'unknown key "mappings[0].type" (did you mean "as"?)',
    ),
    (
        "mapping skip_null",
        {"mappings": [{"from": "a", "to": "b", "skip_null": True}]},
        'unknown key "mappings[0].skip_null" (did you mean "skipNull"?)',
    ),
    (
        "mapping constant",
        {"mappings": [{"constant": 1, "to": "b"}]},
        'unknown key "mappings[0].constant" (did you mean "value"?)',
    ),
    ("as int", {"mappings": [{"from": "a", "to": "b", "as": "int"}]}, AS_INT),
    (
        "as null",
        {"mappings": [{"from": "a", "to": "b", "as": None}]},
        '"mappings[0].as" must be one of "timestamp", "integer", "number", "boolean", "string", got null\n',
    ),
    (
        "as datetime",
        {"mappings": [{"from": "a", "to": "b", "as": "datetime"}]},
        AS_INT.replace('"int" (did you mean "integer"?)', '"datetime" (did you mean "timestamp"?)'),
    ),
    ("from empty path", {"mappings": [{"from": [], "to": "b"}]}, '"mappings[0].from" must not be empty'),
    ("from negative", {"mappings": [{"from": ["a", -1], "to": "b"}]}, '"mappings[0].from[1]" must be at least 0'),
    ("from bool step", {"mappings": [{"from": ["a", True], "to": "b"}]}, STEP_BOOL),
    ("from float step", {"mappings": [{"from": ["a", 1.5], "to": "b"}]}, STEP_FLOAT),
    (
        "from number",
        {"mappings": [{"from": 5, "to": "b"}]},
        '"mappings[0].from" must be a string or an array, got number 5',
    ),
    ("skipNull text", {"mappings": [{"from": "a", "to": "b", "skipNull": "yes"}]}, SKIP_TEXT),
    ("constant uncastable", {"mappings": [{"value": "abc", "to": "b", "as": "integer"}]}, CONSTANT),
    ("constant null skipped", {"mappings": [{"value": None, "to": "b", "skipNull": True}]}, NULL_CONSTANT),
    ("mapping not object", {"mappings": ["a"]}, '"mappings[0]" must be an object, got string "a"'),
    ("mapping empty to", {"mappings": [{"from": "a", "to": ""}]}, '"mappings[0].to" must not be empty'),
    (
        "duplicate to",
        {"mappings": [{"from": "a", "to": "x"}, {"from": "b", "to": "y"}, {"from": "c", "to": "x"}]},
        '"mappings[2].to": attribute "x" is already the target of mappings[0]',
    ),
    (
        "long attribute name",
        {"mappings": [{"from": "a", "to": "é" * 76}]},
        '"mappings[0].to": attribute names may be at most 150 bytes',
    ),
    (
        "too many mappings",
        {"mappings": [{"from": f"f{i}", "to": f"t{i}"} for i in range(301)]},
        '"mappings" may have at most 300 entries',
    ),
    ("region", {"region": "de"}, '"region" must be one of "us", "eu", got string "de"'),
    ("siteId empty", {"siteId": ""}, '"siteId" must not be empty'),
    ("apiKey number", {"apiKey": 12345}, '"apiKey" must be a string, got a number (the value is not shown)'),
    ("no site id", {"siteId": None}, 'no site id: set "siteId" in the configuration or the CIO_SITE_ID'),
    ("no api key", {"apiKey": None}, 'no API key: set "apiKey" in the configuration or the CIO_API_KEY'),
    ("ftp url", {"baseUrl": "ftp://example.com"}, '"baseUrl" must be an absolute http:// or https:// URL'),
    ("relative url", {"baseUrl": "track.customer.io"}, '"baseUrl" must be an absolute http:// or https:// URL'),
    ("bad port", {"baseUrl": "https://example.com:port"}, '"baseUrl" is not a valid URL'),
    (
        "userinfo",
        {"baseUrl": "https://user:pw@example.com"},
        '"baseUrl" must not contain a user name or password',
    ),
    ("query", {"baseUrl": "https://example.com/?a=1"}, '"baseUrl" must not have a query or fragment'),
    ("empty query", {"baseUrl": "http://127.0.0.1:9?"}, '"baseUrl" must not have a query or fragment'),
    ("empty fragment", {"baseUrl": "http://127.0.0.1:9/#"}, '"baseUrl" must not have a query or fragment'),
    (
        "tab",
        {"baseUrl": "http://127.0.0.1:9/a\tb"},
        "\"baseUrl\" must not contain spaces or control characters: '\\t' at character 21",
    ),
    (
        "line break",
        {"baseUrl": "https://example.com\n"},
        "\"baseUrl\" must not contain spaces or control characters: '\\n' at character 20",
    ),
    (
        "space",
        {"baseUrl": "https://example.com/a b"},
        "\"baseUrl\" must not contain spaces or control characters: ' ' at character 22",
    ),
    (
        "plain http",
        {"baseUrl": "http://track.customer.io"},
        '"baseUrl" uses plain http:// to track.customer.io, which would send the API key unencrypted',
    ),
    ("plain http private", {"baseUrl": "http://192.168.1.10:8080"}, '"baseUrl" uses plain http:// to 192.168.1.10'),
]


@pytest.mark.parametrize(("overrides", "message"), [c[1:] for c in CONFIG_CASES], ids=[c[0] for c in CONFIG_CASES])
def test_config_refusals(emulator: Emulator, files: Files, overrides: dict[str, Any], message: str) -> None:
    stderr = refused(emulator, files, config_dict(emulator.url, **overrides))
    assert f"configuration.json: {message}" in stderr
    assert stderr.startswith("cio-sync: error: ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not valid JSON: Expecting value at line 1 column 1"),
        ('{"parallelism": 2,}', "not valid JSON: Expecting property name enclosed in double quotes at line 1"),
        ("[]", "the configuration must be an object, got array"),
        ("null", "the configuration must be an object, got null"),
        ('{"mappings": [{"value": Infinity, "to": "b"}]}', "not valid JSON: Infinity is not a JSON number"),
    ],
)
def test_config_files_that_are_not_a_json_object(emulator: Emulator, files: Files, text: str, message: str) -> None:
    assert f"configuration.json: {message}" in refused(emulator, files, text)


def test_a_constant_too_large_for_json_is_refused(emulator: Emulator, files: Files) -> None:
    text = json.dumps(config_dict(emulator.url, mappings=[{"value": "@@", "to": "b"}])).replace('"@@"', "1e400")
    assert 'configuration.json: "mappings[0].value" is a number too large' in refused(emulator, files, text)


def test_a_constant_holding_a_number_too_large_for_json_is_refused(emulator: Emulator, files: Files) -> None:
    text = json.dumps(config_dict(emulator.url, mappings=[{"value": "@@", "to": "b"}]))
    text = text.replace('"@@"', '{"scores": [1, 1e400]}')
    assert 'configuration.json: "mappings[0].value" holds a number too large' in refused(emulator, files, text)


def test_config_that_is_not_utf8(emulator: Emulator, files: Files) -> None:
    path = files.root / "configuration.json"
    path.write_bytes(b'{"userId": "\xff"}')
    run = run_cli(["--config", str(path), "--data", files.data(VALID_DATA)])
    assert run.code == 2
    assert "configuration.json: is not UTF-8 text" in run.stderr
    assert emulator.requests() == []


def test_missing_config_file(emulator: Emulator, files: Files) -> None:
    run = run_cli(["--config", str(files.root / "nope.json"), "--data", files.data(VALID_DATA)])
    assert run.code == 2
    assert "nope.json: no such configuration file" in run.stderr


def test_config_path_is_a_directory(emulator: Emulator, files: Files) -> None:
    run = run_cli(["--config", str(files.root), "--data", files.data(VALID_DATA)])
    assert run.code == 2
    assert "is a directory, not a configuration file" in run.stderr


def test_the_api_key_is_never_echoed_even_when_wrong(emulator: Emulator, files: Files) -> None:
    stderr = refused(emulator, files, config_dict(emulator.url, apiKey=["sk-live-SECRET-6f1d9c"]))
    assert '"apiKey" must be a string, got an array (the value is not shown)' in stderr


DATA_CASES: list[tuple[str, bytes, str]] = [
    ("empty", b"", "the data file is empty; it must be a JSON array of objects"),
    ("blank", b"  \n\t ", "the data file is empty"),
    (
        "object",
        b'{"id": 1}\n{"id": 2}',
        "must be a JSON array of objects, but the file holds an object (for one object per line, use --format ndjson)",
    ),
    ("string", b'"users"', "must be a JSON array of objects, but the file holds a string"),
    ("number", b"42", "must be a JSON array of objects, but the file holds a number"),
    ("null", b"null", "must be a JSON array of objects, but the file holds null"),
    ("garbage", b"id,name\n1,Ada\n", "must be a JSON array of objects, but the file is not JSON"),
    ("boolean", b"true", "must be a JSON array of objects, but the file holds a boolean"),
    ("not null", b"nope", "must be a JSON array of objects, but the file is not JSON"),
    ("not true", b"trux", "must be a JSON array of objects, but the file is not JSON"),
    ("not false", b"falsey", "must be a JSON array of objects, but the file is not JSON"),
    ("truncated", b'[{"id": 1}, {"id": 2', "not valid JSON after 1 complete record: the file ends inside a record"),
    ("unclosed", b'[{"id": 1}, ', "not valid JSON after 1 complete record: the file ends before the array is closed"),
    ("trailing", b'[{"id": 1}] [{"id": 2}]', "after 1 complete record: more follows the array's closing bracket"),
    ("unbalanced", b'[{"id": 1}, {"id": 2]}]', "not valid JSON after 1 complete record:"),
    ("not utf-8 between records", b'[{"id": 1}, \xff{"id": 2}]', "not valid JSON after 1 complete record:"),
    ("bad token", b'[{"id": 1}, {id: 2}]', "not valid JSON after 1 complete record:"),
    ("trailing comma", b'[{"id": 1},]', "not valid JSON after 1 complete record:"),
]


@pytest.mark.parametrize(("data", "message"), [c[1:] for c in DATA_CASES], ids=[c[0] for c in DATA_CASES])
def test_data_file_refusals(emulator: Emulator, files: Files, data: bytes, message: str) -> None:
    stderr = refused(emulator, files, config_dict(emulator.url), data)
    assert "data.json: " in stderr
    assert message in stderr


def test_a_late_syntax_error_stops_the_run_before_anything_is_sent(emulator: Emulator, files: Files) -> None:
    body = b"[" + b",".join(b'{"id": %d, "name": "n"}' % i for i in range(5000)) + b", oops]"
    stderr = refused(emulator, files, config_dict(emulator.url), body)
    assert "not valid JSON after 5,000 complete records" in stderr or "after 5000 complete records" in stderr


def test_missing_data_file(emulator: Emulator, files: Files) -> None:
    run = run_cli(["--config", files.config(config_dict(emulator.url)), "--data", str(files.root / "none.json")])
    assert run.code == 2
    assert "none.json: no such data file" in run.stderr
    assert emulator.requests() == []


def test_empty_stdin(emulator: Emulator, files: Files) -> None:
    run = run_cli(["--config", files.config(config_dict(emulator.url)), "--data", "-"], input=b"")
    assert run.code == 2
    assert "<stdin>: the data file is empty" in run.stderr
    assert emulator.requests() == []


# The words around the option are click's, and differ between its releases.
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "d.json"], ("Missing option", "'--config'")),
        (["--config", "c.json"], ("Missing option", "'--data'")),
        (["--config", "c.json", "--data", "d.json", "--retries", "-1"], ("Invalid value for", "'--retries'")),
        (["--config", "c.json", "--data", "d.json", "--frobnicate"], ("No such option", "--frobnicate")),
    ],
)
def test_bad_arguments(emulator: Emulator, args: list[str], message: tuple[str, str]) -> None:
    run = run_cli(args)
    assert run.code == 2
    assert all(part in run.stderr for part in message), run.stderr
    assert emulator.requests() == []


def test_bad_base_url_option(emulator: Emulator, files: Files) -> None:
    config = files.config(config_dict(emulator.url))
    run = run_cli(["--config", config, "--data", files.data(VALID_DATA), "--base-url", "http://example.com"])
    assert run.code == 2
    assert "--base-url uses plain http:// to example.com" in run.stderr
    assert emulator.requests() == []

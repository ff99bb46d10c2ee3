"""The emulator against the Track API's rules as the spec states them, spoken to over plain HTTP."""

from __future__ import annotations

import ast
import json
import re
import signal
import socket
import subprocess
import sys
import time
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from cio_sync.emulator import Choices, Emulator, Endpoint, Fault

from .conftest import wait_until

# These tests send what the spec refuses, on purpose.
SENDS_OFF_CONTRACT = True
AUTH = ("demo-site", "demo-key")
ROOT = Path(__file__).resolve().parent.parent


def put(
    emu: Emulator, segment: str, body: Any = None, *, raw: bytes | None = None, timeout: float = 10
) -> requests.Response:
    data = raw if raw is not None else json.dumps(body if body is not None else {"name": "Ada"}).encode()
    return requests.put(f"{emu.url}/api/v1/customers/{segment}", data=data, auth=AUTH, timeout=timeout)


def batch(emu: Emulator, items: list[Any] | None = None, *, raw: bytes | None = None) -> requests.Response:
    data = raw if raw is not None else json.dumps({"batch": items}).encode()
    return requests.post(f"{emu.url}/api/v2/batch", data=data, auth=AUTH, timeout=10)


def item(attributes: dict[str, Any] | None = None, **identifiers: str) -> dict[str, Any]:
    return {"type": "person", "action": "identify", "identifiers": identifiers, "attributes": attributes or {}}


@pytest.fixture
def emu() -> Any:
    with Emulator() as emulator:
        yield emulator


# -- independence ---------------------------------------------------------------------------------


def test_the_emulator_imports_nothing_from_the_client_side() -> None:
    package = ROOT / "cio_sync" / "emulator"
    imported: list[str] = []
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level > 1 or (node.level == 0 and (node.module or "").startswith("cio_sync")):
                    imported.append(f"{path.name}: from {'.' * node.level}{node.module}")
            elif isinstance(node, ast.Import):
                imported += [f"{path.name}: import {a.name}" for a in node.names if a.name.startswith("cio_sync")]
    assert imported == []
    assert len(list(package.glob("*.py"))) >= 5


# -- limits (info, "Customer limits"; batch.description) -------------------------------------------


def test_an_id_of_150_bytes_is_taken_and_151_refused_with_the_v1_error_shape(emu: Emulator) -> None:
    assert put(emu, "é" * 75).status_code == 200
    refused = put(emu, "é" * 75 + "x")
    assert refused.status_code == 400
    assert refused.json() == {"meta": {"errors": ["id cannot be longer than 150 bytes"]}}
    assert list(emu.people()) == ["é" * 75]


def test_an_empty_id_is_refused(emu: Emulator) -> None:
    assert put(emu, "").status_code == 400
    assert emu.people() == {}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"n" * 151: 1}, "attribute name cannot be longer than 150 bytes"),
        ({"bio": "ü" * 500 + "x"}, "value for attribute 'bio' cannot be longer than 1000 bytes"),
        ({"tags": ["x" * 997]}, "value for attribute 'tags' cannot be longer than 1000 bytes"),
        ({f"a{i}": i for i in range(301)}, "cannot identify more than 300 attributes in one request"),
    ],
)
def test_attribute_limits_refuse_with_400(emu: Emulator, body: dict[str, Any], message: str) -> None:
    refused = put(emu, "p", body)
    assert (refused.status_code, refused.json()) == (400, {"meta": {"errors": [message]}})
    assert emu.people() == {}


def test_attribute_limits_are_inclusive(emu: Emulator) -> None:
    body = {"n" * 150: "ü" * 500, "tags": ["x" * 996], **{f"a{i}": i for i in range(298)}}
    assert put(emu, "p", body).status_code == 200
    assert len(emu.people()["p"]) == 300


@pytest.mark.parametrize("transport", ["v1", "batch"])
def test_a_person_holds_at_most_300_attributes(emu: Emulator, transport: str) -> None:
    emu.add_person(id="p", attributes={f"a{i}": i for i in range(299)})
    for body, status in (({"new": 1}, 200), ({"newer": 1}, 400), ({"a0": None, "new": 2}, 200)):
        answer = put(emu, "p", body) if transport == "v1" else batch(emu, [item(body, id="p")])
        assert answer.status_code == (status if transport == "v1" or status == 200 else 207)
    assert len(emu.people()["p"]) == 300
    assert "newer" not in emu.people()["p"]


def _batch_of_size(size: int) -> bytes:
    head = b'{"batch":[{"type":"person","action":"identify","identifiers":{"id":"1"},"attributes":{"n":"'
    tail = b'"}}]}'
    padding = b" " * 100  # whitespace counts on the wire
    return head + b"x" * (size - len(head) - len(tail) - len(padding)) + tail + padding


def test_a_batch_of_499999_bytes_is_taken_and_500000_refused(emu: Emulator) -> None:
    # One item over 32 KB: a 207 proves the size check let the request through.
    assert batch(emu, raw=_batch_of_size(499_999)).status_code == 207
    refused = batch(emu, raw=_batch_of_size(500_000))
    assert refused.status_code == 400
    assert refused.json() == {
        "errors": [
            {"reason": "invalid", "field": "batch", "message": "batch requests must be smaller than 500000 bytes"}
        ]
    }


def _item_of_size(size: int, person: str) -> dict[str, Any]:
    """An item whose compact UTF-8 JSON is ``size`` bytes, mostly accented text."""
    attributes = {f"a{i:02}": "é" * 490 for i in range(32)}
    base = len(json.dumps(item({**attributes, "z": ""}, id=person), separators=(",", ":"), ensure_ascii=False).encode())
    return item({**attributes, "z": "y" * (size - base)}, id=person)


def test_an_item_is_measured_as_compact_utf8_not_as_sent(emu: Emulator) -> None:
    exact = _item_of_size(32_000, "x")
    # Sent with spaces and \u escapes: about 95,000 bytes on the wire, exactly 32,000 compact.
    assert len(json.dumps({"batch": [exact]}).encode()) > 90_000
    assert batch(emu, [exact]).status_code == 200
    answer = batch(emu, [_item_of_size(32_001, "y")])
    assert answer.status_code == 207
    (error,) = answer.json()["errors"]
    assert (error["batch_index"], error["field"]) == (0, "item")
    assert error["message"] == "items cannot be larger than 32000 bytes; this one is 32001"
    assert list(emu.people()) == ["x"]


def test_207_names_each_invalid_item_with_strings_and_applies_the_rest(emu: Emulator) -> None:
    answer = batch(emu, [item(id="ok"), item(id="x" * 151), item({"bio": "b" * 1001}, id="z"), "nope"])
    assert answer.status_code == 207
    errors = answer.json()["errors"]
    assert [e["batch_index"] for e in errors] == [1, 2, 3]
    assert all(isinstance(e[k], str) for e in errors for k in ("reason", "field", "message"))
    assert list(emu.people()) == ["ok"]


@pytest.mark.parametrize("raw", [b"not json", b"[]", b'{"batch": {}}', b""])
def test_a_malformed_batch_is_a_400_in_the_v2_shape(emu: Emulator, raw: bytes) -> None:
    answer = batch(emu, raw=raw)
    assert answer.status_code == 400
    assert set(answer.json()["errors"][0]) == {"reason", "field", "message"}


def test_items_need_exactly_one_identifier(emu: Emulator) -> None:
    both = {"type": "person", "action": "identify", "identifiers": {"id": "1", "email": "a@b.c"}}
    answer = batch(emu, [both, item(phone="+1415")])
    assert [e["field"] for e in answer.json()["errors"]] == ["identifiers", "identifiers"]
    assert emu.people() == {}


# -- identifiers and merging (identify.description, identify._update) ------------------------------


@pytest.mark.parametrize("transport", ["v1", "batch"])
def test_update_never_creates_a_person_and_is_not_stored(emu: Emulator, transport: str) -> None:
    emu.add_person(id="known", attributes={"plan": "pro"})
    for who in ("known", "stranger"):
        body = {"name": who, "_update": True}
        answer = put(emu, who, body) if transport == "v1" else batch(emu, [item(body, id=who)])
        assert answer.status_code == 200
    assert emu.people() == {"known": {"plan": "pro", "name": "known"}}


def test_an_unknown_cio_id_is_dropped_and_a_known_one_updates(emu: Emulator) -> None:
    emu.add_person(id="42", cio_id="a1")
    assert put(emu, "cio_ffff").status_code == 200
    assert batch(emu, [item({"x": 1}, cio_id="ffff")]).status_code == 200
    assert emu.people() == {"42": {}}
    assert put(emu, "cio_a1", {"name": "Ada"}).status_code == 200
    assert batch(emu, [item({"x": 1}, cio_id="a1")]).status_code == 200
    assert emu.people() == {"42": {"name": "Ada", "x": 1}}


def test_a_person_created_by_an_identify_call_is_reached_by_their_cio_id(emu: Emulator) -> None:
    put(emu, "42", {"plan": "free"})
    batch(emu, [item({"x": 1}, email="ada@example.com")])
    cio_ids = [p.cio_id for p in emu.workspace.profiles()]
    assert put(emu, f"cio_{cio_ids[0]}", {"plan": "pro"}).status_code == 200
    assert batch(emu, [item({"x": 2}, cio_id=cio_ids[1])]).status_code == 200
    assert emu.people() == {"42": {"plan": "pro"}, "ada@example.com": {"x": 2}}


def test_a_cio_id_chosen_for_a_person_is_never_given_to_another(emu: Emulator) -> None:
    emu.add_person(id="seeded", cio_id="00000001")
    put(emu, "new")
    assert sorted((p.id, p.cio_id) for p in emu.workspace.profiles()) == [("new", "00000002"), ("seeded", "00000001")]


def test_email_is_case_insensitive_and_id_is_not(emu: Emulator) -> None:
    put(emu, "Ada@Example.com", {"a": 1})
    put(emu, "ada%40EXAMPLE.COM", {"b": 2})
    batch(emu, [item({"c": 3}, email="ADA@example.com")])
    put(emu, "ada", {"n": 1})
    put(emu, "Ada", {"n": 2})
    assert emu.people() == {"Ada@Example.com": {"a": 1, "b": 2, "c": 3}, "ada": {"n": 1}, "Ada": {"n": 2}}


def test_without_email_identifiers_an_address_is_an_id(tmp_path: Path) -> None:
    with Emulator(choices=Choices(email_identifier=False)) as emu:
        put(emu, "Ada@x.com", {"a": 1})
        put(emu, "ada@x.com", {"b": 2})
        refused = batch(emu, [item(email="ada@x.com")])
        assert refused.status_code == 207
        assert refused.json()["errors"][0]["message"] == "email is not enabled as an identifier in this workspace"
        assert emu.people() == {"Ada@x.com": {"a": 1}, "ada@x.com": {"b": 2}}


def test_a_body_identifier_merges_into_the_person_who_holds_it(emu: Emulator) -> None:
    emu.add_person(email="ada@x.com", attributes={"plan": "pro"})
    put(emu, "7", {"email": "ADA@x.com", "name": "Ada"})
    (person,) = emu.workspace.profiles()
    assert (person.id, person.email) == ("7", "ada@x.com")
    assert person.attributes == {"plan": "pro", "email": "ADA@x.com", "name": "Ada"}


def test_identifiers_of_two_people_change_nothing(emu: Emulator) -> None:
    emu.add_person(id="1", email="one@x.com")
    emu.add_person(id="2", email="two@x.com")
    assert put(emu, "1", {"email": "two@x.com", "name": "clash"}).status_code == 200
    assert emu.people() == {"1": {}, "2": {}}


def test_an_older_timestamp_does_not_overwrite_a_newer_one(emu: Emulator) -> None:
    put(emu, "p", {"name": "new", "_timestamp": 200})
    put(emu, "p", {"name": "old", "_timestamp": 100})
    assert emu.people() == {"p": {"name": "new"}}


@pytest.mark.parametrize(
    ("choices", "expected"),
    [
        (Choices(), {"a": None, "b": "", "c": 1}),
        (Choices(null_removes=True), {"b": "", "c": 1}),
        (Choices(empty_removes=True), {"a": None, "c": 1}),
    ],
)
def test_null_and_empty_are_stored_or_remove_as_chosen(choices: Choices, expected: dict[str, Any]) -> None:
    with Emulator(choices=choices) as emu:
        put(emu, "p", {"a": 1, "b": 2, "c": 1})
        put(emu, "p", {"a": None, "b": ""})
        assert emu.people() == {"p": expected}


def test_spec_values_refuse_what_the_spec_does_not_list_in_v1() -> None:
    with Emulator(choices=Choices(spec_values=True)) as emu:
        for value in (1.5, None, [1], {"a": 1}):
            answer = put(emu, "p", {"x": value})
            assert answer.json() == {
                "meta": {"errors": ["value for attribute 'x' must be a string, an integer or a boolean"]}
            }
        assert put(emu, "p", {"x": "s", "y": 1, "z": True, "unsubscribed": False}).status_code == 200
        assert batch(emu, [item({"x": 1.5}, id="q")]).status_code == 200


# -- answers: 401, region -------------------------------------------------------------------------


def test_wrong_credentials_get_401_in_each_endpoints_shape(emu: Emulator) -> None:
    v1 = requests.put(emu.url + "/api/v1/customers/p", json={}, auth=("demo-site", "nope"), timeout=5)
    v2 = requests.post(emu.url + "/api/v2/batch", json={"batch": []}, auth=None, timeout=5)
    assert (v1.status_code, v2.status_code) == (401, 401)
    assert "errors" in v1.json()["meta"] and v2.json()["errors"][0]["message"].startswith("Unauthorized request")
    assert emu.people() == {}


@pytest.mark.parametrize(
    ("region", "url"), [("us", "https://track.customer.io"), ("eu", "https://track-eu.customer.io")]
)
def test_the_region_answer(region: str, url: str) -> None:
    with Emulator(region=region) as emu:
        answer = requests.get(emu.url + "/api/v1/accounts/region", auth=AUTH, timeout=5)
        assert answer.json() == {"url": url, "region": region, "environment_id": 1}


# -- faults -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["2", "0.25", 0.25, "Wed, 21 Oct 2015 07:28:00 GMT", "soon"])
def test_a_status_carries_retry_after_as_given(emu: Emulator, value: str | float) -> None:
    emu.add_fault(status=429, retry_after=value)
    answer = put(emu, "p")
    assert (answer.status_code, answer.headers["Retry-After"]) == (429, str(value))
    assert answer.json() == {"meta": {"errors": ["injected fault"]}}
    assert put(emu, "p").status_code == 200


def test_a_retry_after_date_is_written_at_answer_time(emu: Emulator) -> None:
    emu.add_fault(status=503, retry_after_date=60)
    answer = put(emu, "p")
    ahead = parsedate_to_datetime(answer.headers["Retry-After"]).timestamp() - time.time()
    assert 50 < ahead <= 61


def test_faults_count_down_and_forever_stays(emu: Emulator) -> None:
    emu.add_fault(status=500, times=2)
    assert [put(emu, "p").status_code for _ in range(3)] == [500, 500, 200]
    emu.add_fault("status=502,times=forever")
    assert [put(emu, "p").status_code for _ in range(5)] == [502] * 5
    assert emu.stats()["statuses"] == {"200": 1, "500": 2, "502": 5}


def test_faults_scoped_to_a_person_or_an_endpoint(emu: Emulator) -> None:
    emu.add_fault(status=503, person="Ada@x.com", times=None)
    emu.add_fault(status=400, endpoint="region", times=None)
    assert put(emu, "bob").status_code == 200
    assert put(emu, "ADA@X.COM").status_code == 503
    assert batch(emu, [item(id="c"), item(email="ada@x.com")]).status_code == 503
    assert batch(emu, [item(id="c")]).status_code == 200
    region = requests.get(emu.url + "/api/v1/accounts/region", auth=AUTH, timeout=5)
    assert region.status_code == 400
    assert emu.people() == {"bob": {"name": "Ada"}, "c": {}}


def test_a_drop_before_the_write_applies_nothing(emu: Emulator) -> None:
    emu.add_fault(drop="before")
    with pytest.raises(requests.ConnectionError):
        put(emu, "p")
    assert emu.people() == {}
    assert emu.stats()["dropped"] == 1


def test_a_drop_after_the_write_keeps_the_change(emu: Emulator) -> None:
    emu.add_fault("drop=after,endpoint=batch")
    with pytest.raises(requests.ConnectionError):
        batch(emu, [item({"n": 1}, id="p")])
    assert emu.people() == {"p": {"n": 1}}
    assert emu.writes("p") == 1


def test_a_delayed_write_lands_after_the_client_gave_up(emu: Emulator) -> None:
    emu.add_fault(delay=0.5, person="p")
    with pytest.raises(requests.ReadTimeout):
        put(emu, "p", {"n": 1}, timeout=0.1)
    assert emu.people() == {}
    wait_until(lambda: emu.people() == {"p": {"n": 1}})


def test_a_slow_drip_answer_arrives_in_pieces(emu: Emulator) -> None:
    emu.add_fault(drip=0.02)
    request = (
        b"GET /api/v1/accounts/region HTTP/1.1\r\nHost: x\r\nAuthorization: Basic ZGVtby1zaXRlOmRlbW8ta2V5\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", int(emu.url.rsplit(":", 1)[1])), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        received = b""
        while not received.endswith(b"}"):
            chunk = sock.recv(65536)
            assert chunk
            chunks.append(chunk)
            received += chunk
    assert len(chunks) > 10
    assert json.loads(received.split(b"\r\n\r\n", 1)[1])["region"] == "us"


def test_reject_refuses_one_persons_item_in_a_207(emu: Emulator) -> None:
    emu.add_fault(reject=True, person="cio_x1")
    emu.add_person(id="9", cio_id="x1")
    answer = batch(emu, [item({"a": 1}, id="1"), item({"a": 2}, cio_id="x1")])
    assert answer.status_code == 207
    assert answer.json() == {
        "errors": [{"batch_index": 1, "reason": "invalid", "field": "identifiers", "message": "injected fault"}]
    }
    assert emu.people() == {"1": {"a": 1}, "9": {}}


@pytest.mark.parametrize(
    ("shape", "errors"),
    [
        ("no-index", [{"reason": "invalid", "field": "identifiers", "message": "injected fault"}]),
        (
            "string-index",
            [{"batch_index": "1", "reason": "invalid", "field": "identifiers", "message": "injected fault"}],
        ),
    ],
)
def test_odd_207_shapes(emu: Emulator, shape: str, errors: list[Any]) -> None:
    emu.add_fault(odd_207=shape, person="b")
    answer = batch(emu, [item(id="a"), item(id="b")])
    assert (answer.status_code, answer.json()) == (207, {"errors": errors})
    assert emu.people() == {"a": {}}


def test_a_207_that_is_not_json(emu: Emulator) -> None:
    emu.add_fault(odd_207="not-json")
    answer = batch(emu, [item(id="a"), item(id="b")])
    assert answer.status_code == 207
    with pytest.raises(ValueError, match="Expecting value"):
        answer.json()
    assert emu.people() == {"b": {}}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "a fault needs exactly one of status, drop, delay, drip, reject, odd_207, hints; got none"),
        (
            "status=503,drop=before",
            "a fault needs exactly one of status, drop, delay, drip, reject, odd_207, hints; got status, drop",
        ),
        ("status=abc", "fault key 'status': 'abc' is not a number"),
        ("drop=sideways", "'sideways' is not a valid Drop"),
        ("colour=red", "unknown fault key 'colour'"),
        ("status=503,times=0", "times must be 1 or more"),
        ("reject", "reject needs a person"),
        ("retry-after=1,drop=after", "retry_after goes with a status"),
    ],
)
def test_fault_text_that_makes_no_sense_is_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        Fault.parse(text)


def test_the_same_fault_from_text_json_and_keywords() -> None:
    text = Fault.parse("status=429,retry-after=0.5,person=a/b,endpoint=customers,times=forever")
    keywords = Fault(status=429, retry_after="0.5", person="a/b", endpoint=Endpoint.CUSTOMERS, times=None)
    assert text == keywords == Fault.from_json(text.to_json())


def test_counters(emu: Emulator) -> None:
    emu.add_fault(drop="before")
    with pytest.raises(requests.ConnectionError):
        put(emu, "p")
    put(emu, "p")
    requests.get(emu.url + "/api/v1/accounts/region", auth=AUTH, timeout=5)
    requests.get(emu.url + "/nowhere", auth=AUTH, timeout=5)
    stats = emu.stats()
    assert {k: stats[k] for k in ("requests", "endpoints", "statuses", "dropped", "people", "writes")} == {
        "requests": 4,
        "endpoints": {"customers": 2, "other": 1, "region": 1},
        "statuses": {"200": 2, "404": 1},
        "dropped": 1,
        "people": 1,
        "writes": 1,
    }


# -- the command ----------------------------------------------------------------------------------

# ``cio-sync emulator``, as its own process.
COMMAND = (sys.executable, "-m", "cio_sync", "emulator")
# The same command for a checkout without the ``cio-sync`` script.
MODULE = (sys.executable, "-m", "cio_sync.emulator")


def emulator_command(
    *args: str, timeout: float = 30, command: tuple[str, ...] = COMMAND
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=timeout)


def one_line_error(
    proc: subprocess.CompletedProcess[str], code: int, text: str, prog: str = "cio-sync emulator"
) -> None:
    assert proc.returncode == code
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"{prog}: ")
    assert text in proc.stderr


def test_a_port_in_use_is_one_line_not_a_traceback() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        one_line_error(emulator_command("serve", "--port", str(port)), 1, f"cannot listen on 127.0.0.1:{port}: ")


def test_show_on_a_dead_url_is_one_line() -> None:
    with Emulator() as gone:
        url = gone.url
    one_line_error(emulator_command("show", url), 1, f"cannot reach an emulator at {url}: ")


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["serve", "--bogus"], "unrecognized arguments: --bogus"),
        (["serve", "--port", "http"], "'http' is not a port number"),
        (["serve", "--latency", "-1"], "is not a number of seconds"),
        (["serve", "--fault", "status=abc"], "--fault 'status=abc': fault key 'status': 'abc' is not a number"),
        (["serve", "--region", "mars"], "invalid choice: 'mars'"),
        (["show"], "the following arguments are required: url"),
        (["show", "ftp://x"], "'ftp://x' is not an http:// URL"),
        (["fault", "http://127.0.0.1:9"], "the following arguments are required: SPEC"),
        (["faults", "http://127.0.0.1:9", "nonsense"], "--fault 'nonsense'"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(args: list[str], text: str) -> None:
    one_line_error(emulator_command(*args), 2, text)


def test_the_older_command_line_still_works_and_says_its_own_name() -> None:
    # python -m cio_sync.emulator, and options with no subcommand mean serve.
    one_line_error(
        emulator_command("--port", "http", command=MODULE),
        2,
        "'http' is not a port number",
        "python -m cio_sync.emulator",
    )
    one_line_error(emulator_command("--port", "http"), 2, "'http' is not a port number")


@pytest.mark.parametrize(
    ("people", "message"),
    [
        ('[{"id": "1", "name": "Ada"}]', "person 0: each person is an object with"),
        ('[{"email": 5}]', 'person 0: "id", "email" and "cio_id" are strings'),
        ('[{"id": "1"}, {"id": 7}]', 'person 1: "id", "email" and "cio_id" are strings'),
        ('[{"id": "1", "attributes": [1]}]', 'person 0: "attributes" is an object'),
    ],
)
def test_a_people_file_that_is_wrong_is_one_line(tmp_path: Path, people: str, message: str) -> None:
    path = tmp_path / "people.json"
    path.write_text(people)
    one_line_error(emulator_command("serve", "--people", str(path)), 2, message)


def serve(
    command: tuple[str, ...], port_file: Path, *options: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], str]:
    """Start the emulator command serving; the process and its URL once it listens."""
    proc = subprocess.Popen(
        [*command, "--port-file", str(port_file), *options], stderr=subprocess.PIPE, text=True, env=env
    )
    assert proc.stderr is not None
    announced = proc.stderr.readline()
    url = f"http://127.0.0.1:{port_file.read_text()}"
    assert announced == f"Track API emulator listening on {url}\n"
    return proc, url


@pytest.mark.parametrize("command", [(*COMMAND, "serve"), MODULE], ids=["cio-sync emulator serve", "python -m"])
def test_the_command_serves_faults_people_and_shows_an_aligned_table(tmp_path: Path, command: tuple[str, ...]) -> None:
    port_file, people = tmp_path / "port", tmp_path / "people.json"
    people.write_text(json.dumps([{"id": "1", "email": "ada@x.com", "attributes": {"plan": "pro"}}]))
    options = ("--people", str(people), "--fault", "status=503,retry-after=0.5,person=2", "--null-removes")
    proc, url = serve(command, port_file, *options)
    try:
        added = emulator_command("fault", url, "drop=before,person=long-name-person")
        assert (added.returncode, added.stderr) == (0, "")
        answers = [
            requests.put(f"{url}/api/v1/customers/{p}", json=body, auth=AUTH, timeout=5)
            for p, body in (("2", {}), ("2", {"name": "Bo"}), ("1", {"plan": None, "n": 1}))
        ]
        assert [a.status_code for a in answers] == [503, 200, 200]
        assert answers[0].headers["Retry-After"] == "0.5"
        with pytest.raises(requests.ConnectionError):
            requests.put(f"{url}/api/v1/customers/long-name-person", json={}, auth=AUTH, timeout=5)
        shown = emulator_command("show", url)
        assert shown.returncode == 0
        assert shown.stdout.splitlines() == [
            "id  email      cio_id    attributes",
            '1   ada@x.com  00000001  {"n": 1}',
            '2              00000002  {"name": "Bo"}',
            "2 people; 4 API requests: 2 answered 200, 1 answered 503, 1 dropped",
        ]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize("command", [(*COMMAND, "serve"), MODULE], ids=["cio-sync emulator serve", "python -m"])
def test_ctrl_c_ends_serving_with_exit_130_and_show_into_a_closed_pipe_says_nothing(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    people = tmp_path / "people.json"
    people.write_text(json.dumps([{"id": str(i), "attributes": {"n": i}} for i in range(5000)]))
    proc, url = serve(command, tmp_path / "port", "--people", str(people))
    try:
        # Five thousand lines into a pipe whose reader takes one and leaves.
        shell = 'set -o pipefail 2>/dev/null; "$@" | head -1'
        shown = subprocess.run(
            ["bash", "-c", shell, "sh", *COMMAND, "show", url], capture_output=True, text=True, timeout=60
        )
        assert shown.stdout.startswith("id ") and shown.stdout.count("\n") == 1
        assert (shown.returncode, shown.stderr) == (1, "")
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 130
        assert proc.stderr is not None and "Traceback" not in proc.stderr.read()


def test_the_installed_script_serves_takes_a_sync_and_shows_it_without_an_activated_environment(tmp_path: Path) -> None:
    """``cio-sync emulator serve``, a sync against it, ``faults`` and ``show``: every command by
    the script pip installed, with no virtual environment activated and nothing on the PATH."""
    script = str(Path(sys.executable).parent / "cio-sync")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc, url = serve((script, "emulator", "serve"), tmp_path / "port", "--site-id", "s-1", "--api-key", "k-1", env=env)
    try:
        added = subprocess.run(
            [script, "emulator", "faults", url, "status=400,person=b"],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
        )
        assert (added.returncode, added.stderr) == (0, "")
        config = tmp_path / "c.json"
        config.write_text(
            json.dumps(
                {
                    "parallelism": 2,
                    "userId": "id",
                    "mappings": [{"from": "name", "to": "name"}],
                    "siteId": "s-1",
                    "apiKey": "k-1",
                }
            )
        )
        data = tmp_path / "d.json"
        data.write_text('[{"id": "a", "name": "Ada"}, {"id": "b", "name": "Bo"}]')
        synced = subprocess.run(
            [script, "-config", str(config), "-data", str(data), "--base-url", url],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert synced.returncode == 1, synced.stderr
        assert '(id "b"): failed: HTTP 400: injected fault' in synced.stderr
        shown = subprocess.run([script, "emulator", "show", url], capture_output=True, text=True, env=env, timeout=30)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.splitlines()[1:] == [
            'a          00000001  {"name": "Ada"}',
            "1 person; 3 API requests: 2 answered 200, 1 answered 400",
        ]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_chunked_body_is_read_and_bad_framing_ends_the_connection(
    emu: Emulator, capfd: pytest.CaptureFixture[str]
) -> None:
    chunked = requests.put(f"{emu.url}/api/v1/customers/p", data=iter([b'{"a"', b": 1}"]), auth=AUTH, timeout=5)
    assert chunked.status_code == 200
    assert emu.people() == {"p": {"a": 1}}
    with socket.create_connection(("127.0.0.1", int(emu.url.rsplit(":", 1)[1])), timeout=10) as sock:
        sock.sendall(b"PUT /api/v1/customers/q HTTP/1.1\r\nHost: x\r\nContent-Length: lots\r\n\r\n{}")
        assert sock.recv(1024) == b""
    # A length no read could hold (OverflowError) or no body needs: the connection ends too.
    for framing in (b"Content-Length: 99999999999999999999", b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff"):
        with socket.create_connection(("127.0.0.1", int(emu.url.rsplit(":", 1)[1])), timeout=10) as sock:
            sock.sendall(b"PUT /api/v1/customers/r HTTP/1.1\r\nHost: x\r\n" + framing + b"\r\n\r\n{}")
            assert sock.recv(1024) == b""
    assert emu.people() == {"p": {"a": 1}}
    assert "OverflowError" not in capfd.readouterr().err  # not read, so not failed on

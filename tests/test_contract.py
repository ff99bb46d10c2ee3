"""cio-sync's requests and the emulator's answers against the Track API's published contract, offline.

The contract (``tests/contract/track-api.json``) is extracted from Customer.io's OpenAPI description
by ``tests/contract/extract.py``. Besides these tests, the ``emulator`` fixture checks every request
and answer of every test that uses it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import requests

from cio_sync import sync
from cio_sync.emulator import Emulator
from cio_sync.state.ledger import Ledger

from .conftest import API_KEY, FAST, SITE_ID, make_config
from .contract.check import CONTRACT, KNOWN_DEVIATIONS, answer_problems, check, request_problems
from .contract.extract import PROSE, extract

# These tests send what the spec refuses, on purpose.
SENDS_OFF_CONTRACT = True
AUTH = (SITE_ID, API_KEY)

# Every kind of id (integer, plain, email in two cases, cio_id, reserved characters, non-ASCII) and
# every type of value (string, integer, boolean, decimal, null, array, object).
RECORDS: list[dict[str, Any]] = [
    {"id": 1, "name": "Ada", "computed_ltv": 10},
    {"id": "a/b ?#%", "name": True, "computed_ltv": 12.5},
    {"id": "Grace@Example.com", "name": None, "computed_ltv": [1, "x"]},
    {"id": "grace@example.com", "name": {"first": "Grace"}},
    {"id": "cio_a1", "name": "By cio_id", "computed_ltv": -3},
    {"id": "ü", "name": ""},
    {"id": "n", "name": None},
]


def _prose_keys(node: Any, named: bool = False) -> list[str]:
    if isinstance(node, dict):
        found = [] if named else [k for k in node if k in PROSE]
        return found + [p for k, v in node.items() for p in _prose_keys(v, k == "properties" and not named)]
    if isinstance(node, list):
        return [p for v in node for p in _prose_keys(v)]
    return []


def test_the_contract_holds_the_facts_without_the_prose() -> None:
    assert set(CONTRACT["operations"]) == {"getRegion", "identify", "delete", "suppress", "unsuppress", "batch"}
    assert _prose_keys(CONTRACT) == []
    identify = CONTRACT["paths"]["/api/v1/customers/{identifier}"]["put"]
    assert identify["requestBody"]["content"]["application/json"]["schema"]["properties"]["_update"] == {
        "type": "boolean"
    }


def test_the_contract_is_what_the_extractor_makes_of_the_spec() -> None:
    spec = Path(os.environ.get("TRACK_API_SPEC", Path(__file__).parents[2] / "shared/customerio-track-openapi.json"))
    if not spec.is_file():
        pytest.skip("Customer.io's spec is not at hand (set TRACK_API_SPEC to its path)")
    stored = json.loads((Path(__file__).parent / "contract" / "track-api.json").read_text(encoding="utf-8"))
    assert extract(json.loads(spec.read_text(encoding="utf-8"))) == stored


@pytest.mark.parametrize("mode", ["upsert", "update"])
@pytest.mark.parametrize("transport", ["v1", "batch"])
def test_every_request_cio_sync_sends_meets_the_spec(transport: str, mode: str) -> None:
    with Emulator(SITE_ID, API_KEY) as emu:
        emu.add_person(id="1", cio_id="a1")
        config = make_config(emu.url, transport=transport, mode=mode)
        result = sync(config, RECORDS, http=FAST)
        assert result.synced == len(RECORDS)
        findings = check(emu.requests())
    assert findings.problems == []
    # One write per person: the two records of one email address (in two cases) are merged.
    operation, count = ("identify", len(RECORDS) - 1) if transport == "v1" else ("batch", 1)
    assert findings.checked == {"getRegion": 1, operation: count}
    # What cio-sync sends beyond the spec, exactly: the v1 body's values of other JSON types.
    assert findings.deviations == (KNOWN_DEVIATIONS if transport == "v1" else set())


def test_the_checker_finds_what_the_spec_refuses() -> None:
    with Emulator(SITE_ID, API_KEY) as emu:
        put = f"{emu.url}/api/v1/customers/p"
        requests.put(put, data=b"[1]", auth=AUTH, headers={"Content-Type": "application/json"}, timeout=5)
        requests.put(put, data=b'{"email": 5}', headers={"Content-Type": "text/plain"}, timeout=5)
        two_ids = {"type": "person", "action": "identify", "identifiers": {"id": "1", "email": "a@b.c"}}
        requests.post(f"{emu.url}/api/v2/batch", json={"batch": [two_ids]}, auth=AUTH, timeout=5)
        first, second, third = (request_problems(r) for r in emu.requests())
    assert first == ["(root): [1] is not of type 'object'"]
    assert second == [
        "no HTTP Basic credentials",
        "Content-Type 'text/plain', not application/json",
        "email: 5 is not of type 'string'",
    ]
    assert third and all(p.startswith("batch/0") for p in third)


def test_the_emulators_answers_meet_the_response_schemas() -> None:
    with Emulator(SITE_ID, API_KEY, region="eu") as emu:
        good = {"type": "person", "action": "identify", "identifiers": {"id": "1"}, "attributes": {}}
        bad = {**good, "identifiers": {"id": "x" * 151}}
        answers = [
            requests.get(f"{emu.url}/api/v1/accounts/region", auth=AUTH, timeout=5),
            requests.get(f"{emu.url}/api/v1/accounts/region", auth=("x", "y"), timeout=5),
            requests.put(f"{emu.url}/api/v1/customers/p", json={"a": 1}, auth=AUTH, timeout=5),
            requests.put(f"{emu.url}/api/v1/customers/p", json={"a": "b" * 1001}, auth=AUTH, timeout=5),
            requests.put(f"{emu.url}/api/v1/customers/p", json={}, timeout=5),
            requests.post(f"{emu.url}/api/v2/batch", json={"batch": [good]}, auth=AUTH, timeout=5),
            requests.post(f"{emu.url}/api/v2/batch", json={"batch": [good, bad]}, auth=AUTH, timeout=5),
            requests.post(f"{emu.url}/api/v2/batch", data=b"{", auth=AUTH, timeout=5),
            requests.post(f"{emu.url}/api/v2/batch", json={"batch": []}, timeout=5),
        ]
        received = emu.requests()
    assert [a.status_code for a in answers] == [200, 401, 200, 400, 401, 200, 207, 400, 401]
    assert [answer_problems(r) for r in received] == [[]] * len(answers)


@pytest.mark.parametrize("mode", ["delete", "suppress", "clear"])
@pytest.mark.parametrize("transport", ["v1", "batch"])
def test_every_removal_and_unsuppress_cio_sync_sends_meets_the_spec(tmp_path: Path, transport: str, mode: str) -> None:
    people = [{"id": i, "name": "n", "computed_ltv": i} for i in range(4)]
    with Emulator(SITE_ID, API_KEY) as emu:
        config = make_config(emu.url, transport=transport, whenRemoved=mode, maxRemovals="all")
        for records in (people, people[:2], people):
            with Ledger(str(tmp_path / "state.db"), config) as ledger:
                assert sync(config, records, http=FAST, ledger=ledger).mirror is not None
        findings = check(emu.requests())
    assert findings.problems == []
    if transport == "batch":
        assert set(findings.checked) == {"getRegion", "batch"}
    else:
        operation = {"delete": "delete", "suppress": "suppress", "clear": "identify"}[mode]
        assert findings.checked[operation] >= 2
        assert findings.checked.get("unsuppress", 0) == (2 if mode == "suppress" else 0)


def test_the_emulators_answers_to_delete_suppress_and_unsuppress_meet_the_response_schemas() -> None:
    with Emulator(SITE_ID, API_KEY) as emu:
        people = f"{emu.url}/api/v1/customers"
        answers = [
            requests.delete(f"{people}/p", auth=AUTH, timeout=5),
            requests.delete(f"{people}/{'x' * 151}", auth=AUTH, timeout=5),
            requests.delete(f"{people}/p", timeout=5),
            requests.post(f"{people}/p/suppress", auth=AUTH, timeout=5),
            requests.post(f"{people}/p/unsuppress", auth=AUTH, timeout=5),
            requests.post(f"{people}/p/suppress", timeout=5),
        ]
        received = emu.requests()
    assert [a.status_code for a in answers] == [200, 400, 401, 200, 200, 401]
    assert [answer_problems(r) for r in received] == [[]] * len(answers)
    assert [request_problems(r) for r in received if r.authorization] == [[]] * 4

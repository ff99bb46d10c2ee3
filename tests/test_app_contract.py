"""The App API side: ``verify``'s requests and the emulator's App API answers against the published
contract (``tests/contract/app-api.json``, from Customer.io's description of the App API)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import requests

from cio_sync.emulator import Emulator
from cio_sync.emulator.app import stored_string
from cio_sync.input.config import config_from_dict
from cio_sync.readback import verify

from .conftest import API_KEY, SITE_ID
from .contract.app_check import APP_CONTRACT, app_answer_problems, app_request_problems
from .contract.check import check
from .contract.extract_app import extract

# These tests send what the description refuses, on purpose.
SENDS_OFF_CONTRACT = True
APP_KEY = "app-key-for-contract"
BEARER = {"Authorization": f"Bearer {APP_KEY}"}


def test_the_contract_is_what_the_extractor_makes_of_the_excerpt() -> None:
    default = Path(__file__).parents[2] / "shared/customerio-app-api-excerpt.json"
    spec = Path(os.environ.get("APP_API_SPEC", default))
    if not spec.is_file():
        pytest.skip("the App API excerpt is not at hand (set APP_API_SPEC to its path)")
    assert extract(json.loads(spec.read_text(encoding="utf-8"))) == APP_CONTRACT
    post = APP_CONTRACT["paths"]["/v1/customers/attributes"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["properties"]["ids"]["maxItems"] == 100


def test_every_request_verify_sends_meets_the_contract() -> None:
    records: list[dict[str, Any]] = [
        {"id": 1, "name": "Ada"},
        {"id": "a/b ?#%", "name": True},
        {"id": "Grace@Example.com", "name": None},
        {"id": "cio_00000001", "name": "By cio_id"},
        {"id": "ü", "name": [1.5, {"x": None}]},
    ]
    # No rate limit: a 429 and its resend on a loaded machine would be a fourth request.
    with Emulator(SITE_ID, API_KEY, app_api_key=APP_KEY, app_rate_limit=None) as emu:
        emu.add_person(id="1", email="grace@example.com", attributes={"name": "Ada"})
        document = {
            "parallelism": 2,
            "userId": "id",
            "mappings": [{"from": "name", "to": "name"}],
            "appApiKey": APP_KEY,
            "appBaseUrl": emu.url,
        }
        config = config_from_dict(document, env={}, track_credentials=False)
        result = verify(config, records)
        findings = check(emu.requests())
    assert result.stopped is None and result.checked == 5
    assert findings.problems == []
    assert findings.checked == {"getPeopleById": 3}  # id, email and cio_id: one request each


def test_the_emulators_app_answers_meet_the_response_schemas() -> None:
    with Emulator(SITE_ID, API_KEY, app_api_key=APP_KEY, app_rate_limit=None) as emu:
        emu.add_person(id="7", email="e@x.io", attributes={"n": 1.5, "o": {"b": [True]}, "gone": None})
        emu.add_person(email="only@x.io")
        people = f"{emu.url}/v1/customers/attributes"
        answers = [
            requests.post(people, json={"ids": ["7", "nobody"]}, headers=BEARER, timeout=5),
            requests.post(f"{people}?id_type=email", json={"ids": ["ONLY@x.io"]}, headers=BEARER, timeout=5),
            requests.post(f"{people}?id_type=phone", json={"ids": ["+1"]}, headers=BEARER, timeout=5),
            requests.post(people, json={"ids": []}, headers=BEARER, timeout=5),
            requests.post(people, json={"ids": ["7"]}, headers={"Authorization": "Bearer wrong"}, timeout=5),
            requests.get(f"{emu.url}/v1/customers/7/attributes", headers=BEARER, timeout=5),
            requests.get(f"{emu.url}/v1/customers/nobody/attributes", headers=BEARER, timeout=5),
        ]
        received = emu.requests()
    assert [a.status_code for a in answers] == [200, 200, 400, 400, 401, 200, 404]
    assert [app_answer_problems(r) for r in received] == [[]] * len(answers)
    (found,) = answers[0].json()["customers"]
    # Every attribute a string; a missing id left out; a null not kept.
    assert found["customer"]["attributes"] == {
        "id": "7",
        "email": "e@x.io",
        "cio_id": "00000001",
        "n": "1.5",
        "o": '{"b":[true]}',
    }
    assert answers[1].json()["customers"][0]["customer"]["identifiers"] == {
        "email": "only@x.io",
        "id": None,
        "cio_id": "00000002",
    }


def test_the_checker_finds_what_the_contract_refuses() -> None:
    with Emulator(SITE_ID, API_KEY, app_api_key=APP_KEY) as emu:
        people = f"{emu.url}/v1/customers/attributes"
        requests.post(people, json={"ids": ["1"]}, timeout=5)
        requests.post(f"{people}?id_type=name", json={"ids": [str(i) for i in range(101)]}, headers=BEARER, timeout=5)
        requests.post(people, json={"ids": [1]}, headers=BEARER, timeout=5)
        first, second, third = (app_request_problems(r) for r in emu.requests())
    assert first == ["no bearer token"]
    assert second[0].startswith("id_type (root): 'name' is not one of") and "ids: [" in second[1]
    assert third == ["ids/0: 1 is not of type 'string'"]


def test_the_app_api_answers_429_over_10_a_second_without_retry_after() -> None:
    with Emulator(SITE_ID, API_KEY, app_api_key=APP_KEY) as emu:
        session = requests.Session()
        answers = [
            session.post(f"{emu.url}/v1/customers/attributes", json={"ids": ["1"]}, headers=BEARER, timeout=5)
            for _ in range(5)
        ]
    assert 429 in [a.status_code for a in answers]
    assert all("Retry-After" not in a.headers for a in answers)


@pytest.mark.parametrize(
    ("value", "text"),
    [("x", "x"), (True, "true"), (7, "7"), (1.0, "1"), (1e21, "1000000000000000000000"), (1.5e-7, "0.00000015")],
)
def test_how_the_emulator_stores_values_as_strings(value: object, text: str) -> None:
    assert stored_string(value) == text

"""Requests and answers checked against the Track API's published contract (``track-api.json``).

Every request is matched to its operation (getRegion, identify, batch; or the App API's, checked
by :mod:`.app_check`) and checked against the
spec's path, parameter, security and request body schema; every answer the emulator gave without
an injected fault against the response schema the spec gives for its status.

Where cio-sync knowingly sends more than the spec lists, the difference is named in
:data:`KNOWN_DEVIATIONS` and counted, not failed; anything else is a problem.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from cio_sync.emulator import ReceivedRequest

from .app_check import app_answer_problems, app_operation_of, app_request_problems, find_operation, schema_errors

BASE = "urn:cio-sync:track-api"


def _load() -> dict[str, Any]:
    contract: dict[str, Any] = json.loads(Path(__file__).with_name("track-api.json").read_text(encoding="utf-8"))
    # The spec's one known defect: the identifier parameter is a oneOf of three plain strings, so
    # every value matches two of them and a strict reading refuses every request. Read it as anyOf.
    parameter = contract["components"]["parameters"]["track_customer_id"]["schema"]
    parameter["anyOf"] = parameter.pop("oneOf")
    return contract


CONTRACT = _load()
_REGISTRY: Registry[Any] = Registry().with_resource(BASE, DRAFT202012.create_resource(CONTRACT))

# identify's body lists custom attribute values as string, integer or boolean. cio-sync sends each
# mapped value with its JSON type, so these go beyond it (docs/emulator.md says so to users).
KNOWN_DEVIATIONS = {
    "identify: an attribute value that is a number with a decimal point",
    "identify: an attribute value that is null",
    "identify: an attribute value that is an array",
    "identify: an attribute value that is an object",
}
# The v1 operations on one person, named by the identifier after this prefix.
_ON_A_PERSON = ("identify", "delete", "suppress", "unsuppress")
_PEOPLE = "/api/v1/customers/"
_KINDS = {float: "a number with a decimal point", type(None): "null", list: "an array", dict: "an object"}


@dataclass
class Findings:
    """What checking some requests found."""

    problems: list[str] = field(default_factory=list)
    deviations: set[str] = field(default_factory=set)
    # Requests checked, by operation.
    checked: dict[str, int] = field(default_factory=dict)


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


# One validator for each schema, kept: every emulator of every test is checked, thousands of
# requests in all, and a validator is built (and its $ref followed) far more slowly than it runs.
@functools.cache
def _validator(*parts: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"{BASE}#/{_pointer(*parts)}"}, registry=_REGISTRY)


def operation_of(method: str, target: str) -> tuple[str, str] | None:
    """The operation name and its spec path for a request, or None."""
    return find_operation(CONTRACT["operations"], method, target)


def check(requests: list[ReceivedRequest]) -> Findings:
    """Check each request against its operation's request contract, and each answer against its response."""
    findings = Findings()
    for request in requests:
        found = operation_of(request.method, request.target)
        app_found = app_operation_of(request.method, request.target) if found is None else None
        if app_found is not None:
            findings.checked[app_found[0]] = findings.checked.get(app_found[0], 0) + 1
            where = f"{app_found[0]} {request.method} {request.target[:80]}"
            findings.problems += [f"{where}: {p}" for p in app_request_problems(request)]
            findings.problems += [f"{where}: answer {request.status}: {p}" for p in app_answer_problems(request)]
            continue
        if found is None:
            findings.problems.append(f"{request.method} {request.target}: no operation of the spec")
            continue
        findings.checked[found[0]] = findings.checked.get(found[0], 0) + 1
        where = f"{found[0]} {request.method} {request.target[:80]}"
        findings.problems += [f"{where}: {p}" for p in request_problems(request, findings.deviations)]
        findings.problems += [f"{where}: answer {request.status}: {p}" for p in answer_problems(request)]
    return findings


def request_problems(request: ReceivedRequest, deviations: set[str] | None = None) -> list[str]:
    """How ``request`` departs from its operation's contract; known deviations go to ``deviations``."""
    found = operation_of(request.method, request.target)
    if found is None:
        return ["no operation of the spec"]
    return _request_problems(*found, request, deviations if deviations is not None else set())


def answer_problems(request: ReceivedRequest) -> list[str]:
    """How the emulator's answer to ``request`` departs from the response the spec gives (faults aside)."""
    found = operation_of(request.method, request.target)
    return _answer_problems(*found, request) if found else []


def _request_problems(name: str, path: str, request: ReceivedRequest, deviations: set[str]) -> list[str]:
    method = CONTRACT["operations"][name]["method"]
    operation = CONTRACT["paths"][path][method]
    problems = []
    # security: Tracking-API-Key, HTTP basic.
    scheme = CONTRACT["components"]["securitySchemes"]["Tracking-API-Key"]
    auth = request.authorization or ""
    if scheme["scheme"] != "basic" or not auth.startswith("Basic ") or b":" not in base64.b64decode(auth[6:] or "="):
        problems.append("no HTTP Basic credentials")
    if name in _ON_A_PERSON:
        segment = request.target.split("?", 1)[0].removeprefix(_PEOPLE).split("/", 1)[0]
        errors = schema_errors(_validator("components", "parameters", "track_customer_id", "schema"), unquote(segment))
        problems += [f"identifier {e}" for e in errors]
    body_spec = operation.get("requestBody")
    if body_spec is None:
        if request.raw:
            problems.append("a body where the operation takes none")
        return problems
    if "application/json" not in (request.content_type or ""):
        problems.append(f"Content-Type {request.content_type!r}, not application/json")
    try:
        body = json.loads(request.raw)
    except ValueError:
        return [*problems, "the body is not JSON"]
    if name == "identify" and isinstance(body, dict):
        body = _note_deviations(body, operation, deviations)
    schema = ("paths", path, method, "requestBody", "content", "application/json", "schema")
    return problems + schema_errors(_validator(*schema), body)


def _note_deviations(body: dict[str, Any], operation: dict[str, Any], deviations: set[str]) -> dict[str, Any]:
    """``body`` with the known deviations recorded and replaced by values the spec lists."""
    named = operation["requestBody"]["content"]["application/json"]["schema"]["properties"]
    checked = copy.copy(body)
    for key, value in body.items():
        if key not in named and type(value) in _KINDS:
            deviations.add(f"identify: an attribute value that is {_KINDS[type(value)]}")
            checked[key] = ""
    return checked


def _answer_problems(name: str, path: str, request: ReceivedRequest) -> list[str]:
    if request.status is None or request.fault is not None or request.answer is None:
        return []
    method = CONTRACT["operations"][name]["method"]
    responses = CONTRACT["paths"][path][method]["responses"]
    key = str(request.status)
    if key in responses:
        parts: tuple[str, ...] = ("paths", path, method, "responses", key)
        response = responses[key]
    elif request.status == 429:
        # No operation lists 429, but the spec's introduction says going over the rate limit "may
        # lead to throttling": the emulator's --rate-limit answers it, with no body promised.
        return []
    elif request.status == 400 and name in _ON_A_PERSON:
        # identify, delete, suppress and unsuppress list no 400; the v1 operations that do share this one.
        parts, response = ("components", "responses", "400"), CONTRACT["components"]["responses"]["400"]
    else:
        return [f"status {request.status} is not an answer the spec gives to {name}"]
    if "$ref" in response:
        parts = tuple(response["$ref"].removeprefix("#/").split("/"))
        response = CONTRACT
        for part in parts:
            response = response[part]
    try:
        answer = json.loads(request.answer)
    except ValueError:
        return ["the answer is not JSON"]
    content = response.get("content")
    if content is None:
        # 200 (components.responses.200): "A successful request returns an empty object response".
        return [] if request.status != 200 or answer == {} else [f"a 200 answer that is not {{}}: {answer}"]
    return schema_errors(_validator(*parts, "content", "application/json", "schema"), answer)

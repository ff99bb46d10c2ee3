"""Requests to the App API and the emulator's answers, against the App API's published contract
(``app-api.json``, extracted from Customer.io's description by ``extract_app.py``).

A request is matched to ``getPeopleById`` or ``getPersonAttributes`` and checked for its bearer
key, its ``id_type`` and its body; an answer the emulator gave without an injected fault against
the response the description gives for its status.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from jsonschema import Draft202012Validator

from cio_sync.emulator import ReceivedRequest

APP_CONTRACT: dict[str, Any] = json.loads(Path(__file__).with_name("app-api.json").read_text(encoding="utf-8"))


def schema_errors(validator: Draft202012Validator, instance: Any) -> list[str]:
    """Each way ``instance`` fails ``validator``, where and why."""
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:200]}" for e in validator.iter_errors(instance)
    ]


def _errors(schema: dict[str, Any], instance: Any) -> list[str]:
    return schema_errors(_validator_of(json.dumps(schema, sort_keys=True)), instance)


@functools.cache
def _validator_of(schema: str) -> Draft202012Validator:
    """One validator for each schema (as JSON text), kept: they are built far more slowly than they run."""
    return Draft202012Validator(json.loads(schema))


@functools.cache
def _pattern(path: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$")


def find_operation(operations: dict[str, Any], method: str, target: str) -> tuple[str, str] | None:
    """The name and spec path of the operation of ``operations`` a request is for, or None."""
    path = target.split("?", 1)[0]
    for name, operation in operations.items():
        if method.lower() == operation["method"] and _pattern(operation["path"]).match(path):
            return name, operation["path"]
    return None


def app_operation_of(method: str, target: str) -> tuple[str, str] | None:
    """The App API operation name and its path for a request, or None."""
    return find_operation(APP_CONTRACT["operations"], method, target)


def _operation(name: str, path: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    method = APP_CONTRACT["operations"][name]["method"]
    item = APP_CONTRACT["paths"][path]
    return item[method], [*item.get("parameters", []), *item[method].get("parameters", [])]


def app_request_problems(request: ReceivedRequest) -> list[str]:
    """How ``request`` departs from its App API operation's contract."""
    found = app_operation_of(request.method, request.target)
    if found is None:
        return ["no operation of the App API's description"]
    operation, parameters = _operation(*found)
    problems = []
    scheme = APP_CONTRACT["components"]["securitySchemes"]["Bearer-Auth"]
    auth = request.authorization or ""
    if scheme["scheme"] != "bearer" or not auth.startswith("Bearer ") or not auth[7:].strip():
        problems.append("no bearer token")
    query = parse_qs(request.target.partition("?")[2], keep_blank_values=True)
    for parameter in parameters:
        if parameter["in"] != "query":
            continue
        values = query.get(parameter["name"], [])
        if parameter.get("required") and not values:
            problems.append(f"query parameter {parameter['name']} missing")
        problems += [f"{parameter['name']} {e}" for v in values for e in _errors(parameter["schema"], v)]
    body_spec = operation.get("requestBody")
    if body_spec is None:
        return problems + (["a body where the operation takes none"] if request.raw else [])
    if "application/json" not in (request.content_type or ""):
        problems.append(f"Content-Type {request.content_type!r}, not application/json")
    try:
        body = json.loads(request.raw)
    except ValueError:
        return [*problems, "the body is not JSON"]
    return problems + _errors(body_spec["content"]["application/json"]["schema"], body)


def app_answer_problems(request: ReceivedRequest) -> list[str]:
    """How the emulator's answer departs from the response the description gives (faults aside)."""
    found = app_operation_of(request.method, request.target)
    if found is None or request.status is None or request.fault is not None or request.answer is None:
        return []
    operation, _ = _operation(*found)
    response = operation["responses"].get(str(request.status))
    if response is None:
        # No operation lists 401, but Bearer-Auth is their security: a wrong key is refused with it.
        return [] if request.status == 401 else [f"status {request.status} is not an answer {found[0]} gives"]
    content = response.get("content")
    if content is None:
        return []
    try:
        answer = json.loads(request.answer)
    except ValueError:
        return ["the answer is not JSON"]
    return _errors(content["application/json"]["schema"], answer)

"""The App API's read operations as the emulator serves them, from Customer.io's published description
of the App API (``getPeopleById``: ``POST /v1/customers/attributes``; ``getPersonAttributes``:
``GET /v1/customers/{customer_id}/attributes``).

What the description states and this follows: bearer authorization with an App API key; at most
100 ids a request, ``ids`` required (``minItems`` 1, ``maxItems`` 100, strings); ``id_type`` one of
``id``, ``email``, ``phone``, ``cio_id`` (``id`` when absent), ``email`` and ``phone`` answering 400
unless the workspace identifies people by them; "If an ID in the request does not exist, the
response omits it"; 404 for an unknown ``customer_id``; 429 "over the 10-per-second limit", with
no ``Retry-After``; "Attributes are all stored as strings" (structured values as stringified JSON).
Where it is silent (how a number or a null is written), the choice is the emulator's, below.
Nothing here comes from cio-sync's client side.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, unquote

from .httpd import Answer, json_answer
from .rules import CIO_PREFIX, Choices, Endpoint, Identifier, IdKind
from .workspace import Person, Workspace

PREFIX = "/v1/customers"
PEOPLE_PATH = "/v1/customers/attributes"  # getPeopleById
PERSON_SUFFIX = "/attributes"  # getPersonAttributes: /v1/customers/{customer_id}/attributes
# getPeopleById.requestBody ids: "An array of up to 100 customer identifiers".
MAX_IDS = 100
# getPeopleById and getPersonAttributes 429: "Your request is over the 10-per-second limit."
RATE_LIMIT = 10.0
# Requests allowed at once above the rate: a little slack for a client pacing at exactly 10/s.
BURST = 2.0
OVER_LIMIT = "Your request is over the 10-per-second limit."


def serves(path: str) -> bool:
    """Whether ``path`` is the App API's (the Track API's paths all start with /api/)."""
    return path == PREFIX or path.startswith(PREFIX + "/")


def endpoint_of(path: str) -> Endpoint:
    """Which App API operation a path names (for counters and faults)."""
    return Endpoint.APP_PEOPLE if path == PEOPLE_PATH else Endpoint.APP_PERSON


def error(message: str) -> dict[str, Any]:
    """An error answer's body. The description gives error statuses no body; this one says why."""
    return {"meta": {"error": message}}


class AppApi:
    """Answers authorized App API requests that no fault answered, from the workspace."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    def answer(self, method: str, target: str, document: Any, is_json: bool) -> Answer:
        """The answer to ``method target`` with the parsed body ``document``."""
        path, _, query = target.partition("?")
        id_type = parse_qs(query).get("id_type", ["id"])[-1]
        problem = _id_type_problem(id_type, self.workspace.choices)
        if path == PEOPLE_PATH and method == "POST":
            if problem is not None:
                return json_answer(400, error(problem))
            return self._people(IdKind(id_type), document if is_json else None)
        person_id = path[len(PREFIX) + 1 : -len(PERSON_SUFFIX)] if path.endswith(PERSON_SUFFIX) else ""
        if method == "GET" and person_id and "/" not in person_id:
            if problem is not None:
                return json_answer(400, error(problem))
            person = self.workspace.find(Identifier(IdKind(id_type), unquote(person_id)))
            if person is None:
                return json_answer(404, error("The customer_id does not exist."))
            return json_answer(200, {"customer": profile(person)})
        return json_answer(404, error(f"no such operation: {method} {path}"))

    def _people(self, kind: IdKind, document: Any) -> Answer:
        ids = document.get("ids") if isinstance(document, dict) else None
        if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_IDS or not all(isinstance(i, str) for i in ids):
            refused = f"the body must be an object whose ids is an array of 1 to {MAX_IDS} strings"
            return json_answer(400, error(refused))
        customers = []
        seen: set[str] = set()
        for value in ids:
            person = self.workspace.find(Identifier(kind, value))
            if person is not None and person.cio_id not in seen:
                seen.add(person.cio_id)
                customers.append({"customer": profile(person)})
        return json_answer(200, {"customers": customers})

    def people_named(self, target: str, document: Any) -> list[str]:
        """The people a request names, as v1 path values (how faults name people)."""
        path, _, query = target.partition("?")
        id_type = parse_qs(query).get("id_type", ["id"])[-1]
        if path == PEOPLE_PATH:
            ids = document.get("ids") if isinstance(document, dict) else None
            values = [i for i in ids if isinstance(i, str)] if isinstance(ids, list) else []
        else:
            values = [unquote(path[len(PREFIX) + 1 : -len(PERSON_SUFFIX)])]
        return [CIO_PREFIX + v if id_type == IdKind.CIO_ID.value else v for v in values]


def _id_type_problem(id_type: str, choices: Choices) -> str | None:
    if id_type not in {kind.value for kind in IdKind}:
        return "id_type must be one of id, email, phone, cio_id"
    # id_type: "You can use email and phone only if they're enabled as identifiers ... otherwise
    # the request returns 400". This emulator's workspace never identifies people by phone.
    if id_type == IdKind.PHONE.value or (id_type == IdKind.EMAIL.value and not choices.email_identifier):
        return f"{id_type} is not enabled as an identifier in this workspace"
    return None


def profile(person: Person) -> dict[str, Any]:
    """A person as getPeopleById and getPersonAttributes answer one: identifiers, and every
    attribute as a string (the identifiers among them, "by default ... id, email, and cio_id")."""
    attributes: dict[str, Any] = {"id": person.id, "email": person.email, "cio_id": person.cio_id}
    for name, value in person.attributes.items():
        text = stored_string(value)
        if text is not None:
            attributes[name] = text
    customer: dict[str, Any] = {
        "identifiers": {"email": person.email, "id": person.id, "cio_id": person.cio_id},
        "attributes": attributes,
        "devices": [],
    }
    if person.id is not None:
        customer["id"] = person.id  # a string, not nullable: left out for a person without one
    return customer


def stored_string(value: Any) -> str | None:
    """How this workspace keeps a value as the string the App API answers (None: not kept at all).

    Strings as they are; booleans as ``true``/``false``; numbers in plain decimal notation with no
    exponent and no trailing ``.0`` (``12.5``, ``100``, ``0.00000015``); objects and arrays as
    compact JSON with sorted keys; a null is not kept (the attribute is absent).
    """
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = format(Decimal(repr(value)), "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)

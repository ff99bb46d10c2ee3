"""The Track API's operations as the emulator serves them: which operation a request is, getRegion,
identify (v1 PUT), delete (v1 DELETE), suppress and unsuppress (v1 POST), batch (v2 POST) and the
checks on each batch item, per :mod:`.rules`."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import unquote

from . import rules
from .faults import FaultBook, Matched, Odd207
from .httpd import Answer, json_answer
from .rules import Choices, Endpoint, Identifier, Problem
from .workspace import Outcome, Workspace, delete, suppress, unsuppress

# Stands for a body that is not JSON, where the operations look at the body.
_NOT_JSON = object()


@dataclass(frozen=True)
class TrackRequest:
    """One request to the API as it arrived, with what the operations need from it."""

    method: str
    # The request target as sent, query and all; ``path`` is the part before any query.
    target: str
    path: str
    endpoint: Endpoint
    # The v1 path's identifier, percent-decoded (None for other endpoints, or undecodable).
    person_id: str | None
    raw: bytes
    # The body parsed as JSON; its text when it is not JSON; None when empty.
    document: Any
    is_json: bool
    content_type: str | None
    authorization: str | None

    @classmethod
    def read(cls, method: str, target: str, raw: bytes, headers: Message) -> TrackRequest:
        """The request ``method target`` with body ``raw`` and the HTTP ``headers`` it came with."""
        path = target.split("?", 1)[0]
        endpoint = _endpoint(path)
        # The identifier is the one segment after the prefix (suppress and unsuppress add another).
        segment = path[len(rules.PEOPLE_PREFIX) :].split("/", 1)[0]
        person_id = _decode(segment) if endpoint is Endpoint.CUSTOMERS else None
        document, is_json = _parse(raw)
        content_type, authorization = headers.get("Content-Type"), headers.get("Authorization")
        return cls(method, target, path, endpoint, person_id, raw, document, is_json, content_type, authorization)

    @property
    def body(self) -> Any:
        """The body as the operations see it: the parsed JSON, or a marker that it is not JSON."""
        return self.document if self.is_json else _NOT_JSON


class TrackApi:
    """The operations on the workspace, given an authorized request that no fault answered."""

    def __init__(self, workspace: Workspace, faults: FaultBook, region: str, environment_id: int) -> None:
        self.workspace = workspace
        self.faults = faults
        self.region = region
        self.environment_id = environment_id

    def answer(self, request: TrackRequest, odd: Matched | None) -> Answer:
        """The operation's answer; ``odd`` is an ``odd_207`` fault that matched this batch."""
        method, endpoint, path = request.method, request.endpoint, request.path
        if endpoint is Endpoint.REGION and method == "GET":
            return json_answer(200, rules.region_answer(self.region, self.environment_id))
        if endpoint is Endpoint.CUSTOMERS:
            action = rules.person_action(method, path[len(rules.PEOPLE_PREFIX) :])
            if action == "identify":
                return self._identify(request.person_id, request.body)
            if action is not None:
                return self._act(action, request.person_id)
        if endpoint is Endpoint.BATCH and method == "POST":
            return self._batch(request.raw, request.body, odd)
        return json_answer(404, rules.error_body(endpoint, Problem("path", f"no such operation: {method} {path}")))

    def people_named(self, request: TrackRequest) -> list[str]:
        """The people a request names, as v1 path values, for faults scoped to a person."""
        if request.endpoint is Endpoint.CUSTOMERS:
            return [request.person_id] if request.person_id is not None else []
        items = request.document.get("batch") if isinstance(request.document, dict) else None
        if request.endpoint is not Endpoint.BATCH or not isinstance(items, list):
            return []
        named = []
        for item in items:
            who = rules.item_identifier(item.get("identifiers"), self.choices) if isinstance(item, dict) else None
            if isinstance(who, Identifier):
                named.append(who.as_path())
        return named

    @property
    def choices(self) -> Choices:
        """What the emulator does where the spec is silent."""
        return self.workspace.choices

    def _identify(self, person_id: str | None, body: Any) -> Answer:
        """identify: PUT /api/v1/customers/{identifier}."""

        def refuse(problem: Problem) -> Answer:
            return json_answer(400, rules.error_body(Endpoint.CUSTOMERS, problem))

        if person_id is None:
            return refuse(Problem("identifier", "the identifier is not valid percent-encoded UTF-8"))
        problem = rules.check_id(person_id)
        if problem is not None:
            return refuse(problem)
        if not isinstance(body, dict):
            return refuse(Problem("body", "the request body must be a JSON object"))
        problem = rules.check_attributes(body, self.choices, v1=True)
        if problem is not None:
            return refuse(problem)
        outcome = self.workspace.identify(rules.path_identifier(person_id, self.choices), body)
        if outcome is Outcome.TOO_MANY_ATTRIBUTES:
            return refuse(Problem("attributes", rules.PERSON_ATTRIBUTES))
        return json_answer(200, rules.success())

    def _act(self, action: str, person_id: str | None) -> Answer:
        """delete, suppress or unsuppress the person the v1 path names: 200 whether or not they exist."""
        problem: Problem | None
        if person_id is None:
            person_id, problem = "", Problem("identifier", "the identifier is not valid percent-encoded UTF-8")
        else:
            problem = rules.check_id(person_id)
        if problem is not None:
            return json_answer(400, rules.error_body(Endpoint.CUSTOMERS, problem))
        _ACTIONS[action](self.workspace, rules.path_identifier(person_id, self.choices))
        return json_answer(200, rules.success())

    def _batch(self, raw: bytes, document: Any, odd: Matched | None) -> Answer:
        """batch: POST /api/v2/batch, person identify items."""

        def refuse(problem: Problem) -> Answer:
            return json_answer(400, rules.error_body(Endpoint.BATCH, problem))

        # batch.description: the request "must be smaller than 500kb": measured as it arrived.
        if len(raw) > rules.MAX_BATCH_BYTES:
            return refuse(Problem("batch", f"batch requests must be smaller than {rules.MAX_BATCH_BYTES + 1} bytes"))
        items = document.get("batch") if isinstance(document, dict) else None
        if not isinstance(items, list):
            return refuse(Problem("batch", "the body must be a JSON object whose batch is an array"))
        errors: list[dict[str, Any]] = []
        odd_index: int | None = None
        for index, item in enumerate(items):
            checked = self._item(item)
            if isinstance(checked, Problem):
                errors.append(rules.item_error(index, checked))
                continue
            who, attributes, timestamp, action = checked
            if odd is not None and odd_index is None and (odd.person is None or odd.person == who.as_path()):
                odd_index = index
                continue
            if self.faults.take_item(who.as_path()) is not None:
                errors.append(rules.item_error(index, Problem("identifiers", "injected fault")))
                continue
            if action != "identify":
                _ACTIONS[action](self.workspace, who)
            elif self.workspace.identify(who, attributes, timestamp) is Outcome.TOO_MANY_ATTRIBUTES:
                errors.append(rules.item_error(index, Problem("attributes", rules.PERSON_ATTRIBUTES)))
        if odd is not None:
            assert odd.fault.odd_207 is not None
            return _odd_207(odd.fault.odd_207, odd_index if odd_index is not None else 0)
        return json_answer(207, rules.partial_failure(errors)) if errors else json_answer(200, rules.success())

    def _item(self, item: Any) -> tuple[Identifier, dict[str, Any], int | None, str] | Problem:
        """A batch item's person, attributes, timestamp and action, or why it is refused."""
        if not isinstance(item, dict):
            return Problem("item", "an item must be a JSON object")
        size = rules.compact_size(item)
        if size > rules.MAX_ITEM_BYTES:
            return Problem("item", f"items cannot be larger than {rules.MAX_ITEM_BYTES} bytes; this one is {size}")
        # The batch schema allows many types and actions; the emulator models people's identify,
        # delete, suppress and unsuppress only.
        if item.get("type") != "person":
            return Problem("type", "the emulator accepts person items only")
        action = item.get("action")
        if action not in rules.BATCH_ACTIONS:
            return Problem("action", "the emulator accepts the identify, delete, suppress and unsuppress actions only")
        who = rules.item_identifier(item.get("identifiers"), self.choices)
        if isinstance(who, Problem):
            return who
        problem = rules.check_id(who.value)
        if problem is not None:
            return Problem("identifiers", problem.message)
        attributes = item.get("attributes", {})
        problem = rules.check_attributes(attributes, self.choices, v1=False)
        if problem is not None:
            return problem
        timestamp = item.get("timestamp")
        return who, attributes, timestamp if type(timestamp) is int else None, str(action)


# The v1 operations and batch actions that act on a person without attributes.
_ACTIONS: dict[str, Callable[[Workspace, Identifier], object]] = {
    "delete": delete,
    "suppress": suppress,
    "unsuppress": unsuppress,
}


def same_person(choices: Choices) -> Callable[[str, str], bool]:
    """Whether two v1 path values (as faults name people) name the same person in the workspace."""

    def same(a: str, b: str) -> bool:
        return rules.path_identifier(a, choices).key == rules.path_identifier(b, choices).key

    return same


def _odd_207(shape: Odd207, index: int) -> Answer:
    problem = Problem("identifiers", "injected fault")
    if shape is Odd207.NOT_JSON:
        return Answer(207, b"Multi-Status: some items were refused", "text/plain")
    entry = rules.item_error(index, problem)
    if shape is Odd207.NO_INDEX:
        del entry["batch_index"]
    else:
        entry["batch_index"] = str(index)
    return json_answer(207, rules.partial_failure([entry]))


def _endpoint(path: str) -> Endpoint:
    if path == rules.REGION_PATH:
        return Endpoint.REGION
    if path == rules.BATCH_PATH:
        return Endpoint.BATCH
    if path.startswith(rules.PEOPLE_PREFIX):
        return Endpoint.CUSTOMERS
    return Endpoint.OTHER


def _decode(segment: str) -> str | None:
    try:
        return unquote(segment, errors="strict")
    except UnicodeDecodeError:
        return None


def _parse(raw: bytes) -> tuple[Any, bool]:
    """The body as JSON and True; else its text (None when empty) and False."""
    if not raw:
        return None, False
    try:
        return json.loads(raw), True
    except ValueError:
        return raw.decode("utf-8", "replace"), False

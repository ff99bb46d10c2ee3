"""The emulator's admin paths, for another process to read and steer it (the demo, ``make bench``,
``python -m cio_sync.emulator show``): ``GET /_emulator/people``, ``GET /_emulator/stats``,
``PATCH /_emulator/people/{person}`` (edit a person's attributes, as in the workspace's UI),
``GET|POST|DELETE /_emulator/faults`` and ``POST /_emulator/reset``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from .faults import Fault, FaultBook
from .httpd import Answer, json_answer
from .rules import path_identifier
from .workspace import Person, Workspace, edit

PREFIX = "/_emulator/"


class Admin:
    """Answers the admin paths from the workspace and the faults, and with the emulator's
    ``stats`` and ``reset``."""

    def __init__(
        self,
        workspace: Workspace,
        faults: FaultBook,
        stats: Callable[[], dict[str, Any]],
        reset: Callable[[], None],
    ) -> None:
        self._workspace = workspace
        self._faults = faults
        self._stats = stats
        self._reset = reset

    def answer(self, method: str, path: str, raw: bytes) -> Answer:
        """The answer to ``method path`` with body ``raw``; 404 for a path it does not serve."""
        if path == "/_emulator/people" and method == "GET":
            return json_answer(200, [_profile(p) for p in self._workspace.profiles()])
        if path.startswith("/_emulator/people/") and method == "PATCH":
            return self._edit(path[len("/_emulator/people/") :], raw)
        if path == "/_emulator/stats" and method == "GET":
            return json_answer(200, self._stats())
        if path == "/_emulator/faults" and method == "GET":
            return json_answer(200, [f.to_json() for f in self._faults.pending()])
        if path == "/_emulator/faults" and method == "DELETE":
            self._faults.clear()
            return json_answer(200, {})
        if path == "/_emulator/faults" and method == "POST":
            try:
                document = json.loads(raw)
                for entry in document if isinstance(document, list) else [document]:
                    self._faults.add(Fault.from_json(entry))
            except (ValueError, TypeError) as e:
                return json_answer(400, {"error": str(e)})
            return json_answer(200, {})
        if path == "/_emulator/reset" and method == "POST":
            self._reset()
            return json_answer(200, {})
        return json_answer(404, {"error": f"no such emulator path: {method} {path}"})

    def _edit(self, segment: str, raw: bytes) -> Answer:
        """``PATCH /_emulator/people/{v1 path value}``: set attributes (null removes one), as a UI edit."""
        attributes, problem = _edit_problem(raw)
        if attributes is None:
            return json_answer(400, {"error": problem})
        who = path_identifier(unquote(segment), self._workspace.choices)
        try:
            edit(self._workspace, who, attributes)
        except KeyError as e:
            return json_answer(404, {"error": str(e.args[0])})
        return json_answer(200, {})


def _edit_problem(raw: bytes) -> tuple[dict[str, Any] | None, str | None]:
    try:
        document = json.loads(raw)
    except ValueError:
        return None, "the body must be a JSON object of attributes"
    if not isinstance(document, dict):
        return None, "the body must be a JSON object of attributes"
    return document, None


def _profile(person: Person) -> dict[str, Any]:
    return {"cio_id": person.cio_id, "id": person.id, "email": person.email, "attributes": person.attributes}

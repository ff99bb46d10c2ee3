"""The emulator's delete, suppress and unsuppress, as the spec describes them, and its faults on them."""

from __future__ import annotations

from typing import Any

import requests

from cio_sync.emulator import Emulator
from cio_sync.emulator.command import summary
from cio_sync.emulator.workspace import suppressed

from .conftest import API_KEY, SITE_ID

AUTH = (SITE_ID, API_KEY)


def v1(emu: Emulator, method: str, path: str, body: dict[str, Any] | None = None) -> int:
    response = requests.request(method, f"{emu.url}/api/v1/customers/{path}", json=body, auth=AUTH, timeout=5)
    return response.status_code


def batch(emu: Emulator, *items: dict[str, Any]) -> requests.Response:
    return requests.post(f"{emu.url}/api/v2/batch", json={"batch": list(items)}, auth=AUTH, timeout=5)


def item(action: str, who: str, **more: Any) -> dict[str, Any]:
    return {"type": "person", "action": action, "identifiers": {"id": who}, **more}


def test_delete_removes_the_person_and_a_later_identify_creates_a_new_one(emulator: Emulator) -> None:
    assert v1(emulator, "PUT", "p", {"a": 1}) == 200
    first = emulator.person("p")
    assert v1(emulator, "DELETE", "p") == 200
    assert emulator.people() == {}
    assert v1(emulator, "DELETE", "p") == 200  # nobody: the same answer
    assert v1(emulator, "PUT", "p", {"b": 2}) == 200
    again = emulator.person("p")
    assert first is not None and again is not None and again.cio_id != first.cio_id
    assert emulator.people() == {"p": {"b": 2}}


def test_a_suppressed_identifier_is_not_added_again_until_unsuppressed(emulator: Emulator) -> None:
    v1(emulator, "PUT", "p", {"a": 1, "email": "p@example.com"})
    assert v1(emulator, "POST", "p/suppress") == 200
    assert emulator.people() == {}
    assert suppressed(emulator.workspace) == ["p", "p@example.com"]  # both of the person's identifiers
    assert v1(emulator, "PUT", "p", {"a": 2}) == 200  # answered, and ignored
    assert v1(emulator, "PUT", "p@example.com", {"a": 2}) == 200
    assert batch(emulator, item("identify", "p", attributes={"a": 3})).status_code == 200
    assert emulator.people() == {}
    assert v1(emulator, "POST", "p@example.com/unsuppress") == 200  # the two go together
    assert suppressed(emulator.workspace) == []
    v1(emulator, "PUT", "p", {"a": 4})
    assert emulator.people() == {"p": {"a": 4}}  # a new profile, none of the old one's attributes


def test_batch_items_delete_suppress_and_unsuppress(emulator: Emulator) -> None:
    batch(emulator, *(item("identify", w, attributes={"a": 1}) for w in ("x", "y", "z")))
    assert batch(emulator, item("delete", "x"), item("suppress", "y")).status_code == 200
    assert sorted(emulator.people()) == ["z"]
    assert suppressed(emulator.workspace) == ["y"]
    assert batch(emulator, item("unsuppress", "y"), item("identify", "y", attributes={"b": 1})).status_code == 200
    assert emulator.people()["y"] == {"b": 1}


def test_faults_apply_to_delete_suppress_and_unsuppress(emulator: Emulator) -> None:
    v1(emulator, "PUT", "p", {"a": 1})
    v1(emulator, "PUT", "q", {"a": 1})
    emulator.add_fault("status=503,person=p,endpoint=customers")
    assert v1(emulator, "DELETE", "p") == 503
    assert "p" in emulator.people()
    emulator.add_fault("drop=after,person=q")
    try:
        v1(emulator, "POST", "q/suppress")
    except requests.ConnectionError:
        pass
    else:
        raise AssertionError("the answer was not dropped")
    assert "q" not in emulator.people() and suppressed(emulator.workspace) == ["q"]  # applied, then dropped
    emulator.add_fault("reject,person=p")
    answer = batch(emulator, item("delete", "p"))
    assert answer.status_code == 207 and "p" in emulator.people()


def test_the_counters_and_show_name_the_suppressed_identifiers(emulator: Emulator) -> None:
    v1(emulator, "POST", "p/suppress")
    stats = emulator.stats()
    assert stats["suppressed"] == ["p"]
    assert summary(0, stats).endswith("; suppressed: p")

"""The comparison rules of ``cio-sync verify``: which App API strings hold which JSON values.

Property tests: a value stringified any faithful way (the emulator's way, JSON's, Python's) always
compares equal; values that differ never do, ``"007"`` against ``"7"`` above all.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from cio_sync.emulator.app import stored_string
from cio_sync.readback import matches

# JSON values as the expected state holds them (json.loads of what was sent): floats for fractions.
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _json_text(value: Any) -> str | None:
    """Stringified as JSON for everything but a string (a null: the attribute is absent)."""
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _python_text(value: Any) -> str | None:
    """Numbers as Python prints them (``1e+16``, ``12.5``), booleans in lower case, nulls as ``null``."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return repr(value)
    return "null" if value is None else _json_text(value)


def _spaced_sorted(value: Any) -> str | None:
    """Structured values with spaces and sorted keys, ASCII-escaped; nulls as ``""``."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, indent=1)


STRINGIFIERS: list[Callable[[Any], str | None]] = [stored_string, _json_text, _python_text, _spaced_sorted]


@pytest.mark.parametrize("stringify", STRINGIFIERS)
@given(value=values)
@example(value=1e2)
@example(value=1.0)
@example(value=10**25)
@example(value="")
@example(value={"b": [1, 2.5, True, None], "a": "é"})
def test_a_value_stringified_faithfully_always_matches(stringify: Callable[[Any], str | None], value: Any) -> None:
    assert matches(value, stringify(value))


@given(st.text(), st.text())
def test_different_strings_never_match(a: str, b: str) -> None:
    assert matches(a, b) == (a == b)


@given(st.integers(min_value=-(10**20), max_value=10**20))
def test_leading_zeros_and_signs_are_differences(n: int) -> None:
    for held in ("0" + str(n), "+" + str(n), " " + str(n), str(n) + " "):
        assert not matches(n, held)
        assert not matches(str(n), held)


@given(st.integers(), st.integers())
def test_different_integers_never_match(a: int, b: int) -> None:
    assert matches(a, str(b)) == (a == b)


@given(st.floats(allow_nan=False, allow_infinity=False), st.floats(allow_nan=False, allow_infinity=False))
def test_different_doubles_never_match(a: float, b: float) -> None:
    assert matches(a, repr(b)) == (a == b)


@pytest.mark.parametrize(
    ("expected", "held", "same"),
    [
        ("007", "7", False),
        ("7", "007", False),
        (7, "7", True),
        (7, "7.0", True),
        (7, "7e0", True),
        (7, "007", False),
        (100, "1e2", True),
        (1.0, "1", True),
        (1.0, "1.0", True),
        (12.5, "12.50", True),
        (0.1, "0.1", True),
        (0.1, "0.10000000000000001", True),  # the same double
        (2**53 + 1, str(2**53), False),  # an integer is compared exactly
        (10**25, "10000000000000000000000000", True),
        (10**25, "1e+25", True),
        (True, "true", True),
        (True, "True", True),
        (True, "1", False),
        (False, "0", False),
        (False, "", False),
        (None, None, True),
        (None, "", True),
        (None, "null", True),
        (None, "None", False),
        (None, "0", False),
        ("", None, True),
        ("", "", True),
        ("x", None, False),
        (0, None, False),
        ("é", unicodedata.normalize("NFD", "é"), False),  # no Unicode normalisation
        ("😀", "😀", True),
        ("a ", "a", False),
        ("A", "a", False),
        ({"a": 1, "b": [True]}, '{"b":[true],"a":1.0}', True),
        ({"a": 1}, '{"a":"1"}', False),
        ({"a": True}, '{"a":1}', False),
        ({"a": 1}, '{"a":1,"b":2}', False),
        ([1, 2], "[2,1]", False),
        ([], "[]", True),
        ([], "", False),
        ({"a": 1}, "not json", False),
        ("[1]", "[1]", True),
        (Decimal("12.5"), "12.5", True),
    ],
)
def test_the_rules(expected: Any, held: str | None, same: bool) -> None:
    assert matches(expected, held) is same


def test_enormous_exponents_are_not_computed() -> None:
    assert not matches(1, "1e999999999")
    assert not matches(math.pi, "3.14e-999999999")

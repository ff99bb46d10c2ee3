"""How a value the file sets is compared with the string the App API answers for it.

The App API stores and answers every attribute as a string, so a comparison has to say which
strings faithfully hold each JSON value the file can set. The rules, per type of the file's value
(the value as cio-sync sent it, after the mapping and its casts):

- **string**: exactly the same string, code point for code point (no trimming, no case folding,
  no Unicode normalisation): ``"007"`` never matches ``"7"``.
- **integer**: a string in JSON number syntax with the same numeric value: ``7`` matches ``"7"``,
  ``"7.0"`` and ``"7e0"``, never ``"007"``, ``" 7"`` or ``"+7"``.
- **number with a fraction or exponent**: JSON number syntax with the same value exactly, or the
  same IEEE-754 double (cio-sync sends doubles, and a workspace may print one in its shortest form):
  ``12.5`` matches ``"12.5"`` and ``"1.25e1"``; ``1e2`` matches ``"100"``.
- **boolean**: ``"true"`` or ``"false"`` in any case; not ``"1"`` or ``"yes"``.
- **null**: the attribute absent, ``""`` or ``"null"`` (how a workspace keeps a null is not
  documented: each of these is a faithful reading, none holds a value).
- **object or array**: a string that parses as JSON and equals the value structurally, by these
  same rules for numbers (key order and spacing do not matter; ``true`` is not ``1``).
- **the empty string**: ``""``, or the attribute absent (a workspace may drop an empty value).

Any other string, and an attribute the workspace lacks, is a difference.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any

# JSON's number grammar (RFC 8259 section 6): no leading zeros, no plus sign, no spaces.
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
# Larger exponents are not numbers any workspace prints; Decimal would compute them for ever.
_MAX_EXPONENT_DIGITS = 5


def matches(expected: Any, held: str | None) -> bool:
    """Whether ``held`` (the App API's string, None when the attribute is absent) holds ``expected``.

    ``expected`` is a JSON value as cio-sync decodes one: str, int, bool, None, ``Decimal`` (or
    float) for a number with a fraction or exponent, list, dict.
    """
    if held is None:
        return expected is None or expected == ""
    if expected is None:
        return held in ("", "null")
    if isinstance(expected, bool):
        return held.lower() == ("true" if expected else "false")
    if isinstance(expected, str):
        return held == expected
    if isinstance(expected, (int, Decimal, float)):
        number = _number(held)
        return number is not None and _same_number(expected, number)
    if isinstance(expected, (dict, list)):
        try:
            parsed = json.loads(held, parse_float=Decimal, parse_int=int)
        except (ValueError, RecursionError):
            return False
        return _same_json(expected, parsed)
    return False


def _number(text: str) -> Decimal | None:
    match = _JSON_NUMBER.fullmatch(text)
    if match is None:
        return None
    exponent = text.lower().partition("e")[2].lstrip("+-")
    if len(exponent) > _MAX_EXPONENT_DIGITS:
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def _same_number(expected: int | Decimal | float, held: Decimal) -> bool:
    if isinstance(expected, float):
        if not math.isfinite(expected):
            return False
        expected = Decimal(repr(expected))
    if held == expected:
        return True
    if isinstance(expected, int):
        # An integer was sent as an integer: it must come back exactly, however large.
        return False
    # A fraction was sent as a double: any text of that same double holds it.
    try:
        return float(held) == float(expected)
    except OverflowError:
        return False


def _same_json(expected: Any, held: Any) -> bool:
    """Structural equality of two decoded JSON values, numbers by value, booleans apart from numbers."""
    if isinstance(expected, bool) or isinstance(held, bool):
        return type(expected) is type(held) and expected == held
    if expected is None or held is None:
        return expected is held
    if isinstance(expected, (int, Decimal, float)):
        if not isinstance(held, (int, Decimal)):
            return False
        return _same_number(expected, Decimal(held))
    if isinstance(expected, str):
        return isinstance(held, str) and expected == held
    if isinstance(expected, list):
        return (
            isinstance(held, list)
            and len(expected) == len(held)
            and all(_same_json(a, b) for a, b in zip(expected, held, strict=True))
        )
    if isinstance(expected, dict):
        return (
            isinstance(held, dict)
            and expected.keys() == held.keys()
            and all(_same_json(value, held[key]) for key, value in expected.items())
        )
    return False


def shown(value: Any) -> str:
    """The file's value as messages and the report show it: compact JSON, non-ASCII as is."""
    # The expected state's fractions are the doubles cio-sync sent, so float() gives their digits back.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=float)

"""The JSON Schemas shipped with cio-sync, and validation errors worded for the user."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

# Values under these keys are never echoed back in a message.
SECRET_KEYS = frozenset({"apiKey"})
# Keywords of our own in the schemas (validators ignore them): common synonyms of a key or an
# enum value, for "did you mean"; and the sentence for a "oneOf" that fails.
HINTS = "x-didYouMean"
MESSAGE = "errorMessage"


def schema_path(name: str) -> Path:
    """Where the schema called ``name`` lives: inside the installed wheel, or in a checkout."""
    packaged = resources.files("cio_sync").joinpath("schemas", name)
    if packaged.is_file():
        return Path(str(packaged))
    # An editable install imports cio_sync from the checkout, where schemas/ sits beside it.
    return Path(__file__).resolve().parents[2] / "schemas" / name


@cache
def load_schema(name: str) -> dict[str, Any]:
    """The parsed schema ``name`` (for example ``config.schema.json``)."""
    with schema_path(name).open(encoding="utf-8") as f:
        schema: dict[str, Any] = json.load(f)
    return schema


@cache
def validator(name: str) -> Draft202012Validator:
    """A validator for the schema ``name``.

    The schema is not checked against its metaschema here: the suite checks every shipped
    schema (tests/test_config.py), and checking it cost every run about 10 ms of start-up.
    """
    return Draft202012Validator(load_schema(name))


def problems(name: str, instance: object) -> list[str]:
    """Every way ``instance`` breaks schema ``name``, one sentence each, in document order."""
    errors = sorted(validator(name).iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path])
    # A "oneOf" says least of all: an object with an unknown key most likely has the key it lacks
    # misspelt, and a value of the wrong type fails it as a matter of course.
    said = {tuple(e.absolute_path) for e in errors if e.validator != "oneOf"}
    return [describe(e) for e in errors if not (e.validator == "oneOf" and tuple(e.absolute_path) in said)]


def location(path: Iterable[str | int]) -> str:
    """A JSON path written as a reader of the file would: ``mappings[2].to``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def describe(error: ValidationError) -> str:
    """One validation error as a sentence that names the key and the problem."""
    where = location(error.absolute_path)
    subject = f'"{where}"' if where else "the configuration"
    secret = any(part in SECRET_KEYS for part in error.absolute_path)
    shown = _kind_only(error.instance) if secret else _show(error.instance)
    kind = error.validator
    rules: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    if kind == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        prefix = f"{where}." if where else ""
        return f'missing required key "{prefix}{missing}"'
    if kind == "additionalProperties":
        allowed = sorted(_as_dict(rules.get("properties")))
        unknown = sorted(set(_as_dict(error.instance)) - set(allowed))
        hints = _as_dict(rules.get(HINTS))
        return "; ".join(_unknown_key(where, key, allowed, hints) for key in unknown)
    if kind == "oneOf" and MESSAGE in rules:
        return f"{subject} {rules[MESSAGE]}"
    if kind == "type":
        return f"{subject} must be {_article(error.validator_value)}, got {shown}"
    if kind in ("minimum", "maximum"):
        low, high = rules.get("minimum"), rules.get("maximum")
        if low is not None and high is not None:
            return f"{subject} must be between {low} and {high}, got {shown}"
        return f"{subject} must be at {'least' if kind == 'minimum' else 'most'} {error.validator_value}, got {shown}"
    if kind in ("minLength", "minItems") and error.validator_value == 1:
        return f"{subject} must not be empty"
    if kind == "maxItems":
        return f"{subject} may have at most {error.validator_value} entries"
    if kind == "enum":
        allowed = _as_list(error.validator_value)
        choices = ", ".join(json.dumps(c) for c in allowed)
        guess = _guess(error.instance, [str(c) for c in allowed], _as_dict(rules.get(HINTS)))
        hint = f' (did you mean "{guess}"?)' if guess else ""
        return f"{subject} must be one of {choices}, got {shown}{hint}"
    return f"{subject}: {error.message}"


def _unknown_key(where: str, key: str, allowed: Sequence[str], hints: Mapping[str, Any]) -> str:
    name = f"{where}.{key}" if where else key
    guess = _guess(key, allowed, hints)
    hint = f' (did you mean "{guess}"?)' if guess else f" (known keys: {', '.join(allowed)})"
    return f'unknown key "{name}"{hint}'


def _guess(given: object, allowed: Sequence[str], hints: Mapping[str, Any]) -> str | None:
    """The allowed word ``given`` was probably meant to be: a listed synonym, or a near spelling."""
    if not isinstance(given, str):
        return None
    hinted = hints.get(given, hints.get(given.lower()))
    if isinstance(hinted, str) and hinted in allowed:
        return hinted
    close = difflib.get_close_matches(given, allowed, n=1) or difflib.get_close_matches(given.lower(), allowed, n=1)
    return close[0] if close else None


_TYPE_NAMES = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "object": "an object",
    "array": "an array",
    "boolean": "true or false",
    "null": "null",
}


def _article(expected: object) -> str:
    if isinstance(expected, list):
        return " or ".join(_TYPE_NAMES.get(str(t), str(t)) for t in expected)
    return _TYPE_NAMES.get(str(expected), str(expected))


def _show(value: object) -> str:
    """A short, typed rendering of a value for a message."""
    kind = json_type(value)
    if value is None or isinstance(value, (dict, list)):
        return kind
    text = json.dumps(value, ensure_ascii=False)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{kind} {text}"


def _kind_only(value: object) -> str:
    """What a secret is, never what it holds: ``a number (the value is not shown)``."""
    return f"{article(value)} (the value is not shown)"


def article(value: object) -> str:
    """The JSON type of a parsed value with its article: "an array", "a string", "null"."""
    kind = json_type(value)
    return kind if kind == "null" else ("an " if kind[0] in "aeiou" else "a ") + kind


def json_type(value: object) -> str:
    """The JSON name of a parsed value's type: object, array, string, number, boolean or null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    return "number"


def _as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else [value]

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


def schema_path(name: str) -> Path:
    """Where the schema called ``name`` lives: inside the installed wheel, or in a checkout."""
    packaged = resources.files("cio_sync").joinpath("schemas", name)
    if packaged.is_file():
        return Path(str(packaged))
    # An editable install imports cio_sync from the checkout, where schemas/ sits beside it.
    return Path(__file__).resolve().parent.parent / "schemas" / name


@cache
def load_schema(name: str) -> dict[str, Any]:
    """The parsed schema ``name`` (for example ``config.schema.json``)."""
    with schema_path(name).open(encoding="utf-8") as f:
        schema: dict[str, Any] = json.load(f)
    return schema


@cache
def validator(name: str) -> Draft202012Validator:
    """A validator for the schema ``name``, checked once."""
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def problems(name: str, instance: object) -> list[str]:
    """Every way ``instance`` breaks schema ``name``, one sentence each, in document order."""
    errors = sorted(validator(name).iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path])
    return [describe(error) for error in errors]


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
    shown = "a value" if secret else _show(error.instance)
    kind = error.validator
    rules: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    if kind == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        prefix = f"{where}." if where else ""
        return f'missing required key "{prefix}{missing}"'
    if kind == "additionalProperties":
        allowed = sorted(_as_dict(rules.get("properties")))
        unknown = sorted(set(_as_dict(error.instance)) - set(allowed))
        return "; ".join(_unknown_key(where, key, allowed) for key in unknown)
    if kind == "type":
        return f"{subject} must be {_article(error.validator_value)}, got {shown}"
    if kind in ("minimum", "maximum"):
        low, high = rules.get("minimum"), rules.get("maximum")
        if low is not None and high is not None:
            return f"{subject} must be between {low} and {high}, got {shown}"
        return f"{subject} must be at {'least' if kind == 'minimum' else 'most'} {error.validator_value}, got {shown}"
    if kind == "minLength" and error.validator_value == 1:
        return f"{subject} must not be empty"
    if kind == "maxItems":
        return f"{subject} may have at most {error.validator_value} entries"
    if kind == "enum":
        choices = ", ".join(json.dumps(c) for c in _as_list(error.validator_value))
        return f"{subject} must be one of {choices}, got {shown}"
    return f"{subject}: {error.message}"


def _unknown_key(where: str, key: str, allowed: Sequence[str]) -> str:
    name = f"{where}.{key}" if where else key
    guess = difflib.get_close_matches(key, allowed, n=1)
    hint = f' (did you mean "{guess[0]}"?)' if guess else f" (known keys: {', '.join(allowed)})"
    return f'unknown key "{name}"{hint}'


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
    if isinstance(value, (dict, list)):
        return kind
    text = json.dumps(value, ensure_ascii=False)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{kind} {text}"


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

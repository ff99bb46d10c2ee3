"""Casting mapped values exactly: timestamps to Unix seconds, text to integers, numbers and booleans."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from enum import Enum


class Cast(str, Enum):
    """What a mapping's ``as`` turns a value into."""

    TIMESTAMP = "timestamp"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    STRING = "string"


class CastError(ValueError):
    """A value that cannot be cast exactly; the message quotes the value and says why, and
    ``cause`` says why alone ("not an integer"), the same for every value refused alike."""

    def __init__(self, message: str, cause: str | None = None) -> None:
        super().__init__(message)
        self.cause = cause if cause is not None else message

    @classmethod
    def of(cls, value: object, problem: str) -> CastError:
        """``value`` cannot be cast: ``problem`` says why ("is not an integer")."""
        return cls(f"{shown(value)} {problem}", problem.removeprefix("is "))


# Numbers above this (in magnitude) are Unix milliseconds, not seconds: 10^11 seconds is the
# year 5138, while 10^11 milliseconds is 1973.
MILLISECONDS_ABOVE = 10**11
# The range a timestamp may fall in: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
FIRST_SECOND = -62_135_596_800
LAST_SECOND = 253_402_300_799
# Python reads and prints integers of at most this many digits (a guard of its own against
# quadratic conversion): longer ones are refused rather than built. No id or attribute value can
# hold one anyway.
MAX_INTEGER_DIGITS = 4300
# An integer under this many bits has at most 4,215 digits: Python can print it.
MAX_INTEGER_BITS = 14_000

# ISO 8601 as exports write it; warehouses add a space before the zone, and BigQuery writes UTC.
_ISO = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[Tt ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:[.,][0-9]+)?)?"
    r"(?: ?(?:[Zz]|UTC|([+-])([0-9]{2})(?::?([0-9]{2}))?))?)?",
    re.ASCII,
)
_INTEGER = re.compile(r"[+-]?[0-9]+", re.ASCII)
# A decimal number as text: what JSON allows, plus a leading "+", leading zeros and ".5"/"5.".
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_EPOCH = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?", re.ASCII)
_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})
_UNIX_DAY = date(1970, 1, 1).toordinal()


def shown(value: object) -> str:
    """``value`` as a message quotes it: strings in JSON quotes (shortened), numbers as written."""
    if isinstance(value, str):
        text = json.dumps(value if len(value) <= 60 else value[:57] + "...", ensure_ascii=False)
        return f"the string {text}"
    if isinstance(value, bool):
        return f"the boolean {'true' if value else 'false'}"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, (int, float, Decimal)):
        try:
            text = _number_text(value)
        except CastError:
            return "a very long integer"
        return f"the number {text if len(text) <= 40 else text[:37] + '...'}"
    return f"a {type(value).__name__}"


def to_timestamp(value: object) -> int:
    """Integer Unix seconds from an ISO 8601 date or date-time, or from Unix seconds or milliseconds.

    Accepted: ``2024-01-02`` (midnight UTC); ``2024-01-02T03:04:05`` with ``Z``, ``UTC``, an
    offset (``+02:00``, ``+0200``, ``+02``) or none (read as UTC), a space instead of ``T`` and
    before the zone, and any fraction of a second; numbers and strings of digits as Unix
    seconds, or as milliseconds when above 10^11 in magnitude. Fractions are floored, toward the
    past. Raises :class:`CastError`.
    """
    if isinstance(value, str):
        if value[4:5] != "-" and _EPOCH.fullmatch(value):
            # Decimal reads digits of any length; int() refuses more than Python's 4300.
            exact = "." not in value and len(value) <= MAX_INTEGER_DIGITS
            return _epoch(int(value) if exact else Decimal(value), value)
        return _iso(value)
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise CastError.of(value, "is not a date, a date-time or Unix seconds")
    return _epoch(value, value)


def _epoch(number: int | float | Decimal, original: object) -> int:
    if isinstance(number, int):
        whole = number
    else:
        if not _finite(number) or _too_long(number, 30):
            raise CastError.of(original, "is out of range for a timestamp (years 1 to 9999)")
        whole = math.floor(number)
    # floor(x / 1000) == floor(floor(x) / 1000): exact, whatever the precision of x.
    milliseconds = number > MILLISECONDS_ABOVE or number < -MILLISECONDS_ABOVE
    seconds = whole // 1000 if milliseconds else whole
    if not FIRST_SECOND <= seconds <= LAST_SECOND:
        raise CastError.of(original, "is out of range for a timestamp (years 1 to 9999)")
    return seconds


def _iso(text: str) -> int:
    match = _ISO.fullmatch(text)
    if match is None:
        raise CastError.of(text, "is not an ISO 8601 date or date-time, nor Unix seconds")
    year, month, day, hour, minute, second, sign, off_hours, off_minutes = match.groups()
    try:
        # The C date type checks the calendar (no 2023-02-29) and the years 1 to 9999.
        days = date(int(year), int(month), int(day)).toordinal() - _UNIX_DAY
    except ValueError:
        raise CastError.of(text, "is not a valid date") from None
    if hour is None:
        return days * 86400
    h, mi = int(hour), int(minute)
    # 60 is a leap second: counted as the first second of the next minute, as Unix time does.
    s = int(second) if second else 0
    if h > 23 or mi > 59 or s > 60:
        raise CastError.of(text, "is not a valid time of day")
    offset = 0
    if sign is not None:
        oh, om = int(off_hours), int(off_minutes or 0)
        if oh > 23 or om > 59:
            raise CastError.of(text, "has an invalid UTC offset")
        offset = oh * 3600 + om * 60 if sign == "+" else -(oh * 3600 + om * 60)
    # "Z" and no offset at all both mean UTC. The fraction of a second is dropped: it is never
    # negative, so dropping it floors.
    seconds = days * 86400 + h * 3600 + mi * 60 + s - offset
    if not FIRST_SECOND <= seconds <= LAST_SECOND:
        raise CastError.of(text, "is out of range for a timestamp (years 1 to 9999)")
    return seconds


def to_integer(value: object) -> int:
    """An integer from an integer, a number with no fraction, or text of one (``"42"``, ``"42.0"``).

    Raises :class:`CastError` for anything with a fraction (``"4.2"``), booleans and other text.
    """
    if isinstance(value, bool):
        raise CastError.of(value, "is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        if _INTEGER.fullmatch(value):
            if len(value) > MAX_INTEGER_DIGITS:
                raise CastError.of(value, f"has more than {MAX_INTEGER_DIGITS} digits")
            return int(value)
        if not _NUMBER.fullmatch(value):
            raise CastError.of(value, "is not an integer")
        number: float | Decimal = Decimal(value)
    elif isinstance(value, (float, Decimal)):
        number = value
    else:
        raise CastError.of(value, "is not an integer")
    if not _finite(number) or _too_long(number, MAX_INTEGER_DIGITS):
        raise CastError.of(value, "is not an integer that can be sent")
    if number != math.floor(number):
        raise CastError.of(value, "is not an integer")
    return math.floor(number)


def to_number(value: object) -> int | float | Decimal:
    """A JSON number from a number or its text (``"3.5"``, ``"-1e3"``); integers stay integers.

    Raises :class:`CastError` for booleans, other text, and numbers too large for JSON.
    """
    if isinstance(value, bool):
        raise CastError.of(value, "is not a number")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        if _INTEGER.fullmatch(value) and len(value) <= MAX_INTEGER_DIGITS:
            return int(value)
        if not _NUMBER.fullmatch(value):
            raise CastError.of(value, "is not a number")
        # A JSON number is read as a double on the way in; this is the double the text names.
        number: float | Decimal = float(value)
    elif isinstance(value, (float, Decimal)):
        number = value
    else:
        raise CastError.of(value, "is not a number")
    if not _finite(number) or not math.isfinite(float(number)):
        raise CastError.of(value, "is too large to send as a JSON number")
    if number == 0 and isinstance(value, str) and Decimal(value) != 0:
        raise CastError.of(value, "is too small to send as a JSON number (it would arrive as 0)")
    return number


def to_boolean(value: object) -> bool:
    """``true``/``false`` from booleans, ``"true"``/``"false"`` in any case, ``"1"``/``"0"``, and 1/0.

    Raises :class:`CastError` for anything else (``"yes"``, 2).
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    elif isinstance(value, (int, float, Decimal)) and _finite(value) and value in (0, 1):
        return value == 1
    raise CastError.of(value, "is not a boolean (true/false or 1/0)")


def to_string(value: object) -> str:
    """Text from text, or the JSON text of a number or boolean (``42`` → ``"42"``).

    Raises :class:`CastError` for objects and arrays.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, Decimal)):
        if not _finite(value):
            raise CastError.of(value, "has no JSON text")
        return _number_text(value)
    raise CastError.of(value, "cannot be cast to a string")


CASTS: dict[Cast, Callable[[object], object]] = {
    Cast.TIMESTAMP: to_timestamp,
    Cast.INTEGER: to_integer,
    Cast.NUMBER: to_number,
    Cast.BOOLEAN: to_boolean,
    Cast.STRING: to_string,
}


def _finite(number: int | float | Decimal) -> bool:
    if isinstance(number, int):
        return True
    return number.is_finite() if isinstance(number, Decimal) else math.isfinite(number)


def _too_long(number: float | Decimal, digits: int) -> bool:
    # A Decimal like 1e100000000 is tiny to hold but enormous as an integer: look before building.
    return isinstance(number, Decimal) and number.adjusted() >= digits


def _number_text(value: int | float | Decimal) -> str:
    if isinstance(value, Decimal):
        # Decimal keeps the digits as read ("1.50" stays "1.50"); "1E+5" becomes JSON's "1e+5".
        return str(value).replace("E", "e")
    if isinstance(value, float):
        return json.dumps(value)
    if value.bit_length() > MAX_INTEGER_BITS:
        raise CastError(f"an integer of more than {MAX_INTEGER_DIGITS} digits has no text that can be sent")
    return str(value)

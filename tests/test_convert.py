"""The casts behind ``as``: every shape of timestamp, exact numbers and booleans, and refusals."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from cio_sync.input.convert import (
    FIRST_SECOND,
    LAST_SECOND,
    MILLISECONDS_ABOVE,
    CastError,
    to_boolean,
    to_integer,
    to_number,
    to_string,
    to_timestamp,
)

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
SECOND = timedelta(seconds=1)


def unix(moment: datetime) -> int:
    """Exact floored Unix seconds of an aware datetime, computed independently of the code."""
    return (moment - EPOCH) // SECOND


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("2024-01-02T03:04:05Z", 1704164645),
        ("2024-01-02T03:04:05z", 1704164645),
        ("2024-01-02t03:04:05Z", 1704164645),
        ("2024-01-02T03:04:05+02:00", 1704157445),
        ("2024-01-02T03:04:05+0200", 1704157445),
        ("2024-01-02T03:04:05+02", 1704157445),
        ("2024-01-02T03:04:05-05:30", 1704184445),
        ("2024-01-02T03:04:05-00:00", 1704164645),
        ("2024-01-02T03:04:05", 1704164645),
        ("2024-01-02 03:04:05 UTC", 1704164645),
        ("2024-01-02 03:04:05.123456 UTC", 1704164645),
        ("2024-01-02 03:04:05.000 -0800", 1704193445),
        ("2024-01-02 03:04:05+00", 1704164645),
        ("2024-01-02T03:04:05 Z", 1704164645),
        ("2024-01-02 03:04:05", 1704164645),
        ("2024-01-02T03:04", 1704164640),
        ("2024-01-02T03:04:05.999999999Z", 1704164645),
        ("2024-01-02T03:04:05,5Z", 1704164645),
        ("2024-01-02", 1704153600),
        ("1970-01-01", 0),
        ("1969-12-31T23:59:59.5Z", -1),
        ("1969-12-31T23:59:59.000001Z", -1),
        ("1900-03-01T00:00:00Z", -2203891200),
        ("2000-02-29", 951782400),
        ("0001-01-01T00:00:00Z", FIRST_SECOND),
        ("9999-12-31T23:59:59Z", LAST_SECOND),
        ("2016-12-31T23:59:60Z", 1483228800),
        (1704164645, 1704164645),
        (-86400, -86400),
        (0, 0),
        (Decimal("1704164645.9"), 1704164645),
        (Decimal("-0.5"), -1),
        (1704164645.25, 1704164645),
        ("1704164645", 1704164645),
        ("-86400", -86400),
        ("1704164645.75", 1704164645),
        (1704164645123, 1704164645),
        ("1704164645123", 1704164645),
        (Decimal("1704164645123.9"), 1704164645),
        (MILLISECONDS_ABOVE, MILLISECONDS_ABOVE),
        (MILLISECONDS_ABOVE + 1, MILLISECONDS_ABOVE // 1000),
        (Decimal(MILLISECONDS_ABOVE) + Decimal("0.5"), MILLISECONDS_ABOVE // 1000),
        (-126230400000, -126230400),  # 1966 in milliseconds
    ],
)
def test_timestamps(value: object, seconds: int) -> None:
    assert to_timestamp(value) == seconds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("31/01/2024", 'the string "31/01/2024" is not an ISO 8601 date or date-time, nor Unix seconds'),
        ("2024-02-30", 'the string "2024-02-30" is not a valid date'),
        ("2023-02-29", "is not a valid date"),
        ("2024-13-01", "is not a valid date"),
        ("0000-01-01", "is not a valid date"),
        ("2024-01-02T24:00:00Z", "is not a valid time of day"),
        ("2024-01-02T23:60:00Z", "is not a valid time of day"),
        ("2024-01-02T03:04:05+24:00", "has an invalid UTC offset"),
        ("2024-01-02Z", "is not an ISO 8601 date"),
        ("2024-01-02 03:04:05 ", "is not an ISO 8601 date"),
        ("2024-01-02 03:04:05  UTC", "is not an ISO 8601 date"),
        ("2024-01-02 03:04:05 GMT", "is not an ISO 8601 date"),
        ("2024-01-02 UTC", "is not an ISO 8601 date"),
        ("2024-1-2", "is not an ISO 8601 date"),
        (" 2024-01-02", "is not an ISO 8601 date"),
        ("", 'the string "" is not an ISO 8601 date'),
        ("now", "is not an ISO 8601 date"),
        ("1e9", "is not an ISO 8601 date"),
        ("١٧٠٤١٦٤٦٤٥", "is not an ISO 8601 date"),
        (True, "the boolean true is not a date, a date-time or Unix seconds"),
        ({"t": 1}, "an object is not a date"),
        ([1], "an array is not a date"),
        (Decimal("1e400"), "the number 1e+400 is out of range for a timestamp (years 1 to 9999)"),
        (float("inf"), "is out of range for a timestamp"),
        (float("nan"), "is out of range for a timestamp"),
        (10**20, "is out of range for a timestamp"),
        ("9" * 40, "is out of range for a timestamp"),
        # Longer than Python turns into an integer: refused, not a crash.
        ("9" * 5000, "is out of range for a timestamp"),
        ("-" + "9" * 5000 + ".5", "is out of range for a timestamp"),
        ("0001-01-01T00:00:00+01:00", "is out of range for a timestamp"),
    ],
)
def test_timestamps_that_are_refused(value: object, message: str) -> None:
    with pytest.raises(CastError) as caught:
        to_timestamp(value)
    assert message in str(caught.value)


aware = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.builds(
        lambda minutes: timezone(timedelta(minutes=minutes)),
        st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59),
    ),
)


def offset_text(moment: datetime) -> str:
    offset = moment.utcoffset()
    assert offset is not None
    minutes = offset // timedelta(minutes=1)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02}:{abs(minutes) % 60:02}"


@given(aware)
@example(datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=timezone.utc))
def test_any_iso_date_time_is_its_floored_unix_second(moment: datetime) -> None:
    m = moment
    text = f"{m.year:04}-{m.month:02}-{m.day:02}T{m.hour:02}:{m.minute:02}:{m.second:02}.{m.microsecond:06}"
    assert to_timestamp(text + offset_text(moment)) == unix(moment)
    assert to_timestamp(text + offset_text(moment).replace(":", "")) == unix(moment)


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)))
def test_a_date_time_without_offset_is_utc(moment: datetime) -> None:
    text = f"{moment.year:04}-{moment.month:02}-{moment.day:02}T{moment.hour:02}:{moment.minute:02}:{moment.second:02}"
    assert to_timestamp(text) == unix(moment.replace(microsecond=0, tzinfo=timezone.utc))
    assert to_timestamp(text[:10]) == unix(datetime(moment.year, moment.month, moment.day, tzinfo=timezone.utc))


@given(st.integers(min_value=FIRST_SECOND, max_value=LAST_SECOND))
def test_integer_seconds_and_milliseconds(number: int) -> None:
    expected = number // 1000 if abs(number) > MILLISECONDS_ABOVE else number
    assert to_timestamp(number) == expected
    assert to_timestamp(str(number)) == expected


@given(st.decimals(min_value=-(10**10), max_value=10**10, places=3))
def test_fractional_seconds_are_floored_toward_the_past(number: Decimal) -> None:
    assert to_timestamp(number) == math.floor(number)
    assert to_timestamp(str(number)) == math.floor(number)


@given(st.integers(min_value=FIRST_SECOND, max_value=2 * 10**14), st.integers(min_value=0, max_value=999))
@example(MILLISECONDS_ABOVE, 500)
def test_milliseconds_with_fractions_are_floored(whole: int, thousandths: int) -> None:
    number = Decimal(whole) + Decimal(thousandths) / 1000
    seconds = math.floor(number) // 1000 if abs(number) > MILLISECONDS_ABOVE else math.floor(number)
    # Whole seconds between -MILLISECONDS_ABOVE and the year 1 are refused, as they should be.
    assume(seconds >= FIRST_SECOND)
    assert to_timestamp(number) == seconds


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.floats()
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


@given(json_values)
def test_a_cast_returns_its_type_or_says_why(value: object) -> None:
    for cast, kinds in (
        (to_timestamp, (int,)),
        (to_integer, (int,)),
        (to_number, (int, float, Decimal)),
        (to_boolean, (bool,)),
        (to_string, (str,)),
    ):
        result: object
        try:
            result = cast(value)
        except CastError as e:
            result = e
        if isinstance(result, CastError):
            assert str(result)
        else:
            assert isinstance(result, kinds)
            assert not isinstance(result, bool) or cast is to_boolean


@given(st.integers(min_value=-(10**60), max_value=10**60))
def test_integers_and_their_text(number: int) -> None:
    assert to_integer(number) == to_integer(str(number)) == to_integer(f"{number}.0") == number
    assert to_number(str(number)) == number
    assert type(to_number(str(number))) is int
    assert to_string(number) == str(number)
    assert to_integer(to_string(number)) == number


@given(st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**9), max_value=10**9, places=4))
def test_numbers_and_their_text(number: Decimal) -> None:
    assert to_number(str(number)) == float(number)
    assert to_number(to_string(number)) == float(number)
    if number != number.to_integral_value():
        with pytest.raises(CastError, match="is not an integer"):
            to_integer(str(number))


@pytest.mark.parametrize(
    ("value", "result"),
    [("42", 42), ("-7", -7), ("+7", 7), ("007", 7), ("42.0", 42), ("4.2e1", 42), (Decimal("42.000"), 42), (5.0, 5)],
)
def test_integer_casts(value: object, result: int) -> None:
    assert to_integer(value) == result


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("4.2", 'the string "4.2" is not an integer'),
        (Decimal("4.2"), "the number 4.2 is not an integer"),
        ("1_000", 'the string "1_000" is not an integer'),
        (" 5", 'the string " 5" is not an integer'),
        ("٥", 'the string "٥" is not an integer'),
        ("", 'the string "" is not an integer'),
        ("NaN", 'the string "NaN" is not an integer'),
        (True, "the boolean true is not an integer"),
        (Decimal("1e5000"), "is not an integer that can be sent"),
        ("9" * 5000, "has more than 4300 digits"),
        ([1], "an array is not an integer"),
    ],
)
def test_integer_refusals(value: object, message: str) -> None:
    with pytest.raises(CastError) as caught:
        to_integer(value)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("value", "result"),
    [("3.5", 3.5), ("-1e3", -1000.0), (".5", 0.5), ("42", 42), (Decimal("2.25"), Decimal("2.25")), ("0e-400", 0.0)],
)
def test_number_casts(value: object, result: object) -> None:
    assert to_number(value) == result


@pytest.mark.parametrize(
    "value", ["Infinity", "NaN", "1e400", "1e-400", "-3e-999", "0x10", "1,5", "", "3.5.1", True, {"a": 1}, float("inf")]
)
def test_number_refusals(value: object) -> None:
    with pytest.raises(CastError):
        to_number(value)


@pytest.mark.parametrize(
    ("value", "result"),
    [
        ("true", True),
        ("TRUE", True),
        ("True", True),
        ("false", False),
        ("FaLsE", False),
        ("1", True),
        ("0", False),
        (1, True),
        (0, False),
        (True, True),
        (False, False),
        (Decimal("1.0"), True),
    ],
)
def test_boolean_casts(value: object, result: bool) -> None:
    assert to_boolean(value) is result


@pytest.mark.parametrize("value", ["yes", "no", "t", "", " true", "2", 2, -1, Decimal("0.5"), None, [True]])
def test_boolean_refusals(value: object) -> None:
    with pytest.raises(CastError, match="is not a boolean"):
        to_boolean(value)


@pytest.mark.parametrize(
    ("value", "result"),
    [
        ("text", "text"),
        ("", ""),
        (42, "42"),
        (-0, "0"),
        (Decimal("1.50"), "1.50"),
        (Decimal("1E+5"), "1e+5"),
        (2.5, "2.5"),
        (True, "true"),
        (False, "false"),
    ],
)
def test_string_casts(value: object, result: str) -> None:
    assert to_string(value) == result


@pytest.mark.parametrize("value", [{"a": 1}, [1], float("nan"), 10**5000], ids=["object", "array", "nan", "huge"])
def test_string_refusals(value: object) -> None:
    with pytest.raises(CastError):
        to_string(value)

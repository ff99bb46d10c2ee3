"""Why records did not sync, grouped: a cause is a reason without what is particular to one record
(its value, its position, its id), so that 49,513 records that fail alike are counted as one cause.

The places that word a reason may give its cause too (a cast's reason, a held-back record's);
for the others the cause is worked out from the reason here, by masking the values it quotes.
Counting holds at most :data:`MAX_CAUSES` causes, so memory stays flat whatever fails.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..outcome import STOPPED_BEFORE_SENT, RecordOutcome, Status

# Distinct causes counted one by one; the rest are counted together under OTHER.
MAX_CAUSES = 100
OTHER = "other causes (more than 100 distinct causes were counted)"
# A record held back behind an earlier one of the same person: which kind of earlier record it was.
HELD_BEHIND_INVALID = "held back: an earlier record of the same person was invalid"
HELD_BEHIND_FAILED = "held back: an earlier record of the same person did not sync"

# What a reason quotes of one record: a string value as convert.shown words it, a number, or a
# number standing alone (a position, an offset, an id in a path, a value such as 1.5E-400),
# grouped by commas, with a fraction or an exponent; digits within a word or a name ("UTF-8",
# "v1", "\ud800") are the words'.
_QUOTED = re.compile(
    r'the string "(?:[^"\\]|\\.)*"(?:\.\.\.)?|the number [^\s,;)]+'
    r"|(?<![\w\\-])[0-9]+(?:[.,][0-9]+)*(?:[eE][+-]?[0-9]+)?(?![\w-])"
)
_HTTP = re.compile(r"HTTP [0-9]{3}(?=:|$)")
_UNREAD = "the run stopped before it was read"


def held_back_reason(earlier: int) -> str:
    """The reason a record is held back behind its person's record ``earlier``, which did not sync."""
    return f"held back: record {earlier} of the same person did not sync, and this one must not overtake it"


def cause_of(outcome: RecordOutcome) -> str:
    """The cause of ``outcome``'s problem: the one it was given, else its reason made general."""
    if outcome.cause is not None:
        return outcome.cause
    reason = outcome.reason
    if reason is None:
        return STOPPED_BEFORE_SENT if outcome.status is Status.NOT_ATTEMPTED else outcome.status.value.replace("_", " ")
    if reason.startswith(_UNREAD):
        return _UNREAD
    status = _HTTP.match(reason)
    if status is not None:
        # The status stays as it is: "HTTP 400" and "HTTP 413" are different causes.
        return status.group() + _general(reason[status.end() :])
    return _general(reason)


def _general(text: str) -> str:
    def mask(match: re.Match[str]) -> str:
        found = match.group()
        if found.startswith("the string"):
            return "a string"
        return "a number" if found.startswith("the number") else "N"

    return _QUOTED.sub(mask, text)


@dataclass(frozen=True, slots=True)
class CauseCount:
    """How many records one cause stands for, and the first of them."""

    status: Status
    cause: str
    count: int
    first_index: int
    first_reason: str | None


def cause_entries(causes: Sequence[CauseCount], redact: Callable[[str], str]) -> list[dict[str, object]]:
    """``causes`` as the report and the JSON log write them, every text passed through ``redact``."""
    return [
        {
            "cause": redact(c.cause),
            "outcome": c.status.value,
            "count": c.count,
            "first_index": c.first_index,
            "first_reason": None if c.first_reason is None else redact(c.first_reason),
        }
        for c in causes
    ]


class Causes:
    """Counts problems by cause, from one thread, in bounded memory."""

    def __init__(self, limit: int = MAX_CAUSES) -> None:
        self._limit = limit
        self._counts: dict[tuple[Status, str], CauseCount] = {}

    def add(self, outcome: RecordOutcome) -> None:
        """Count ``outcome`` (a record that failed, was invalid or was not attempted)."""
        key = (outcome.status, cause_of(outcome))
        counted = self._counts.get(key)
        if counted is None and len(self._counts) >= self._limit:
            key = (outcome.status, OTHER)
            counted = self._counts.get(key)
        if counted is None:
            self._counts[key] = CauseCount(key[0], key[1], outcome.span, outcome.index, outcome.reason)
        elif outcome.index < counted.first_index:  # records settle nearly, not exactly, in file order
            self._counts[key] = CauseCount(key[0], key[1], counted.count + outcome.span, outcome.index, outcome.reason)
        else:
            self._counts[key] = dataclasses.replace(counted, count=counted.count + outcome.span)

    def count(self, status: Status, cause: str) -> int:
        """How many records ``cause`` (of ``status``) stands for."""
        counted = self._counts.get((status, cause))
        return 0 if counted is None else counted.count

    def ranked(self) -> tuple[CauseCount, ...]:
        """Every cause counted, the most frequent first (then in file order)."""
        return tuple(sorted(self._counts.values(), key=lambda c: (-c.count, c.first_index)))


class IndexSet:
    """A set of record indexes in one bit each: a million records' worth takes 125 kB."""

    def __init__(self) -> None:
        self._bits = bytearray()

    def add(self, index: int) -> None:
        """Add ``index`` (not negative)."""
        byte = index >> 3
        if byte >= len(self._bits):
            self._bits.extend(bytes(max(byte + 1 - len(self._bits), len(self._bits))))
        self._bits[byte] |= 1 << (index & 7)

    def __contains__(self, index: int) -> bool:
        byte = index >> 3
        return 0 <= byte < len(self._bits) and bool(self._bits[byte] & (1 << (index & 7)))

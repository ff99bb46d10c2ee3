"""Ways the emulator misbehaves on purpose: one model, from Python, from the command line, over HTTP.

A :class:`Fault` is one action (answer a status, drop the connection, delay, drip the answer,
refuse an item in a batch, or answer a 207 of an unusual shape) with a scope (one person, one
endpoint, or every request) and a count (``times``, or forever). Faults are matched in the order
they were added; the first that matches a request is used and counted down.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from email.utils import formatdate
from enum import Enum
from typing import Any

from .rules import Endpoint


class Drop(str, Enum):
    """When a dropped connection closes."""

    BEFORE = "before"  # before the write: nothing was applied, and no answer comes
    AFTER = "after"  # after the write was applied: the change is kept, the answer is lost


class Odd207(str, Enum):
    """Unusual 207 answers, for testing a client against what the spec does not promise."""

    NO_INDEX = "no-index"  # errors without batch_index (another published copy of the spec has none)
    STRING_INDEX = "string-index"  # batch_index as a string: "3"
    NOT_JSON = "not-json"  # a 207 whose body is not JSON at all


ACTIONS = ("status", "drop", "delay", "drip", "reject", "odd_207", "hints")


@dataclass
class Fault:
    """One injected misbehaviour. Set exactly one action; the scope and count are optional.

    Actions:
      ``status``: answer this HTTP status instead of handling the request, with ``retry_after``
      sent verbatim as ``Retry-After`` (seconds, fractional seconds, an HTTP date or garbage: any
      text; a number is written as seconds) or ``retry_after_date``, an HTTP date this many seconds
      after the answer; with ``apply_after``, the write is applied all the same, this many seconds
      after the answer (a gateway that gave up waiting while the write went through).
      ``drop``: close the connection without answering, ``"before"`` or ``"after"`` the write.
      ``delay``: wait this many seconds, then handle the request: the write lands late, after a
      client with a shorter timeout has given up.
      ``drip``: handle the request, then send the answer one byte every this many seconds.
      ``reject``: in a batch, refuse this person's item (a 207 error naming its ``batch_index``).
      ``odd_207``: answer a batch with a 207 of this unusual shape, refusing the person's item
      (or the first item when the fault names nobody) and applying the rest.
      ``hints``: handle the request, and send this many informational ``103 Early Hints``
      answers before the real one (HTTP allows any number of 1xx answers before the final one).
    Scope: ``person`` (a v1 path value, as the client wrote it: ``a/b``, ``cio_x1``, an email in
    any case), ``endpoint`` (``customers``, ``batch``, ``region``, ``app-people``, ``app-person`` or
    ``any``). Count: ``times``
    matching requests (items, for ``reject``), or ``None`` for ever.
    """

    status: int | None = None
    retry_after: str | float | None = None
    retry_after_date: float | None = None
    apply_after: float | None = None
    drop: Drop | None = None
    delay: float | None = None
    drip: float | None = None
    reject: bool = False
    odd_207: Odd207 | None = None
    hints: int | None = None
    person: str | None = None
    endpoint: Endpoint = Endpoint.ANY
    times: int | None = 1

    def __post_init__(self) -> None:
        self.endpoint = Endpoint(self.endpoint)
        if self.endpoint is Endpoint.OTHER:
            raise ValueError("endpoint must be one of customers, batch, region, app-people, app-person, any")
        self.drop = Drop(self.drop) if self.drop is not None else None
        self.odd_207 = Odd207(self.odd_207) if self.odd_207 is not None else None
        chosen = [name for name in ACTIONS if getattr(self, name) not in (None, False)]
        if len(chosen) != 1:
            raise ValueError(f"a fault needs exactly one of {', '.join(ACTIONS)}; got {', '.join(chosen) or 'none'}")
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP status (100 to 599), not {self.status}")
        for name in ("delay", "drip", "retry_after_date", "apply_after"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a number of seconds, 0 or more")
        if (self.retry_after is not None or self.retry_after_date is not None) and self.status is None:
            raise ValueError("retry_after goes with a status")
        if self.apply_after is not None and self.status is None:
            raise ValueError("apply_after goes with a status")
        if (self.reject or self.odd_207) and self.endpoint not in (Endpoint.ANY, Endpoint.BATCH):
            raise ValueError("reject and odd_207 apply to batches only")
        if self.reject and self.person is None:
            raise ValueError("reject needs a person: the one whose batch item is refused")
        if self.hints is not None and not 1 <= self.hints <= 10:
            raise ValueError("hints must be 1 to 10 informational answers")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be 1 or more (leave it out, or 'forever', for no end)")

    @classmethod
    def parse(cls, text: str) -> Fault:
        """A fault from ``key=value,...`` as the command line writes it.

        Keys are the field names with ``-`` or ``_``: ``status=429,retry-after=0.5,times=3``,
        ``drop=after,person=p1``, ``delay=5,endpoint=customers``, ``reject,person=a/b``,
        ``odd-207=no-index``, ``times=forever``. A value cannot hold a comma: for an HTTP date use
        ``retry-after-date=SECONDS``.
        """
        values: dict[str, Any] = {}
        names = {f.name for f in fields(cls)}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition("=")
            name = key.strip().replace("-", "_")
            if name not in names:
                raise ValueError(f"unknown fault key {key.strip()!r} (known: {', '.join(sorted(names))})")
            if name in values:
                raise ValueError(f"fault key {key.strip()!r} given twice")
            values[name] = _convert(name, value.strip() if sep else None)
        return cls(**values)

    @classmethod
    def from_json(cls, document: Any) -> Fault:
        """A fault from a JSON object with the field names as keys (the ``/_emulator/faults`` body)."""
        if not isinstance(document, dict):
            raise ValueError("a fault is a JSON object")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(document) - names)
        if unknown:
            raise ValueError(f"unknown fault key {unknown[0]!r}")
        return cls(**document)

    def to_json(self) -> dict[str, Any]:
        """The fault as :meth:`from_json` reads it: the fields that are set, and ``times`` always."""
        document = {name: getattr(getattr(self, name), "value", getattr(self, name)) for name in _names(self)}
        return {k: v for k, v in document.items() if v is not None and v is not False} | {"times": self.times}

    def retry_after_header(self, now: float) -> str | None:
        """The ``Retry-After`` value to send with the status, or None."""
        if self.retry_after_date is not None:
            return formatdate(now + self.retry_after_date, usegmt=True)
        if isinstance(self.retry_after, float):
            return f"{self.retry_after:g}"
        return None if self.retry_after is None else str(self.retry_after)


def _names(fault: Fault) -> list[str]:
    return [f.name for f in fields(fault)]


def _convert(name: str, value: str | None) -> Any:
    if name == "reject":
        if value not in (None, "true", "yes", "1"):
            raise ValueError("reject takes no value")
        return True
    if value is None or value == "":
        raise ValueError(f"fault key {name.replace('_', '-')!r} needs a value")
    try:
        if name in ("status", "hints"):
            return int(value)
        if name == "times":
            return None if value == "forever" else int(value)
        if name in ("delay", "drip", "retry_after_date", "apply_after"):
            return float(value)
    except ValueError:
        raise ValueError(f"fault key {name.replace('_', '-')!r}: {value!r} is not a number") from None
    return value


@dataclass(frozen=True)
class Matched:
    """A fault that matched a request, and the person it matched (None: matched by endpoint)."""

    fault: Fault
    person: str | None


class FaultBook:
    """The queued faults, matched and counted down under a lock."""

    def __init__(self, same_person: Callable[[str, str], bool]) -> None:
        self._same_person = same_person
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        """Queue ``fault`` after those already queued."""
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        """Forget every queued fault."""
        with self._lock:
            self._faults.clear()

    def pending(self) -> list[Fault]:
        """The faults still queued."""
        with self._lock:
            return list(self._faults)

    def take(self, endpoint: Endpoint, people: Sequence[str]) -> Matched | None:
        """The first request-level fault for a request to ``endpoint`` about ``people``, counted down."""
        return self._take(lambda f: not f.reject and f.endpoint in (endpoint, Endpoint.ANY), people)

    def take_item(self, person: str) -> Fault | None:
        """The first ``reject`` fault for a batch item naming ``person``, counted down."""
        matched = self._take(lambda f: f.reject, [person])
        return matched.fault if matched else None

    def _take(self, wanted: Callable[[Fault], bool], people: Sequence[str]) -> Matched | None:
        with self._lock:
            for i, fault in enumerate(self._faults):
                if not wanted(fault):
                    continue
                person = None
                if fault.person is not None:
                    person = next((p for p in people if self._same_person(p, fault.person)), None)
                    if person is None:
                        continue
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        del self._faults[i]
                return Matched(fault, person)
        return None

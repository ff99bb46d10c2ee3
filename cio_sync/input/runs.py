"""Reading a JSON array's elements (or NDJSON's lines) a run at a time: the same decoder, called
from one loop of C for many records.

Reading the elements one by one costs a round of Python per element (the decoder's call, the
bounds, the checks) that outweighs the parsing itself for small records. Here the whole elements
from the read position on (see :func:`run_of_elements` for where a run ends) are handed to the
decoder in one call, as the array they are part of. That yields exactly what one by one
would where nothing in them needs a closer look: a run with a lone surrogate, nesting too deep,
or a value the decoder refuses is cut short before it, and what follows is read one by one (see
:class:`~cio_sync.input.datafile._Elements`), which says what is wrong.

A run the decoder reads whole is a run of whole elements: the decoder reads the text from the
start, as the elements themselves would be read, and a run that ended inside an element (in a
string, or in a nested object) would leave a string or a bracket open. NDJSON's lines are each
read on their own, as line by line reads them, in one loop of C (``map``): wrapping them into one
array cannot tell a line that is one value from lines whose brackets balance across them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from itertools import accumulate, islice, repeat
from typing import TypeVar

# Records nested deeper than this are invalid: no real data comes close, and writing one back
# to --failed must not exhaust the stack.
MAX_DEPTH = 500
# A run holds at most this many characters: about as many as one read of the file.
RUN_CHARACTERS = 1 << 16
# What may turn into a lone surrogate once parsed: a \u escape of one, or a byte that is not UTF-8
# (decoded as U+DC80 to U+DCFF). A pair of escapes that makes one character is matched too, and
# read one by one like the rest.
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
SURROGATE = re.compile("[\ud800-\udfff]")
_SPACE = " \t\r\n"
# A JSON string (of a run the decoder read), and what is not a bracket: what is left of a run
# without them is its brackets, each a step into or out of a value.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_A_BRACKET = bytes(set(range(256)) - set(b"[]{}"))
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
# Where the run is cut when the decoder does not read it: tries before reading one by one.
_TRIES = 3

# The most records of a run where they are not read as one: CSV rows (fewer where they are long).
RECORDS_A_RUN = 1024
# Records handed by a caller a run at a time: their size is not known, so fewer.
CALLERS_RECORDS_A_RUN = 256

Scan = Callable[[str, int], tuple[object, int]]
T = TypeVar("T")


def in_runs(
    records: Iterable[T], size: int = CALLERS_RECORDS_A_RUN, *, first: int = 1, at: Callable[[], int] | None = None
) -> Iterator[list[T]]:
    """``records`` in lists of ``first``, then twice as many, and so on up to ``size`` (the last
    may be shorter): the first go out at once, however slowly they come. With ``at``, where the
    records read end in their file, a run also ends with the record that ends
    :data:`RUN_CHARACTERS` past its start. Where reading them raises, the records read before it
    come first, as a run of their own; the error follows."""
    records = iter(records)
    each = first
    while True:
        run: list[T] = []
        begun = at() if at is not None else 0
        try:
            if at is None:
                run.extend(islice(records, each))
            else:
                for record in islice(records, each):
                    run.append(record)
                    if at() - begun >= RUN_CHARACTERS:
                        break
        except Exception:
            if run:
                yield run
            raise
        if not run:
            return
        yield run
        each = min(size, 2 * each)


def run_of_elements(text: str, start: int, scan: Scan) -> tuple[list[object], int] | int:
    """The array elements from ``text[start]`` on, read by ``scan`` in one call: their values and
    the index after the last. Where no such run can be read exactly as one by one would, the
    index up to which elements are read one by one instead.

    The run ends before the last element that begins as the first does (an export's records
    start with the same key, at the same indent), else at the last ``}`` that a comma follows. A
    surrogate escape cuts it short before it, a few times at most. Where the decoder does not
    read it whole (the cut was inside an element, or the file is not JSON there), the elements
    up to the furthest cut tried are read one by one: no element tries the same text again.
    """
    before = min(len(text), start + RUN_CHARACTERS)
    tried = start + 1
    for attempt in range(_TRIES):
        cut = (_before_last_like(text, start, before) if attempt == 0 else None) or _last_end(text, start, before)
        if cut is None:
            return max(before, tried)  # no element ends so here: one by one, not searched again
        tried = max(tried, cut)
        run = text[start:cut]
        trouble = SURROGATE_ESCAPE.search(run) or (None if run.isascii() else SURROGATE.search(run))
        if trouble is not None:
            before = start + trouble.start()
            continue
        wrapped = "[" + run + "]"
        try:
            values, end = scan(wrapped, 0)
        except (StopIteration, ValueError, ArithmeticError, RecursionError):
            return tried
        # The whole run, or the array closed within it (more follows its closing bracket): that
        # is for the one-by-one reading to refuse, where it stands.
        if end != len(wrapped) or not isinstance(values, list) or not values:
            return tried
        return (values, cut) if shallow(run, values) else tried
    return tried


def run_of_lines(text: str, start: int, scan: Scan) -> tuple[list[object], int] | int:
    """The NDJSON records of the whole lines from ``text[start]`` on, each read by ``scan`` as
    line by line reads it, but in one loop of C: their values and the index of the line break
    after the last. Where a line is not one value alone, the index up to which lines are read
    one by one instead."""
    cut = text.rfind("\n", start, min(len(text), start + RUN_CHARACTERS))
    if cut == -1:
        return start + 1
    run = text[start:cut]
    if SURROGATE_ESCAPE.search(run) or (not run.isascii() and SURROGATE.search(run)):
        return cut
    lines = [line for line in run.split("\n") if line.strip(_SPACE)]
    try:
        read = list(map(scan, lines, repeat(0)))
    except (ValueError, ArithmeticError, RecursionError):
        return cut  # a line that is not JSON, or a value the decoder will not read
    if len(read) != len(lines):
        # The decoder found no value at a line's start (a space first, or not JSON): its
        # StopIteration ended the map there, quietly.
        return cut
    # Nothing but spaces may follow a line's value.
    if any(end != len(line) and line[end:].strip(_SPACE) for (_, end), line in zip(read, lines, strict=True)):
        return cut
    values = [value for value, _ in read]
    return (values, cut) if shallow(run, values) else cut


def shallow(run: str, values: list[object]) -> bool:
    """Whether none of ``values``, read from ``run``, nests deeper than :data:`MAX_DEPTH`.

    A value nests at most as deep as the brackets it holds, and every object or array holds one
    of its own: a value deeper than the limit leaves the others fewer brackets than one each, and
    most runs are told so by counting (brackets in strings too, which only ever counts more).
    Otherwise the depth of the run's brackets is followed, its strings left out.
    """
    kinds = list(map(type, values))
    containers = kinds.count(dict) + kinds.count(list)
    if run.count("{") + run.count("[") - max(containers - 1, 0) <= MAX_DEPTH:
        return True
    # Records holding objects of their own: the depth of the run's brackets, its strings left out
    # (what is left of the text once its strings are gone holds brackets only as ASCII bytes).
    brackets = _STRING.sub("", run).encode("utf-8", "surrogatepass").translate(None, _NOT_A_BRACKET)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) <= MAX_DEPTH


def end_of_lines(text: str, start: int, count: int) -> int:
    """The index of the line break after the ``count``-th line from ``start`` that is not blank."""
    at = start
    while True:
        end = text.find("\n", at)
        end = len(text) if end == -1 else end
        if text[at:end].strip(_SPACE):
            count -= 1
            if count == 0:
                return end
        at = end + 1


def _before_last_like(text: str, start: int, before: int) -> int | None:
    """The index after the ``}`` and comma before the last place, from ``start`` to ``before``,
    that begins as the object at ``start`` does, up to its first key and colon; or None."""
    colon = text.find(":", start, start + 256)
    if text[start] != "{" or colon == -1:
        return None
    head = text[start : colon + 1]
    at = text.rfind(head, start + 1, before)
    while at != -1:
        end = at - 1
        while end > start and text[end] in _SPACE:
            end -= 1
        if text[end] == ",":
            end -= 1
            while end > start and text[end] in _SPACE:
                end -= 1
            if text[end] == "}":
                return end + 1
        at = text.rfind(head, start + 1, at)
    return None


def _last_end(text: str, start: int, before: int) -> int | None:
    """The index after the last ``}`` from ``start`` and before ``before`` that a comma follows
    (spaces aside), or None."""
    at = before
    while (at := text.rfind("}", start, at)) != -1:
        after = at + 1
        while after < len(text) and text[after] in _SPACE:
            after += 1
        if after < len(text) and text[after] == ",":
            return at + 1
    return None


def end_of(text: str, start: int, count: int, scan: Scan) -> int:
    """The index after the ``count``-th element of a run that begins at ``start``."""
    at = start
    for n in range(count):
        if n:
            while text[at] in _SPACE:
                at += 1
            at += 1  # the comma
            while text[at] in _SPACE:
                at += 1
        at = scan(text, at)[1]
    return at


def depth(value: object) -> int:
    """How deeply ``value`` nests (1 for an object or array of scalars), without recursion."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in item)
    return deepest

"""Text from data files and servers made safe to show on a terminal or in a JSON log line."""

from __future__ import annotations

import re

# Characters that can rewrite a terminal or mislead its reader: C0 controls (escape sequences,
# carriage return, bell), DEL, C1 controls (U+009B is a one-character CSI on some terminals),
# bidirectional overrides and isolates (text shown in another order than it is), line and
# paragraph separators, and lone surrogates (not characters at all). Newline is matched
# separately, so that messages of several lines can keep theirs.
_UNSAFE_BEYOND_C0 = "\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_UNSAFE = "\x00-\x09\x0b-\x1f" + _UNSAFE_BEYOND_C0
_UNSAFE_IN_LINE = re.compile(f"[{_UNSAFE}\n]")
_UNSAFE_IN_TEXT = re.compile(f"[{_UNSAFE}]")
# In JSON text: json.dumps already escaped the C0 controls; the rest are left raw by ensure_ascii=False.
_UNSAFE_IN_JSON = re.compile(f"[{_UNSAFE_BEYOND_C0}]")


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match[str]) -> str:
    character = match.group()
    code = ord(character)
    return _NAMED.get(character) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def one_line(text: str) -> str:
    """``text`` with every control character, newline included, written as an escape (``\\x1b``)."""
    return _UNSAFE_IN_LINE.sub(_escaped, text)


def visible(text: str) -> str:
    """``text`` with its control characters escaped, but its newlines kept."""
    return _UNSAFE_IN_TEXT.sub(_escaped, text)


def json_line(text: str) -> str:
    """JSON text (``ensure_ascii=False``) with the characters JSON leaves raw escaped as ``\\u`` and four hex digits."""
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)

"""Keeping credentials out of every text cio-sync shows or writes.

Text that comes from outside (a server's error message, a value quoted from the data file) can
hold a credential: a proxy that echoes the request, an API that quotes the ``Authorization``
header back, a key pasted into the wrong column. Every such text passes through one
:class:`Redactor` before it reaches standard error, a log, or the report. Imports nothing of
cio-sync.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from urllib.parse import quote

# What stands in for a credential in the text shown.
MASK = "[redacted]"
# Shorter values are not hunted for: masking "1" in every message would hide more than it keeps
# safe, and a credential that short protects nothing.
_MIN_SECRET = 4
# A JSON \u escape, whose hex digits may be written in either case.
_UNICODE_ESCAPE = re.compile(r"\\u([0-9a-f]{4})")


class Redactor:
    """Masks each of ``secrets`` (and the forms a request carries them in) in a text."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        values = {s for s in secrets if s and len(s) >= _MIN_SECRET}
        forms = set(values)
        for value in values:
            # Credentials from the environment may hold lone surrogates: encode them anyway.
            forms.add(quote(value.encode("utf-8", "surrogatepass"), safe=""))
            forms.update(_json_forms(value))
        # HTTP Basic credentials as the Track API's Authorization header carries them.
        ordered = [s for s in secrets if s]
        if len(ordered) >= 2:
            pair = f"{ordered[0]}:{ordered[1]}".encode("utf-8", "surrogatepass")
            forms.add(base64.b64encode(pair).decode())
        # Longest first, so that a key holding another credential is masked whole.
        alternatives = sorted((f for f in forms if len(f) >= _MIN_SECRET), key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, alternatives))) if alternatives else None

    def __call__(self, text: str) -> str:
        """``text`` with every credential masked."""
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)


def _json_forms(value: str) -> set[str]:
    """``value`` as a JSON string spells it inside its quotes (an API that quotes the request back
    in a JSON error): with characters beyond ASCII escaped or not, ``\\u`` escapes in either
    case, and ``/`` escaped or not."""
    found: set[str] = set()
    for escaped in (json.dumps(value, ensure_ascii=False)[1:-1], json.dumps(value)[1:-1]):
        for spelled in (escaped, _UNICODE_ESCAPE.sub(lambda m: "\\u" + m.group(1).upper(), escaped)):
            found.update((spelled, spelled.replace("/", "\\/")))
    return found


# For texts shown where no credential is known (nothing to mask).
NO_SECRETS = Redactor(())

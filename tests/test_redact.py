"""The redactor: no credential, in any form a request carries it, survives in a text."""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cio_sync.redact import MASK, Redactor

SITE, KEY = "site-1234", "key/with+odd=chars"


def test_each_form_of_a_credential_is_masked() -> None:
    redact = Redactor((SITE, KEY))
    token = base64.b64encode(f"{SITE}:{KEY}".encode()).decode()
    for text in (KEY, quote(KEY, safe=""), f"Authorization: Basic {token}", f"site {SITE} said no"):
        cleaned = redact(text)
        assert KEY not in cleaned and SITE not in cleaned and token not in cleaned
        assert MASK in cleaned


def test_texts_without_credentials_pass_unchanged() -> None:
    assert Redactor((SITE, KEY))("HTTP 400: attribute too long") == "HTTP 400: attribute too long"
    assert Redactor((None, ""))("anything") == "anything"


# A credential holding a bracket could be spelled again across the mask's edge.
_SECRETS = st.text(alphabet=st.characters(blacklist_characters="[]"), min_size=4).filter(lambda s: s not in MASK)


@given(st.text(), _SECRETS, st.text())
def test_a_credential_never_survives(before: str, secret: str, after: str) -> None:
    assert secret not in Redactor((secret,))(before + secret + after)


@pytest.mark.parametrize(
    "key", ["sécret-key-42", 'abc"def-123', "back\\slash-9", "tab\tkey-7", "sl/ash-key-5", "\ud800-lone"]
)
def test_a_credential_quoted_back_in_a_json_error_is_masked(key: str) -> None:
    # An API that quotes the request back in a JSON body escapes what JSON must (quotes, backslashes,
    # control characters), and may escape every character beyond ASCII, and "/", too.
    redact = Redactor((SITE, key))
    ascii_escaped = json.dumps(key)[1:-1]
    upper_hex = re.sub(r"\\u([0-9a-f]{4})", lambda m: "\\u" + m.group(1).upper(), ascii_escaped)
    for quoted in {json.dumps(key, ensure_ascii=False)[1:-1], ascii_escaped, upper_hex}:
        for spelled in (quoted, quoted.replace("/", "\\/")):
            cleaned = redact(f'{{"error": "bad key {spelled}"}}')
            assert spelled not in cleaned and MASK in cleaned


@given(st.text(), _SECRETS, st.text(), st.booleans())
def test_a_credential_never_survives_as_json_spells_it(before: str, secret: str, after: str, ascii_only: bool) -> None:
    quoted = json.dumps(secret, ensure_ascii=ascii_only)[1:-1]
    assert quoted not in Redactor((secret,))(before + quoted + after)

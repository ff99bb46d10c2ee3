"""The redactor: no credential, in any form a request carries it, survives in a text."""

from __future__ import annotations

import base64
from urllib.parse import quote

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

"""Unsubscribe tokens: the precomputed-pad HMAC is RFC 2104 HMAC-SHA256, links need no
quoting, and tokens verify (or not) as before."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st

from sinks.unsubscribe import _mac, make_token, unsubscribe_url, verify_token

_ids = st.text(min_size=1, max_size=60)
_secrets = st.text(max_size=100)  # past the 64-byte block: the key is hashed first


@settings(max_examples=300, deadline=None)
@given(secret=_secrets, customer_id=_ids, trigger_id=_ids)
def test_mac_is_hmac_sha256(secret: str, customer_id: str, trigger_id: str) -> None:
    expected = hmac.new(secret.encode(), f"{customer_id}\x1f{trigger_id}".encode(),
                        hashlib.sha256).hexdigest()[:32]
    assert _mac(secret, customer_id, trigger_id) == expected


@settings(max_examples=200, deadline=None)
@given(secret=_secrets, customer_id=_ids, trigger_id=_ids)
def test_links_carry_the_token_unquoted_and_it_verifies(
    secret: str, customer_id: str, trigger_id: str
) -> None:
    token = make_token(secret, customer_id, trigger_id)
    assert quote(token) == token
    url = unsubscribe_url("https://shop.example/u", secret, customer_id, trigger_id)
    assert url == f"https://shop.example/u?t={token}"
    if "\x1f" not in customer_id + trigger_id:
        assert verify_token(secret, token) == (customer_id, trigger_id)
    assert verify_token(secret + "x", token) is None


def test_a_forged_token_is_refused() -> None:
    raw = "c-1\x1ft-1\x1f" + "0" * 32
    forged = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    assert verify_token("s3cret", forged) is None
    assert verify_token("s3cret", make_token("s3cret", "c-1", "t-1")) == ("c-1", "t-1")

"""Signed one-click unsubscribe links (RFC 8058) that carry no address, only the customer id.

The token is ``<customer_id>.<trigger_id>.<hmac>`` base64url-encoded; the webhook server
(:mod:`sinks.webhooks`) verifies it on ``POST /unsubscribe?t=...`` and suppresses the customer.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
from typing import Any

_BLOCK = 64
"""SHA-256's block size: HMAC pads (or first hashes) the key to it (RFC 2104)."""


@functools.lru_cache(maxsize=8)
def _pads(secret: str) -> tuple[Any, Any]:
    """SHA-256 states after the HMAC inner and outer key blocks of ``secret``, computed once:
    a token then costs two state copies and two short hashes (RFC 2104 HMAC, what
    ``hmac.new(secret, msg, sha256)`` computes; ``hmac.digest`` sets the key up per call)."""
    key = secret.encode()
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    return inner, outer


def _mac(secret: str, customer_id: str, trigger_id: str) -> str:
    """HMAC-SHA256 of the ids (hex, first 32 characters)."""
    inner_pad, outer_pad = _pads(secret)
    inner = inner_pad.copy()
    inner.update(f"{customer_id}\x1f{trigger_id}".encode())
    outer = outer_pad.copy()
    outer.update(inner.digest())
    return str(outer.hexdigest()[:32])


def make_token(secret: str, customer_id: str, trigger_id: str) -> str:
    """A token that proves the link was issued by us for ``customer_id``."""
    raw = f"{customer_id}\x1f{trigger_id}\x1f{_mac(secret, customer_id, trigger_id)}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def verify_token(secret: str, token: str) -> tuple[str, str] | None:
    """``(customer_id, trigger_id)`` when ``token`` is genuine, else None."""
    try:
        padded = token + "=" * (-len(token) % 4)
        customer_id, trigger_id, mac = base64.urlsafe_b64decode(padded).decode().split("\x1f")
    except (ValueError, UnicodeDecodeError):
        return None
    if not hmac.compare_digest(mac, _mac(secret, customer_id, trigger_id)):
        return None
    return customer_id, trigger_id


def unsubscribe_url(base_url: str, secret: str, customer_id: str, trigger_id: str) -> str:
    """The one-click link put in the email body and the List-Unsubscribe header."""
    sep = "&" if "?" in base_url else "?"
    # a base64url token without padding has only characters ``quote`` leaves as they are
    return f"{base_url}{sep}t={make_token(secret, customer_id, trigger_id)}"

"""One representative, fully populated instance of every event type (docs, tests, benchmarks).

``sample_events()`` returns them keyed by event name; values are deterministic (fixed ids and
timestamps) so the bytes they encode to are stable. The addresses are reserved example domains.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from schemas.models import EVENT_TYPES, Product

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)

_SHOES = Product(
    product_id="sku-1001", sku="RUN-42", name="Trail runner", category="shoes/running",
    brand="Acme", price=89.5, quantity=1, url="https://shop.example/p/1001",
    image_url="https://cdn.example/1001.jpg",
)
_SOCKS = Product(product_id="sku-2002", name="Wool socks", category="accessories", price=12.0,
                 quantity=2)

_ENVELOPE: dict[str, Any] = {
    "occurred_at": T0, "received_at": T0 + timedelta(milliseconds=250),
    "customer_id": "cust-1", "anonymous_id": "anon-1", "source": "web",
}
_EMAIL: dict[str, Any] = {
    "message_id": "msg-1", "trigger_id": "trg-1", "trigger_type": "cart_abandonment",
    "variant": "B",
}
_CART: dict[str, Any] = {"cart_id": "cart-1", "currency": "EUR"}

_FIELDS: dict[str, dict[str, Any]] = {
    "Page Viewed": {"url": "https://shop.example/", "path": "/", "title": "Home",
                    "referrer": "https://search.example/"},
    "Product List Viewed": {"list_id": "list-shoes", "category": "shoes",
                            "products": [_SHOES, _SOCKS]},
    "Product Viewed": {"product": _SHOES, "currency": "EUR"},
    "Products Searched": {"query": "trail shoes"},
    "Product Added": {**_CART, "product": _SHOES},
    "Product Removed": {**_CART, "product": _SOCKS},
    "Cart Viewed": {**_CART, "products": [_SHOES, _SOCKS], "value": 113.5},
    "Checkout Started": {**_CART, "order_id": "ord-1", "products": [_SHOES], "value": 89.5},
    "Order Completed": {"order_id": "ord-1", "cart_id": "cart-1", "revenue": 113.5,
                        "currency": "EUR", "products": [_SHOES, _SOCKS]},
    "Order Refunded": {"order_id": "ord-1", "revenue": 12.0, "products": [_SOCKS]},
    "Order Cancelled": {"order_id": "ord-2", "revenue": 40.0},
    "Email Delivered": _EMAIL,
    "Email Opened": _EMAIL,
    "Email Clicked": {**_EMAIL, "url": "https://shop.example/cart"},
    "Email Bounced": {**_EMAIL, "bounce_type": "soft", "reason": "mailbox full"},
    "Email Unsubscribed": _EMAIL,
    "Email Spam Reported": _EMAIL,
    "Identify": {"traits": {"email": "ada@example.com", "first_name": "Ada",
                            "locale": "en-GB", "time_zone": "Europe/London",
                            "consent_email": True}},
    "Alias": {"previous_id": "anon-1"},
    "Consent Changed": {"granted": False},
    "Erasure Requested": {"reason": "customer request"},
}

_OUTPUTS: dict[str, dict[str, Any]] = {
    "Persona Transition": {
        "transition_id": "tr-1", "customer_id": "cust-1", "dimension": "lifecycle",
        "from_persona": "browser", "to_persona": "cart_abandoner", "rule_id": "cart-idle",
        "facts": {"cart_value": "113.5"}, "cause_event_id": "evt-5", "at": T0,
    },
    "Trigger": {
        "trigger_id": "trg-1", "customer_id": "cust-1", "trigger_type": "cart_abandonment",
        "rule_id": "cart-1h", "episode": "cart-1", "step": 1, "priority": 40,
        "created_at": T0, "not_before": T0, "expires_at": T0 + timedelta(hours=23),
        "recipient": "ada@example.com", "locale": "en-GB", "time_zone": "Europe/London",
        "persona": "cart_abandoner", "tokens": {"first_name": "Ada"},
        "products": [_SHOES], "experiment": "subject-1", "variant": "B",
        "cause_event_id": "evt-5",
    },
    "Send Result": {
        "trigger_id": "trg-1", "customer_id": "cust-1", "trigger_type": "cart_abandonment",
        "outcome": "sent", "esp": "smtp", "esp_message_id": "m-1", "persona": "cart_abandoner",
        "variant": "B", "attempts": 1, "at": T0,
    },
    "Dead Letter": {
        "reason": "Product Viewed: product.product_id: String should have at least 1 character",
        "error_type": "ValidationFailed", "original_topic": "events.site",
        "original_partition": 3, "original_offset": 42, "original_key": b"cust-1",
        "payload": b"\x00\x00\x00\x00\x03garbage", "at": T0,
    },
}


def sample_events() -> dict[str, BaseModel]:
    """Event name -> a populated, valid instance; covers every name in ``EVENT_TYPES``."""
    out: dict[str, BaseModel] = {}
    for n, (event_type, cls) in enumerate(EVENT_TYPES.items(), start=1):
        if event_type in _OUTPUTS:
            out[event_type] = cls.model_validate(_OUTPUTS[event_type])
        else:
            fields = {**_ENVELOPE, "event_id": f"evt-{n}", **_FIELDS[event_type]}
            out[event_type] = cls.model_validate(fields)
    return out

"""Sample triggers for ``personaflow templates check`` and previews: every trigger type, for a
loyal customer, a first-time browser with no tokens at all, and one with markup in its data."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from schemas.models import Product, Trigger

TRIGGER_TYPES = (
    "cart_abandonment",
    "browse_abandonment",
    "post_purchase_cross_sell",
    "re_engagement",
    "win_back",
    "welcome",
    "persona_entry",
)
"""Trigger types the engine emits (each has a template folder)."""

_PRODUCTS = [
    Product(product_id="sku-1", name="Trail Shoe", brand="Acme", price=89.9,
            url="https://shop.example.com/p/sku-1", image_url="https://cdn.example.com/1.jpg"),
    Product(product_id="sku-2", name="Wool Socks", price=12.5, quantity=2),
]


def sample_triggers(trigger_type: str) -> list[Trigger]:
    """Three triggers of ``trigger_type``: loyal with tokens, first-time browser without any,
    and one whose data contains HTML markup (must come out escaped)."""
    at = datetime(2026, 1, 1, 12, tzinfo=UTC)
    base: dict[str, Any] = {
        "trigger_type": trigger_type, "rule_id": f"{trigger_type}.v1", "created_at": at,
        "recipient": "someone@example.com", "customer_id": "c-1",
    }
    return [
        Trigger(trigger_id=f"{trigger_type}-loyal", persona="loyal", segment="high_value",
                tokens={"first_name": "Ada", "discount_code": "THANKS10",
                        "discount_percent": "10"},
                products=_PRODUCTS, step=1, **base),
        Trigger(trigger_id=f"{trigger_type}-first", persona="first_time_browser", segment="new",
                step=1, **base),
        Trigger(trigger_id=f"{trigger_type}-markup", persona="browser", variant="B",
                tokens={"first_name": "<script>alert(1)</script>"},
                products=[Product(product_id="x", name="<b>Bold</b> & Co")], step=3, **base),
    ]

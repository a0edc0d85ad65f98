"""Sample triggers for ``personaflow templates check`` and previews: every trigger type, for a
loyal customer, a first-time browser with no tokens at all, one with markup in its data, and
one per lifecycle persona of the engine's rules (names read from the rules file, see
:mod:`sinks.personas`), each with the tokens the engine really sets (processors.triggers)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schemas.models import Product, Trigger
from sinks.personas import vocabulary

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

ENGINE_TOKENS = {
    "first_name": "Ada", "categories": "shoes, socks", "top_category": "shoes",
    "cart_id": "cart-1", "cart_value": "114.90", "cart_items": "3", "currency": "EUR",
    "product_id": "sku-1", "order_id": "o-1",
}
"""Every token processors.triggers puts in ``Trigger.tokens`` (a trigger has a subset)."""


def sample_triggers(trigger_type: str, rules_file: Path | None = None) -> list[Trigger]:
    """Triggers of ``trigger_type``: loyal with tokens, first-time browser without any, one
    whose data contains HTML markup (must come out escaped), and one per lifecycle persona."""
    at = datetime(2026, 1, 1, 12, tzinfo=UTC)
    base: dict[str, Any] = {
        "trigger_type": trigger_type, "rule_id": f"{trigger_type}.v1", "created_at": at,
        "recipient": "someone@example.com", "customer_id": "c-1",
    }
    samples = [
        Trigger(trigger_id=f"{trigger_type}-loyal", persona="loyal", segment="champion",
                journey_stage="retention", tokens=ENGINE_TOKENS, products=_PRODUCTS, step=1,
                **base),
        Trigger(trigger_id=f"{trigger_type}-first", persona="new_visitor", segment="prospect",
                journey_stage="awareness", step=1, **base),
        Trigger(trigger_id=f"{trigger_type}-markup", persona="browsing", variant="B",
                interest="recent_browser:<i>x</i>",
                tokens={"first_name": "<script>alert(1)</script>", "top_category": "<b>Bold"},
                products=[Product(product_id="x", name="<b>Bold</b> & Co")], step=3, **base),
    ]
    for persona in vocabulary(rules_file).lifecycle:
        samples.append(Trigger(
            trigger_id=f"{trigger_type}-{persona}", persona=persona, segment="promising",
            interest="recent_browser:shoes", tokens={"top_category": "shoes"}, step=2, **base,
        ))
    return samples

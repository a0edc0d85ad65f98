"""The mutable facts about one synthetic shopper: who they are, their cart, their orders."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from schemas.models import Product


@dataclass
class Order:
    """An order the shopper placed (for later refunds and cancellations)."""

    order_id: str
    revenue: float
    products: list[Product]
    at: datetime
    settled: bool = False


@dataclass
class Person:
    """Who the shopper is: ids and traits (email like ``customer-12@example.test``)."""

    number: int
    anonymous_id: str
    identified: bool
    first_name: str | None
    locale: str
    time_zone: str
    currency: str
    consent: bool
    bad_address: bool

    @property
    def customer_id(self) -> str:
        """The canonical customer id."""
        return f"customer-{self.number}"

    @property
    def email(self) -> str:
        """The (synthetic, undeliverable) address."""
        return f"customer-{self.number}@example.test"


@dataclass
class Basket:
    """The shopper's open cart."""

    cart_id: str
    items: dict[str, Product] = field(default_factory=dict)
    touched_at: datetime | None = None

    @property
    def value(self) -> float:
        """Cart value: price times quantity over the items."""
        return round(sum(p.price * p.quantity for p in self.items.values()), 2)

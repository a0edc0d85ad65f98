"""Small builders of input events for tests, examples and benchmarks (times in epoch seconds).

    ev = Events("c1")            # customer c1, event ids e1, e2, ... in call order
    ev.view("p1", at=T)          # Product Viewed
    ev.add("k1", "p1", at=T + 60)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from schemas import models as m

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC).timestamp()
"""A Monday, 10:00 UTC: a convenient start time."""

CATALOGUE = {
    "p1": ("Trail Runner", "shoes", 80.0),
    "p2": ("Rain Jacket", "outerwear", 120.0),
    "p3": ("Wool Scarf", "accessories", 25.0),
    "p4": ("Table Lamp", "home", 60.0),
    "p5": ("Earbuds", "electronics", 150.0),
}


def product(product_id: str, quantity: int = 1) -> m.Product:
    """A catalogue product (unknown ids get a generic name and category)."""
    name, category, price = CATALOGUE.get(product_id, (product_id.upper(), "misc", 10.0))
    return m.Product(product_id=product_id, name=name, category=category, price=price,
                     quantity=quantity)


def utc(ts: float) -> datetime:
    """Epoch seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(ts, UTC)


class Events:
    """Builds events for one customer (or anonymous visitor) with sequential event ids."""

    def __init__(self, customer_id: str | None, anonymous_id: str | None = None,
                 prefix: str = "e") -> None:
        self.customer_id = customer_id
        self.anonymous_id = anonymous_id
        self.prefix = prefix
        self.n = 0

    def _env(self, at: float) -> dict[str, Any]:
        self.n += 1
        return {"event_id": f"{self.prefix}{self.n}", "occurred_at": utc(at),
                "customer_id": self.customer_id, "anonymous_id": self.anonymous_id}

    def page(self, at: float) -> m.PageViewed:
        return m.PageViewed(**self._env(at), path="/")

    def view(self, product_id: str, at: float) -> m.ProductViewed:
        return m.ProductViewed(**self._env(at), product=product(product_id))

    def search(self, query: str, at: float) -> m.ProductsSearched:
        return m.ProductsSearched(**self._env(at), query=query)

    def add(self, cart_id: str, product_id: str, at: float, quantity: int = 1) -> m.ProductAdded:
        return m.ProductAdded(**self._env(at), cart_id=cart_id,
                              product=product(product_id, quantity))

    def remove(self, cart_id: str, product_id: str, at: float) -> m.ProductRemoved:
        return m.ProductRemoved(**self._env(at), cart_id=cart_id, product=product(product_id))

    def cart_view(self, cart_id: str, at: float) -> m.CartViewed:
        return m.CartViewed(**self._env(at), cart_id=cart_id)

    def checkout(self, cart_id: str, at: float) -> m.CheckoutStarted:
        return m.CheckoutStarted(**self._env(at), cart_id=cart_id)

    def order(self, order_id: str, revenue: float, at: float, cart_id: str | None = None,
              products: tuple[str, ...] = ()) -> m.OrderCompleted:
        return m.OrderCompleted(**self._env(at), order_id=order_id, cart_id=cart_id,
                                revenue=revenue, products=[product(p) for p in products])

    def refund(self, order_id: str, at: float, revenue: float = 0.0) -> m.OrderRefunded:
        return m.OrderRefunded(**self._env(at), order_id=order_id, revenue=revenue)

    def cancel(self, order_id: str, at: float) -> m.OrderCancelled:
        return m.OrderCancelled(**self._env(at), order_id=order_id)

    def identify(self, at: float, email: str | None = "ann@example.com",
                 first_name: str | None = "Ann", time_zone: str | None = None,
                 locale: str | None = None, consent: bool | None = None) -> m.Identify:
        traits = m.Traits(email=email, first_name=first_name, time_zone=time_zone,
                          locale=locale, consent_email=consent)
        return m.Identify(**self._env(at), traits=traits)

    def consent(self, granted: bool, at: float, purpose: str = "marketing") -> m.ConsentChanged:
        return m.ConsentChanged(**self._env(at), granted=granted, purpose=purpose)  # type: ignore[arg-type]

    def opened(self, at: float) -> m.EmailOpened:
        return m.EmailOpened(**self._env(at))

    def clicked(self, at: float) -> m.EmailClicked:
        return m.EmailClicked(**self._env(at))

    def delivered(self, at: float) -> m.EmailDelivered:
        return m.EmailDelivered(**self._env(at))

    def bounced(self, at: float, hard: bool = True) -> m.EmailBounced:
        kind = m.BounceKind.HARD if hard else m.BounceKind.SOFT
        return m.EmailBounced(**self._env(at), bounce_type=kind)

    def unsubscribed(self, at: float) -> m.EmailUnsubscribed:
        return m.EmailUnsubscribed(**self._env(at))

    def spam(self, at: float) -> m.EmailSpamReported:
        return m.EmailSpamReported(**self._env(at))

    def erase(self, at: float) -> m.ErasureRequested:
        return m.ErasureRequested(**self._env(at))

    def alias(self, previous_id: str, at: float) -> m.Alias:
        return m.Alias(**self._env(at), previous_id=previous_id)


class Runner:
    """Feeds one customer's events through an engine with increasing offsets (one partition),
    collecting every transition, trigger and skip; ``now`` defaults to the event time."""

    def __init__(self, engine: Any, customer_id: str, topic: str = "events") -> None:
        from processors.engine import InputRef

        self.engine = engine
        self.customer_id = customer_id
        self.topic = topic
        self.offset = 0
        self.state: Any = None
        self.transitions: list[m.PersonaTransition] = []
        self.triggers: list[m.Trigger] = []
        self.skipped: list[tuple[str, str]] = []
        self._ref = InputRef

    def _take(self, out: Any) -> Any:
        self.state = out.state
        self.transitions.extend(out.transitions)
        self.triggers.extend(out.triggers)
        self.skipped.extend(out.skipped)
        return out

    def apply(self, event: Any, now: float | None = None) -> Any:
        """Apply ``event`` (at its own time unless ``now`` is given)."""
        self.offset += 1
        ref = self._ref(self.topic, 0, self.offset)
        at = event.occurred_ts if now is None else now
        return self._take(self.engine.apply(self.state, self.customer_id, event, ref, at))

    def tick(self, now: float) -> Any:
        """Fire whatever is due at ``now``."""
        return self._take(self.engine.tick(self.state, self.customer_id, now))

    def types(self) -> list[str]:
        """Trigger types emitted so far, in order."""
        return [t.trigger_type for t in self.triggers]


OPEN_RULES = """
settings:
  budget: {per_day: 10, per_week: 50}
  quiet_hours: {start: 0, end: 0}
  holdout: {share: 0}
  limits: {sent: 50}
deadlines:
  welcome: {enabled: false}
"""
"""Rules for unit tests: welcome off, generous budget, no quiet hours, no holdout, so each test
sees only the sequence it is about."""

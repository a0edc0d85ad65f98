"""The facts rule guards can read: a registry of named getters over an evaluation context.

A guard such as ``orders >= 2 and since_last_order < 30d`` reads the facts ``orders`` and
``since_last_order``. :data:`FACTS` maps each name to (getter, description); ``personaflow
rules explain`` lists them. Durations are seconds; a fact that does not apply is ``null``.
"""

from __future__ import annotations

from collections.abc import Callable
from math import ceil
from typing import Any

from processors.scoring import decay, rfm, rfm_segment, top_categories
from processors.state import CustomerState, Deadline


class Ctx:
    """What a guard is evaluated against: the state, the input (if any) and the time."""

    __slots__ = ("aff_half", "cat_views", "dl", "eng_half", "etype", "ev", "interest_views",
                 "now", "recent", "st")

    def __init__(
        self,
        st: CustomerState,
        ev: Any,
        etype: str,
        now: float,
        dl: Deadline | None = None,
        recent: float = 172_800.0,
        eng_half: float = 14 * 86_400.0,
        aff_half: float = 7 * 86_400.0,
    ) -> None:
        self.st = st
        self.ev = ev  # a schemas.models input event, or None for ticks and merges
        self.etype = etype  # the event's type, "tick" or "merge"
        self.now = now
        self.dl = dl  # the deadline being fired, on ticks
        self.recent = recent  # the "recent" window of recent_* facts
        self.eng_half = eng_half
        self.aff_half = aff_half
        # facts read by several guards, computed once per evaluation (-1: not yet)
        self.cat_views = -1
        self.interest_views = -1

    def forget(self) -> None:
        """Drop remembered facts (after the state changed)."""
        self.cat_views = self.interest_views = -1


def _since(at: float | None, now: float) -> float | None:
    if at is None:
        return None
    return now - at if now > at else 0.0


def _event_product(c: Ctx) -> Any:
    return getattr(c.ev, "product", None)


def category_of(ev: Any) -> str | None:
    """The category of an input event's product or list (``event.category``), or None."""
    product = getattr(ev, "product", None)
    if product is not None:
        return product.category or None  # type: ignore[no-any-return]
    return getattr(ev, "category", None) or None


def _event_category(c: Ctx) -> str | None:
    return category_of(c.ev)


def _event_value(c: Ctx) -> float | None:
    for name in ("revenue", "value"):
        value = getattr(c.ev, name, None)
        if value is not None:
            return float(value)
    product = _event_product(c)
    return None if product is None else float(product.price * product.quantity)


def _recent_views(c: Ctx, category: str | None = None, product: str | None = None) -> int:
    since = ceil(c.now - c.recent)  # an int: the view times are ints (no int-float compares)
    n = 0
    # plain loops over tuple fields (0: product_id, 2: category, 4: at): this runs per view
    if category is not None:
        for v in c.st.views:
            if v[2] == category and v[4] >= since:
                n += 1
    elif product is not None:
        for v in c.st.views:
            if v[0] == product and v[4] >= since:
                n += 1
    else:
        for v in c.st.views:
            if v[4] >= since:
                n += 1
    return n


def _category_views(c: Ctx) -> int:
    n = c.cat_views
    if n < 0:  # _recent_views(c, category=...), inlined: this runs on most product views
        category = category_of(c.ev)
        n = 0
        if category:
            since = ceil(c.now - c.recent)
            for v in c.st.views:
                if v[2] == category and v[4] >= since:
                    n += 1
        c.cat_views = n
    return n


def _interest_views(c: Ctx) -> int:
    if c.interest_views < 0:
        interest = c.st.interest
        if not interest or ":" not in interest:
            c.interest_views = 0
        else:
            category = interest.partition(":")[2]
            if c.cat_views >= 0 and category == category_of(c.ev):
                c.interest_views = c.cat_views  # the same count (browsing the same category)
            else:
                c.interest_views = _recent_views(c, category=category)
    return c.interest_views


def _open_carts(c: Ctx) -> list[Any]:
    return [cart for cart in c.st.carts.values() if cart.items]


def _rfm(c: Ctx) -> tuple[int, int, int]:
    st = c.st
    return rfm(st.last_order_at, st.orders, st.revenue - st.refunded, c.now)


def _consent(c: Ctx) -> bool:
    return c.st.consent_marketing is not False and c.st.suppressed is None


FACTS: dict[str, tuple[Callable[[Ctx], Any], str]] = {
    "event.type": (lambda c: c.etype, "the input's type; 'tick' for deadlines, 'merge'"),
    "event.category": (_event_category, "category of the event's product or list"),
    "event.product_id": (
        lambda c: getattr(_event_product(c), "product_id", None), "the event's product id"
    ),
    "event.value": (_event_value, "order revenue, cart value or product price x quantity"),
    "deadline": (lambda c: c.dl.source if c.dl else None, "the deadline firing (ticks)"),
    "deadline.step": (lambda c: c.dl.step + 1 if c.dl else None, "its step, from 1"),
    "orders": (lambda c: c.st.orders, "completed orders"),
    "revenue": (lambda c: c.st.revenue - c.st.refunded, "net lifetime revenue"),
    "aov": (lambda c: c.st.aov, "average order value"),
    "refunds": (lambda c: c.st.refunds, "refunded orders"),
    "identified": (lambda c: c.st.identified_at is not None, "has identified (Identify)"),
    "has_email": (lambda c: c.st.email is not None, "an email address is known"),
    "consent": (_consent, "marketing email allowed (consent not withdrawn, not suppressed)"),
    "suppressed": (lambda c: c.st.suppressed is not None, "unsubscribed, bounced or complained"),
    "sessions": (lambda c: c.st.sessions, "sessions (30 min inactivity gap)"),
    "searches": (lambda c: c.st.searches, "product searches"),
    "views": (lambda c: len(c.st.views), "recent product views kept"),
    "recent_views": (_recent_views, "product views within the recent window"),
    "recent_category_views": (
        _category_views,
        "views of the event's category within the recent window",
    ),
    "recent_product_views": (
        lambda c: _recent_views(c, product=getattr(_event_product(c), "product_id", None))
        if _event_product(c) is not None
        else 0,
        "views of the event's product within the recent window",
    ),
    "interest_category_views": (
        _interest_views,
        "views of the current interest's category (the part after ':') in the recent window",
    ),
    "carts": (lambda c: len(_open_carts(c)), "open carts with items"),
    "cart_value": (
        lambda c: max((cart.value for cart in _open_carts(c)), default=0.0),
        "value of the largest open cart",
    ),
    "checkout_started": (
        lambda c: any(cart.checkout_at is not None for cart in _open_carts(c)),
        "an open cart has started checkout",
    ),
    "since_first_seen": (lambda c: _since(c.st.first_seen, c.now), "seconds since first seen"),
    "since_last_seen": (lambda c: _since(c.st.last_seen, c.now), "seconds since last activity"),
    "since_last_order": (lambda c: _since(c.st.last_order_at, c.now), "since the last order"),
    "since_last_view": (
        lambda c: _since(c.st.views[-1].at, c.now) if c.st.views else None,
        "seconds since the last product view",
    ),
    "since_last_open": (lambda c: _since(c.st.last_open, c.now), "since the last email open"),
    "since_last_click": (lambda c: _since(c.st.last_click, c.now), "since the last click"),
    "since_persona": (lambda c: _since(c.st.persona_at, c.now), "time in the current persona"),
    "since_identified": (lambda c: _since(c.st.identified_at, c.now), "since identified"),
    "engagement": (
        lambda c: round(decay(c.st.engagement, c.st.engagement_at, c.now, c.eng_half), 3),
        "email engagement score, decayed",
    ),
    "opens": (lambda c: c.st.opens, "emails opened"),
    "clicks": (lambda c: c.st.clicks, "emails clicked"),
    "rfm.r": (lambda c: _rfm(c)[0], "RFM recency score 0-5"),
    "rfm.f": (lambda c: _rfm(c)[1], "RFM frequency score 0-5"),
    "rfm.m": (lambda c: _rfm(c)[2], "RFM monetary score 0-5"),
    "segment": (lambda c: rfm_segment(*_rfm(c)), "RFM segment name"),
    "top_category": (
        lambda c: next(iter(top_categories(c.st.affinity, c.now, c.aff_half, 1)), None),
        "category with the highest decayed affinity",
    ),
    "purchased_categories": (lambda c: list(c.st.categories), "categories bought recently"),
    "persona": (lambda c: c.st.persona, "current lifecycle persona"),
    "interest": (lambda c: c.st.interest, "current interest facet (or null)"),
    "journey": (lambda c: c.st.journey, "current journey stage"),
}

GETTERS: dict[str, Callable[[Ctx], Any]] = {name: fn for name, (fn, _) in FACTS.items()}
"""Fact name -> getter, the registry handed to the condition compiler."""


_COLLECTIONS = (list, tuple, frozenset, set)
"""The collection types :func:`describe` joins (a tuple: ``list | tuple | ...`` in a compiled
``isinstance`` built three union objects per call)."""


def describe(value: Any) -> str:
    """A fact value as the string stored in a transition's ``facts`` (short and stable)."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, _COLLECTIONS):
        return ",".join(sorted(str(v) for v in value))
    return str(value)


def fact_values(names: tuple[str, ...], ctx: Ctx) -> dict[str, str]:
    """The named facts' current values, for an explanation record."""
    return {name: describe(GETTERS[name](ctx)) for name in names}

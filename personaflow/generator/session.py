"""What happens in one visit (browse, search, cart, checkout, purchase, identify) and between
visits (the ESP's feedback on emails). Functions queue events on a :class:`Shopper`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from personaflow.generator.catalogue import CATEGORIES, PRODUCTS, TRIGGER_TYPES
from personaflow.generator.state import Basket, Order
from schemas import models as m

if TYPE_CHECKING:
    from personaflow.generator.shopper import Shopper

_SEARCHES = {c.slug: c.searches for c in CATEGORIES}
_REFERRERS = ("https://www.google.com/", "https://www.instagram.com/", None, None)


def run_session(s: Shopper) -> None:
    """One visit: land, maybe sign in, browse a few lists and products, shop."""
    _land(s)
    _expire_cart(s)
    _settle_old_order(s)
    if not s.person.identified and s.rng.random() < 0.2:
        identify(s, alias=s.rng.random() < 0.4)
    elif s.person.identified and s.rng.random() < 0.05:
        s.emit(m.Identify, traits=s.traits())  # profile refresh
    for _ in range(s.rng.randint(1, 3)):
        _browse(s)
    _cart_moves(s)
    _maybe_preferences(s)


def _land(s: Shopper) -> None:
    path = s.rng.choice(("/", "/", f"/{s.rng.choice(s.favourites)}", "/sale"))
    s.emit(m.PageViewed, url=s.page_url(path), path=path, title="Shop",
           referrer=s.rng.choice(_REFERRERS))  # fmt: skip
    if s.person.identified and not s.orders and not s.viewed:
        s.emit(m.Identify, traits=s.traits())  # a known customer logs in for the first time


CART_LIFETIME = timedelta(days=7)
"""A cart untouched this long is gone; the shopper starts a new one (an abandoned cart)."""


def _expire_cart(s: Shopper) -> None:
    touched = s.basket.touched_at
    if s.basket.items and touched is not None and s.clock - touched > CART_LIFETIME:
        s.basket = Basket(s.new_id("cart"))


def identify(s: Shopper, *, alias: bool) -> None:
    """The anonymous visitor signs up or in: Identify binds the anonymous id (and Alias too)."""
    s.person.identified = True
    s.emit(m.Identify, traits=s.traits())
    if alias:
        s.emit(m.Alias, previous_id=s.person.anonymous_id)


def _browse(s: Shopper) -> None:
    category = s.rng.choice(s.favourites) if s.rng.random() < 0.7 else s.rng.choice(
        sorted(PRODUCTS)
    )
    if s.rng.random() < 0.25:
        s.emit(m.ProductsSearched, query=s.rng.choice(_SEARCHES[category]))
    shown = list(PRODUCTS[category][:4])
    s.emit(m.ProductListViewed, list_id=f"list-{category}", category=category, products=shown)
    for _ in range(s.rng.randint(1, 3)):
        _view(s, _revisit(s) or s.product(category))


def _revisit(s: Shopper) -> m.Product | None:
    """Sometimes look again at something seen in the last 48 hours."""
    if s.rng.random() >= 0.3:
        return None
    since = s.clock - timedelta(hours=48)
    recent = [p for p, at in s.viewed if at > since]
    return s.rng.choice(recent) if recent else None


def _view(s: Shopper, product: m.Product) -> None:
    s.emit(m.ProductViewed, product=product, currency=s.person.currency)
    s.viewed = [*s.viewed[-19:], (product, s.clock)]
    if s.rng.random() < s.profile.add:
        quantity = 1 if s.rng.random() < 0.85 else 2
        item = product.model_copy(update={"quantity": quantity})
        s.basket.items[product.product_id] = item
        s.basket.touched_at = s.clock
        s.emit(m.ProductAdded, cart_id=s.basket.cart_id, product=item,
               currency=s.person.currency)  # fmt: skip


def _cart_moves(s: Shopper) -> None:
    if not s.basket.items:
        return
    if len(s.basket.items) > 1 and s.rng.random() < s.profile.remove:
        product_id = s.rng.choice(sorted(s.basket.items))
        item = s.basket.items.pop(product_id)
        s.basket.touched_at = s.clock
        s.emit(m.ProductRemoved, cart_id=s.basket.cart_id, product=item,
               currency=s.person.currency)  # fmt: skip
    if s.rng.random() < 0.5:
        s.emit(m.CartViewed, cart_id=s.basket.cart_id, products=list(s.basket.items.values()),
               value=s.basket.value, currency=s.person.currency)  # fmt: skip
    if s.rng.random() < s.profile.checkout:
        _checkout(s)


def _checkout(s: Shopper) -> None:
    if not s.person.identified and s.rng.random() < 0.7:
        identify(s, alias=False)  # signs in at checkout; the rest check out as guests
    products = list(s.basket.items.values())
    s.emit(m.CheckoutStarted, cart_id=s.basket.cart_id, products=products,
           value=s.basket.value, currency=s.person.currency)  # fmt: skip
    if s.rng.random() >= s.profile.purchase:
        return  # abandoned at checkout
    order = _place_order(s, products)
    if s.rng.random() < 0.03:
        s.clock += timedelta(minutes=s.rng.uniform(5, 120))
        s.emit(m.OrderCancelled, source="backend", order_id=order.order_id,
               revenue=order.revenue, currency=s.person.currency)  # fmt: skip
        order.settled = True
    s.trigger_hint = "post_purchase"


def _place_order(s: Shopper, products: list[m.Product]) -> Order:
    order = Order(s.new_id("order"), s.basket.value, products, s.clock)
    s.emit(m.OrderCompleted, source="backend", order_id=order.order_id,
           cart_id=s.basket.cart_id, revenue=order.revenue, currency=s.person.currency,
           products=products)  # fmt: skip
    s.orders = [*s.orders[-9:], order]
    s.basket = Basket(s.new_id("cart"))
    return order


def _settle_old_order(s: Shopper) -> None:
    """Now and then a past order (older than a day) is refunded."""
    old = [o for o in s.orders if not o.settled and s.clock - o.at > timedelta(days=1)]
    if old and s.rng.random() < 0.06:
        order = s.rng.choice(old)
        order.settled = True
        s.emit(m.OrderRefunded, source="backend", order_id=order.order_id,
               revenue=order.revenue, currency=s.person.currency,
               products=order.products)  # fmt: skip


def _maybe_preferences(s: Shopper) -> None:
    """Rare preference-centre actions: withdrawing email consent, or asking for erasure."""
    if not s.person.identified:
        return
    roll = s.rng.random()
    if roll < 0.01 and not s.opted_out:
        s.opted_out = True
        s.emit(m.ConsentChanged, granted=False)
    elif roll < 0.0115:
        s.emit(m.ErasureRequested, reason="customer request")
        s.forget()


# ---------------------------------------------------------------- between sessions


def _trigger_type(s: Shopper, gap_end: datetime) -> str:
    if s.basket.items:
        return "cart_abandonment"
    if s.trigger_hint == "post_purchase":
        return "post_purchase"
    if gap_end - s.clock > timedelta(days=30):
        return "win_back"
    return s.rng.choice(TRIGGER_TYPES[1:])


def email_feedback(s: Shopper, gap_end: datetime) -> datetime:
    """Maybe the shopper gets an email before the next visit (due at ``gap_end``); queue the
    ESP's feedback and return when the next visit starts (a click brings it forward)."""
    if not s.can_email() or s.rng.random() >= 0.35:
        return gap_end
    trigger_type = _trigger_type(s, gap_end)
    s.trigger_hint = ""
    s.clock += timedelta(hours=1, minutes=s.rng.uniform(0, 90))
    if s.clock >= gap_end:
        return gap_end
    fields = {"message_id": s.new_id("msg"), "trigger_type": trigger_type,
              "trigger_id": s.new_id("trg"), "variant": s.rng.choice(("A", "B"))}  # fmt: skip
    if s.person.bad_address or s.rng.random() < 0.01:
        _bounce(s, fields)
        return gap_end
    s.emit(m.EmailDelivered, source="esp", **fields)
    return _engage(s, fields, gap_end)


def _bounce(s: Shopper, fields: dict[str, str]) -> None:
    hard = s.person.bad_address
    s.emit(m.EmailBounced, source="esp", bounce_type=m.BounceKind.HARD if hard else
           m.BounceKind.SOFT, reason="mailbox unavailable" if hard else "mailbox full",
           **fields)  # fmt: skip
    s.bounced = s.bounced or hard


def _engage(s: Shopper, fields: dict[str, str], gap_end: datetime) -> datetime:
    roll = s.rng.random()
    if roll < 0.02:
        s.opted_out = True
        kind = m.EmailUnsubscribed if roll < 0.015 else m.EmailSpamReported
        s.emit(kind, source="esp", **fields)
        return gap_end
    if s.rng.random() >= 0.45:
        return gap_end
    s.clock += timedelta(minutes=s.rng.uniform(2, 600))
    s.emit(m.EmailOpened, source="esp", **fields)
    if s.rng.random() >= 0.35:
        return gap_end
    s.emit(m.EmailClicked, source="esp", url=s.page_url("/"), **fields)
    return min(gap_end, s.clock)  # the click brings the shopper back now

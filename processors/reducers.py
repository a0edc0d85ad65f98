"""One reducer per input event type: how an event changes a :class:`CustomerState`.

A reducer is ``fn(state, event, t, rules) -> None`` and mutates ``state``; ``t`` is the event's
``occurred_at`` in whole epoch seconds (converted once by the engine). Reducers schedule and
cancel deadlines (see :mod:`processors.deadlines`) but never emit anything: persona
transitions and triggers are decided afterwards from the new state.
"""

from __future__ import annotations

from collections.abc import Callable
from math import ceil
from typing import Any

from processors import deadlines as dl
from processors.ruleset import RuleSet
from processors.scoring import AFFINITY_POINTS, ENGAGEMENT_POINTS, bump, decay, round2
from processors.state import Cart, CustomerState, Item, Order, View

_new_view = tuple.__new__
"""NamedTuples (View, Item, Order) built without their Python-level ``__new__`` frame."""

Reducer = Callable[[CustomerState, Any, int, RuleSet], None]
NAME_MAX = 60  # product names are cut to this length in state (tokens, not the catalogue)


def touch(st: CustomerState, t: int, rules: RuleSet) -> None:
    """Record activity at ``t``: first/last seen, sessions, the inactivity sequence."""
    first, last = st.first_seen, st.last_seen
    if not first or t < first:
        st.first_seen = t
    if st.sessions == 0 or t - last > rules.settings.session_gap:
        st.sessions += 1
    if t > last:
        st.last_seen = t
    for d in st.deadlines:  # the inactivity sequence re-bases itself lazily when it fires
        if d[1] == "inactivity":  # Deadline.source (index: this runs on every event)
            return
    dl.activity(st, rules)


def _affinity(st: CustomerState, category: str, t: int, kind: str, rules: RuleSet) -> None:
    if not category:
        return
    points = AFFINITY_POINTS[kind]
    affinity = st.affinity
    old = affinity.get(category)
    if old is None:
        affinity[category] = (points, t)
    elif old[1] >= t:  # same second (or late data): no decay to apply
        affinity[category] = (round2(old[0] + points), old[1])
    else:  # bump(), inlined: this runs for most events
        half = rules.settings.affinity_half_life
        affinity[category] = (round2(old[0] * 0.5 ** ((t - old[1]) / half) + points), t)
        return
    if len(affinity) > rules.settings.limits.affinity:
        half = rules.settings.affinity_half_life
        weakest = min(affinity, key=lambda c: (decay(*affinity[c], t, half), c))
        del affinity[weakest]


def _item(p: Any, quantity: int | None = None) -> Item:
    qty = p.quantity if quantity is None else quantity
    return _new_view(Item, (p.product_id, p.name[:NAME_MAX], p.category, p.price, qty))


# ---------------------------------------------------------------------------- site


def page_viewed(st: CustomerState, ev: Any, t: int, rules: RuleSet) -> None:
    """Page Viewed: activity only."""
    touch(st, t, rules)


def list_viewed(st: CustomerState, ev: Any, t: int, rules: RuleSet) -> None:
    """Product List Viewed: activity only (the list's category is an event fact)."""
    touch(st, t, rules)


def searched(st: CustomerState, ev: Any, t: int, rules: RuleSet) -> None:
    """Products Searched: activity and a search count."""
    touch(st, t, rules)
    st.searches += 1


def product_viewed(st: CustomerState, ev: Any, t: int, rules: RuleSet) -> None:
    """Product Viewed: keep the view (bounded), raise the category's affinity, and arm a
    browse reminder on the ``min_views``-th view of the product within the recent window."""
    touch(st, t, rules)
    p = ev.product
    product_id, category, views, settings = p.product_id, p.category, st.views, rules.settings
    # View(...) without its Python-level __new__ frame (the same tuple): runs on every view
    views.append(_new_view(View, (product_id, p.name[:NAME_MAX], category, p.price, t)))
    if len(views) > settings.limits.views:
        del views[0]
    _affinity(st, category, t, "view", rules)
    steps = rules.deadlines.browse
    if not steps:
        return
    since = ceil(t - settings.recent_window)  # an int, as the view times (int compares)
    seen = 0
    for v in views:  # indexes (0: product_id, 4: at): this runs on every view
        if v[0] == product_id and v[4] >= since:
            seen += 1
    if seen == rules.deadlines.browse_min_views:
        episode = f"{product_id}@{t}"
        if dl.still_valid(st, "browse", episode):
            dl.schedule(st, "browse", episode, 0, t + steps[0])


# ---------------------------------------------------------------------------- cart


def _cart(st: CustomerState, cart_id: str, t: int, rules: RuleSet, currency: str) -> Cart:
    cart = st.carts.get(cart_id)
    if cart is None:
        _prune_carts(st, t, rules)
        cart = Cart(cart_id, created_at=t, updated_at=t, currency=currency)
        st.carts[cart_id] = cart
        if len(st.carts) > rules.settings.limits.carts:
            oldest = min(st.carts.values(), key=lambda c: (c.updated_at, c.cart_id))
            close_cart(st, oldest.cart_id)
    cart.updated_at = max(cart.updated_at, t)
    return cart


def _prune_carts(st: CustomerState, t: int, rules: RuleSet) -> None:
    """Forget carts that are done (checked out or out of reminders) and idle for longer than
    the recent window."""
    done = len(rules.deadlines.cart)
    for cart in list(st.carts.values()):
        idle = t - cart.updated_at > rules.settings.recent_window
        if idle and (cart.checkout_at is not None or cart.fired >= done or not cart.items):
            close_cart(st, cart.cart_id)


def close_cart(st: CustomerState, cart_id: str) -> None:
    """Forget a cart and cancel its reminders (bought, evicted or emptied)."""
    st.carts.pop(cart_id, None)
    dl.cancel(st, "cart", cart_id)


def product_added(st: CustomerState, ev: Any, t: int, rules: RuleSet) -> None:
    """Product Added: the line's quantity grows; the cart reminder restarts its clock; a
    browse reminder for this product is cancelled."""
    touch(st, t, rules)
    cart = _cart(st, ev.cart_id, t, rules, ev.currency)
    p = ev.product
    old = cart.items.get(p.product_id)
    qty = (old.quantity if old else 0) + max(1, p.quantity)
    if old is not None or len(cart.items) < rules.settings.limits.cart_items:
        cart.items[p.product_id] = _item(p, qty)
    _affinity(st, p.category, t, "add", rules)
    dl.cancel(st, "browse", prefix=f"{p.product_id}@")
    dl.cart_touched(st, ev.cart_id, rules)


def product_removed(st: CustomerState, ev: Any, t: int, rules: RuleSet) -> None:
    """Product Removed: the line shrinks or goes; an emptied cart cancels its reminders."""
    touch(st, t, rules)
    cart = _cart(st, ev.cart_id, t, rules, ev.currency)
    old = cart.items.get(ev.product.product_id)
    if old is not None:
        left = old.quantity - max(1, ev.product.quantity)
        if left > 0:
            cart.items[old.product_id] = old._replace(quantity=left)
        else:
            del cart.items[old.product_id]
    dl.cart_touched(st, ev.cart_id, rules)


def _snapshot(cart: Cart, products: list[Any], rules: RuleSet) -> None:
    if products:
        limit = rules.settings.limits.cart_items
        cart.items = {p.product_id: _item(p) for p in products[:limit]}


def cart_viewed(st: CustomerState, ev: Any, t: int, rules: RuleSet) -> None:
    """Cart Viewed: activity on the cart; its product list (if sent) replaces the items."""
    touch(st, t, rules)
    cart = _cart(st, ev.cart_id, t, rules, ev.currency)
    _snapshot(cart, ev.products, rules)
    dl.cart_touched(st, ev.cart_id, rules)


def checkout_started(st: CustomerState, ev: Any, t: int, rules: RuleSet) -> None:
    """Checkout Started: marks the cart; its abandonment reminders are cancelled."""
    touch(st, t, rules)
    cart = _cart(st, ev.cart_id, t, rules, ev.currency)
    _snapshot(cart, ev.products, rules)
    cart.checkout_at = t
    dl.cart_touched(st, ev.cart_id, rules)


# ---------------------------------------------------------------------------- purchase


def order_completed(st: CustomerState, ev: Any, t: int, rules: RuleSet) -> None:
    """Order Completed: counts, revenue, categories and affinity; closes the order's cart
    (every open cart when none is named); schedules the post-purchase cross-sell."""
    touch(st, t, rules)
    if any(o.order_id == ev.order_id for o in st.recent_orders):
        return  # the same order reported twice
    st.orders += 1
    st.revenue = round(st.revenue + ev.revenue, 2)
    st.first_order_at = t if st.first_order_at is None else min(st.first_order_at, t)
    st.last_order_at = t if st.last_order_at is None else max(st.last_order_at, t)
    st.recent_orders.append(_new_view(Order, (ev.order_id, ev.revenue, t, False)))
    del st.recent_orders[: -rules.settings.limits.orders]
    for p in ev.products:
        _affinity(st, p.category, t, "purchase", rules)
        if p.category:
            if p.category in st.categories:
                st.categories.remove(p.category)
            st.categories.append(p.category)
    del st.categories[: -rules.settings.limits.categories]
    for cart_id in [ev.cart_id] if ev.cart_id else list(st.carts):
        close_cart(st, cart_id)
    dl.cancel(st, "browse")
    steps = rules.deadlines.post_purchase
    if steps:
        dl.schedule(st, "post_purchase", ev.order_id, 0, t + steps[0])


def _void_order(st: CustomerState, order_id: str, amount: float, refund: bool) -> None:
    for i, order in enumerate(st.recent_orders):
        if order.order_id == order_id and not order.cancelled:
            st.recent_orders[i] = order._replace(cancelled=True)
            if refund:
                st.refunds += 1
                st.refunded = round(st.refunded + (amount or order.revenue), 2)
            else:
                st.orders = max(0, st.orders - 1)
                st.revenue = round(max(0.0, st.revenue - order.revenue), 2)
            break
    else:
        if refund and amount:
            st.refunds += 1
            st.refunded = round(st.refunded + amount, 2)
    dl.cancel(st, "post_purchase", order_id)


def order_refunded(st: CustomerState, ev: Any, t: int, rules: RuleSet) -> None:
    """Order Refunded: refund count and amount (net revenue drops); no cross-sell."""
    _void_order(st, ev.order_id, ev.revenue, refund=True)


def order_cancelled(st: CustomerState, ev: Any, t: int, rules: RuleSet) -> None:
    """Order Cancelled: the order no longer counts; no cross-sell."""
    _void_order(st, ev.order_id, ev.revenue, refund=False)


# ---------------------------------------------------------------------------- engagement


def email_delivered(st: CustomerState, ev: Any, t: int, rules: RuleSet) -> None:
    """Email Delivered: a delivery count."""
    st.delivered += 1


def _engaged(st: CustomerState, ev: Any, t: int, rules: RuleSet) -> None:
    points = ENGAGEMENT_POINTS[ev.type]
    half = rules.settings.engagement_half_life
    st.engagement = bump(st.engagement, st.engagement_at, t, points, half)
    st.engagement_at = max(st.engagement_at, t)


def email_opened(st: CustomerState, ev: Any, t: int, rules: RuleSet) -> None:
    """Email Opened: open count, last open, engagement +1."""
    st.opens += 1
    st.last_open = t if st.last_open is None else max(st.last_open, t)
    _engaged(st, ev, t, rules)


def email_clicked(st: CustomerState, ev: Any, t: int, rules: RuleSet) -> None:
    """Email Clicked: click count, last click, engagement +3."""
    st.clicks += 1
    st.last_click = t if st.last_click is None else max(st.last_click, t)
    _engaged(st, ev, t, rules)


def email_bounced(st: CustomerState, ev: Any, t: int, rules: RuleSet) -> None:
    """Email Bounced: a hard bounce (or the third soft one) suppresses the address."""
    if ev.bounce_type == "hard":
        st.suppressed = "bounced"
    else:
        st.soft_bounces += 1
        if st.soft_bounces >= 3 and st.suppressed is None:
            st.suppressed = "bounced"


def email_unsubscribed(st: CustomerState, ev: Any, t: int, rules: RuleSet) -> None:
    """Email Unsubscribed: marketing consent withdrawn; engagement reset."""
    st.consent_marketing = False
    if st.suppressed is None:
        st.suppressed = "unsubscribed"
    st.engagement, st.engagement_at = 0.0, t


def email_spam_reported(st: CustomerState, ev: Any, t: int, rules: RuleSet) -> None:
    """Email Spam Reported: suppressed as complained (blocks all email); engagement reset."""
    st.consent_marketing = False
    st.suppressed = "complained"
    st.engagement, st.engagement_at = 0.0, t


# ---------------------------------------------------------------------------- identity


def _anonymous(st: CustomerState, anonymous_id: str | None, rules: RuleSet) -> None:
    if anonymous_id and anonymous_id != st.customer_id and anonymous_id not in st.anonymous_ids:
        st.anonymous_ids.append(anonymous_id)
        del st.anonymous_ids[: -rules.settings.limits.anonymous_ids]


def identify(st: CustomerState, ev: Any, t: int, rules: RuleSet) -> None:
    """Identify: traits (email, first name, locale, time zone, consent); the first email
    address learned schedules the welcome email."""
    touch(st, t, rules)
    traits = ev.traits
    had_email = st.email is not None
    st.email = traits.email or st.email
    st.first_name = traits.first_name or st.first_name
    st.locale = traits.locale or st.locale
    st.time_zone = traits.time_zone or st.time_zone
    if traits.consent_email is not None:
        _marketing_consent(st, traits.consent_email)
    _anonymous(st, ev.anonymous_id, rules)
    if st.identified_at is None:
        st.identified_at = t
    steps = rules.deadlines.welcome
    if steps and not had_email and st.email is not None:
        dl.schedule(st, "welcome", "first", 0, t + steps[0])


def _marketing_consent(st: CustomerState, granted: bool) -> None:
    st.consent_marketing = granted
    if granted and st.suppressed == "unsubscribed":
        st.suppressed = None


def alias(st: CustomerState, ev: Any, t: int, rules: RuleSet) -> None:
    """Alias: remembers the previous (anonymous) id."""
    _anonymous(st, ev.previous_id, rules)


def consent_changed(st: CustomerState, ev: Any, t: int, rules: RuleSet) -> None:
    """Consent Changed: marketing or transactional email consent (a marketing opt-in lifts an
    unsubscribe, never a bounce or complaint)."""
    if ev.purpose == "marketing":
        _marketing_consent(st, ev.granted)
    else:
        st.consent_transactional = ev.granted


def erasure_requested(st: CustomerState, ev: Any, t: int, rules: RuleSet) -> None:
    """Erasure Requested: wipes personal data, history, personas and pending deadlines; keeps
    the id, the watermarks (so a replay stays a no-op) and the erasure time. Marketing consent
    is recorded as withdrawn until the customer opts in again."""
    fresh = CustomerState(st.customer_id, erased_at=t, consent_marketing=False)
    fresh.watermarks = st.watermarks
    for name in CustomerState.__dataclass_fields__:
        setattr(st, name, getattr(fresh, name))


REDUCERS: dict[str, Reducer] = {
    "Page Viewed": page_viewed,
    "Product List Viewed": list_viewed,
    "Products Searched": searched,
    "Product Viewed": product_viewed,
    "Product Added": product_added,
    "Product Removed": product_removed,
    "Cart Viewed": cart_viewed,
    "Checkout Started": checkout_started,
    "Order Completed": order_completed,
    "Order Refunded": order_refunded,
    "Order Cancelled": order_cancelled,
    "Email Delivered": email_delivered,
    "Email Opened": email_opened,
    "Email Clicked": email_clicked,
    "Email Bounced": email_bounced,
    "Email Unsubscribed": email_unsubscribed,
    "Email Spam Reported": email_spam_reported,
    "Identify": identify,
    "Alias": alias,
    "Consent Changed": consent_changed,
    "Erasure Requested": erasure_requested,
}
"""Input event type -> reducer (every input type of schemas.models has one)."""

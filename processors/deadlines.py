"""Deadlines: time-based behaviour kept as data in the state (``state.deadlines``).

Scheduling (by the reducers) and firing (by :func:`fire`) are pure functions of the state
and ``now``. One entry per (source, episode, rule) is pending at a time; it holds the next step.

- **cart**: steps after the last activity on a cart (episode: cart id); activity moves the
  pending step, checkout or purchase of the cart (or emptying it) cancels it. The engine fires
  every entry at its own due time (``now`` = the due time), so each step fires in turn; with a
  later ``now`` (direct callers) only the latest overdue step would fire.
- **browse**: a product viewed ``min_views`` times within the recent window arms one reminder
  ``after`` the arming view (episode: ``product@time``); adding it to a cart or any purchase
  since then cancels it.
- **inactivity**: steps after the last activity (episode: that activity's time). Activity does
  not reschedule (that would cost on every event): when the entry falls due, the sequence
  restarts from the latest activity if there was one.
- **post_purchase**: after an order (episode: order id); a cancellation or refund cancels it.
- **welcome**: after the Identify that first brings an email address.
"""

from __future__ import annotations

import math
from bisect import insort
from typing import NamedTuple

from processors.ruleset import RuleSet
from processors.state import CustomerState, Deadline

_new = tuple.__new__
"""NamedTuples built without their Python-level ``__new__`` frame (the same tuple)."""


class Fired(NamedTuple):
    """A deadline step that fires now; ``origin`` is when it was due (expiry counts from it)."""

    source: str
    episode: str
    step: int
    origin: float


def schedule(st: CustomerState, source: str, episode: str, step: int, due: float,
             rule: str = "", origin: float = 0.0) -> None:
    """Set the pending entry of (source, episode, rule) to ``step`` at ``due``; ``origin``
    (deferred triggers) is when the trigger first fell due. Times are stored as whole
    seconds: due rounds up (never early), origin down."""
    cancel(st, source, episode, rule=rule)
    insort(st.deadlines, _new(Deadline, (math.ceil(due), source, episode, step, rule,
                                         int(origin))))


def cancel(st: CustomerState, source: str, episode: str | None = None, *,
           prefix: str | None = None, rule: str | None = None) -> None:
    """Drop pending entries of ``source`` (all, one ``episode``, or episodes starting with
    ``prefix``), deferred triggers of that episode included unless ``rule`` selects one.
    The list is edited in place (most calls match nothing or one entry)."""
    deadlines = st.deadlines
    hits = [
        i for i, d in enumerate(deadlines)
        if d[1] == source  # Deadline.source, by index: this runs on most cart and view events
        and (episode is None or d[2] == episode)
        and (prefix is None or d[2].startswith(prefix))
        and (rule is None or d[4] == rule)
    ]
    for i in reversed(hits):
        del deadlines[i]


def has_pending(st: CustomerState, source: str) -> bool:
    """True when an entry of ``source`` is pending."""
    for d in st.deadlines:  # noqa: SIM110 - a plain loop: this runs on every event
        if d.source == source:
            return True
    return False


def due(st: CustomerState, now: float) -> list[Deadline]:
    """The entries due at ``now`` (earliest first); does not change the state."""
    out = []
    for d in st.deadlines:
        if d.due > now:
            break
        out.append(d)
    return out


def still_valid(st: CustomerState, source: str, episode: str) -> bool:
    """Whether what ``source``/``episode`` reminds about still holds (cart still open, ...)."""
    if source == "cart":
        cart = st.carts.get(episode)
        return bool(cart and cart.items and cart.checkout_at is None)
    if source == "browse":
        product, _, armed = episode.rpartition("@")
        if st.last_order_at is not None and st.last_order_at >= float(armed or 0):
            return False
        return not any(product in c.items for c in st.carts.values())
    if source == "post_purchase":
        return any(o.order_id == episode and not o.cancelled for o in st.recent_orders)
    return True


def fire(st: CustomerState, d: Deadline, now: float, rules: RuleSet) -> Fired | None:
    """Fire the (already removed) plain deadline ``d``: update the state, schedule the next
    step, and return what fired, or None when it no longer applies or moved later."""
    if not still_valid(st, d.source, d.episode):
        return None
    steps = rules.deadlines.steps(d.source)
    if d.source == "cart":
        return _fire_cart(st, d.episode, now, steps)
    if d.source == "inactivity":
        return _fire_inactivity(st, d, now, steps)
    if d.step >= len(steps):
        return None
    base = d.due - steps[d.step]
    j = _last_due(base, steps, d.step, now)
    if j + 1 < len(steps):
        schedule(st, d.source, d.episode, j + 1, base + steps[j + 1])
    return _new(Fired, (d.source, d.episode, j, base + steps[j]))


def _last_due(base: float, steps: tuple[float, ...], k: int, now: float) -> int:
    while k + 1 < len(steps) and base + steps[k + 1] <= now:
        k += 1
    return k


def _fire_cart(st: CustomerState, cart_id: str, now: float,
               steps: tuple[float, ...]) -> Fired | None:
    cart = st.carts[cart_id]
    k = cart.fired
    if k >= len(steps):
        return None
    if cart.updated_at + steps[k] > now:  # activity moved it
        schedule(st, "cart", cart_id, k, cart.updated_at + steps[k])
        return None
    j = _last_due(cart.updated_at, steps, k, now)
    cart.fired = j + 1
    if j + 1 < len(steps):
        schedule(st, "cart", cart_id, j + 1, cart.updated_at + steps[j + 1])
    return _new(Fired, ("cart", cart_id, j, cart.updated_at + steps[j]))


def _fire_inactivity(st: CustomerState, d: Deadline, now: float,
                     steps: tuple[float, ...]) -> Fired | None:
    base = st.last_seen
    episode = str(base)
    k = d.step if episode == d.episode else 0
    if not steps or k >= len(steps):
        return None
    if base + steps[k] > now:  # active since: restart the sequence from that activity
        schedule(st, "inactivity", episode, k, base + steps[k])
        return None
    j = _last_due(base, steps, k, now)
    if j + 1 < len(steps):
        schedule(st, "inactivity", episode, j + 1, base + steps[j + 1])
    return _new(Fired, ("inactivity", episode, j, base + steps[j]))


def cart_touched(st: CustomerState, cart_id: str, rules: RuleSet) -> None:
    """Reschedule (or cancel) a cart's pending reminder after activity on it."""
    cart = st.carts.get(cart_id)
    steps = rules.deadlines.cart
    if not cart or not cart.items or cart.checkout_at is not None or cart.fired >= len(steps):
        cancel(st, "cart", cart_id)
        return
    schedule(st, "cart", cart_id, cart.fired, cart.updated_at + steps[cart.fired])


def activity(st: CustomerState, rules: RuleSet) -> None:
    """Make sure an inactivity sequence is pending (it re-bases itself lazily)."""
    steps = rules.deadlines.inactivity
    if steps and not has_pending(st, "inactivity"):
        schedule(st, "inactivity", str(st.last_seen), 0, st.last_seen + steps[0])

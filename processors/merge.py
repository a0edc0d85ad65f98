"""Identity stitching: fold an anonymous visitor's state into the identified customer's.

What carries over: activity (first/last seen, sessions, searches), product views, category
affinity (both decayed to ``now`` and summed), carts (the customer's copy wins on the same
cart id unless the anonymous one is newer), orders (by order id), engagement (the higher),
pending deadlines and deferred triggers, trigger history (for the budget), watermarks (the
anonymous state's own ``topic:partition`` marks become ``topic:partition~anonymous_id``, as
forwarded records of that id are checked against those), missing traits. Consent is
conservative: a withdrawal or suppression on either side stays.

Personas: when the customer is still in a dimension's initial state, the anonymous state's
persona carries over (a ``identity_merge`` transition records it); journey takes the further
stage. The machine then re-evaluates with event type ``merge``.
"""

from __future__ import annotations

from processors.ruleset import RuleSet
from processors.scoring import decay
from processors.state import CustomerState


def _min_nonzero(a: int, b: int) -> int:
    return min(x for x in (a, b) if x) if (a or b) else 0


def _opt_min(a: int | None, b: int | None) -> int | None:
    vals = [x for x in (a, b) if x is not None]
    return min(vals) if vals else None


def _opt_max(a: int | None, b: int | None) -> int | None:
    vals = [x for x in (a, b) if x is not None]
    return max(vals) if vals else None


def _activity(st: CustomerState, anon: CustomerState, rules: RuleSet) -> None:
    st.first_seen = _min_nonzero(st.first_seen, anon.first_seen)
    st.last_seen = max(st.last_seen, anon.last_seen)
    st.sessions += anon.sessions
    st.searches += anon.searches
    st.views = sorted([*st.views, *anon.views], key=lambda v: v.at)[-rules.settings.limits.views:]


def _affinity(st: CustomerState, anon: CustomerState, now: float, rules: RuleSet) -> None:
    half = rules.settings.affinity_half_life
    merged: dict[str, tuple[float, int]] = {}
    for side in (st.affinity, anon.affinity):
        for cat, (score, at) in side.items():
            old = merged.get(cat, (0.0, int(now)))[0]
            merged[cat] = (round(old + decay(score, at, now, half), 2), int(now))
    best = sorted(merged.items(), key=lambda kv: (-kv[1][0], kv[0]))
    st.affinity = dict(best[: rules.settings.limits.affinity])


def _commerce(st: CustomerState, anon: CustomerState, rules: RuleSet) -> None:
    for cart_id, cart in anon.carts.items():
        mine = st.carts.get(cart_id)
        if mine is None or cart.updated_at > mine.updated_at:
            st.carts[cart_id] = cart
    if len(st.carts) > rules.settings.limits.carts:
        keep = sorted(st.carts.values(), key=lambda c: -c.updated_at)[: rules.settings.limits.carts]
        st.carts = {c.cart_id: c for c in keep}
    known = {o.order_id for o in st.recent_orders}
    extra = [o for o in anon.recent_orders if o.order_id not in known]
    st.orders += anon.orders - sum(1 for o in anon.recent_orders if o.order_id in known)
    st.revenue = round(st.revenue + anon.revenue
                       - sum(o.revenue for o in anon.recent_orders if o.order_id in known), 2)
    st.recent_orders = sorted([*st.recent_orders, *extra], key=lambda o: o.at)[
        -rules.settings.limits.orders:]
    st.first_order_at = _opt_min(st.first_order_at, anon.first_order_at)
    st.last_order_at = _opt_max(st.last_order_at, anon.last_order_at)
    st.categories = [*dict.fromkeys([*anon.categories, *st.categories])][
        -rules.settings.limits.categories:]
    st.refunds += anon.refunds
    st.refunded = round(st.refunded + anon.refunded, 2)


def _identity(st: CustomerState, anon: CustomerState, rules: RuleSet) -> None:
    st.email = st.email or anon.email
    st.first_name = st.first_name or anon.first_name
    st.locale = st.locale or anon.locale
    st.time_zone = st.time_zone or anon.time_zone
    sides = (st.consent_marketing, anon.consent_marketing)
    st.consent_marketing = False if False in sides else (True if True in sides else None)
    st.consent_transactional = st.consent_transactional and anon.consent_transactional
    st.suppressed = st.suppressed or anon.suppressed
    ids = [*st.anonymous_ids, *anon.anonymous_ids, anon.customer_id]
    st.anonymous_ids = [i for i in dict.fromkeys(ids) if i != st.customer_id][
        -rules.settings.limits.anonymous_ids:]
    if anon.engagement > st.engagement:
        st.engagement, st.engagement_at = anon.engagement, anon.engagement_at
    st.delivered += anon.delivered
    st.opens += anon.opens
    st.clicks += anon.clicks
    st.last_open = _opt_max(st.last_open, anon.last_open)
    st.last_click = _opt_max(st.last_click, anon.last_click)


def _pending(st: CustomerState, anon: CustomerState, rules: RuleSet) -> None:
    mine = {(d.source, d.episode, d.rule) for d in st.deadlines}
    has_inactivity = any(d.source == "inactivity" for d in st.deadlines)
    for d in anon.deadlines:
        if (d.source, d.episode, d.rule) in mine:
            continue
        if d.source == "inactivity" and has_inactivity:
            continue
        if d.source == "welcome":
            continue  # welcome follows the customer's own first Identify
        st.deadlines.append(d)
    st.deadlines.sort()
    st.sent = sorted([*st.sent, *anon.sent])[-rules.settings.limits.sent:]
    for key, offset in anon.watermarks.items():
        # the anonymous state's own records become records of another key for the customer
        as_forwarded = key if "~" in key else f"{key}~{anon.customer_id}"
        if offset > st.watermarks.get(as_forwarded, -1):
            st.watermarks[as_forwarded] = offset
    st.changes = sorted([*st.changes, *anon.changes])[-rules.settings.limits.changes:]


def _personas(st: CustomerState, anon: CustomerState,
              rules: RuleSet) -> list[tuple[str, str, dict[str, str]]]:
    moves: list[tuple[str, str, dict[str, str]]] = []
    life, interest, journey = (rules.dimensions[d] for d in ("lifecycle", "interest", "journey"))
    if st.persona == life.initial and anon.persona and anon.persona != life.initial:
        moves.append(("lifecycle", anon.persona, {"anonymous_persona": anon.persona}))
    if anon.interest and anon.interest != interest.initial and (
        st.interest == interest.initial or anon.interest_at > st.interest_at
    ) and anon.interest != st.interest:
        moves.append(("interest", anon.interest, {"anonymous_interest": anon.interest}))
    stages = list(journey.states)
    if anon.journey in stages and st.journey in stages and \
            stages.index(anon.journey) > stages.index(st.journey):
        moves.append(("journey", anon.journey, {"anonymous_journey": anon.journey}))
    return moves


def merge_states(st: CustomerState, anon: CustomerState, now: float,
                 rules: RuleSet) -> list[tuple[str, str, dict[str, str]]]:
    """Fold ``anon`` into ``st`` (in place); return the persona moves to record as
    (dimension, target, facts)."""
    moves = _personas(st, anon, rules)
    _activity(st, anon, rules)
    _affinity(st, anon, now, rules)
    _commerce(st, anon, rules)
    _identity(st, anon, rules)
    _pending(st, anon, rules)
    return moves

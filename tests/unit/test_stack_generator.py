"""The synthetic shopper generator: deterministic, exact, ordered, valid and realistic."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from functools import cache
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from personaflow.generator import generate_events
from schemas import models as m
from schemas.codec import decode_event, encode_event

START = datetime(2026, 1, 1, tzinfo=UTC)
INPUT_TYPES = {name for name, cls in m.EVENT_TYPES.items() if issubclass(cls, m.Envelope)}


@cache
def big_run() -> tuple[m.Envelope, ...]:
    return tuple(generate_events(2026, 250, 30_000, START))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**40), customers=st.integers(1, 30), events=st.integers(0, 300))
def test_same_arguments_same_events_and_exact_count(seed, customers, events):
    first = list(generate_events(seed, customers, events, START))
    second = list(generate_events(seed, customers, events, START))
    assert len(first) == events
    assert first == second


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**40), customers=st.integers(1, 30))
def test_time_ordered_and_after_start(seed, customers):
    events = list(generate_events(seed, customers, 200, START))
    times = [e.occurred_at for e in events]
    assert times == sorted(times)
    assert times[0] >= START
    assert all(e.received_at >= e.occurred_at for e in events)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**40))
def test_prefix_of_a_longer_run(seed):
    short = list(generate_events(seed, 10, 100, START))
    assert short == list(generate_events(seed, 10, 250, START))[:100]


def test_different_seeds_differ():
    a = [e.event_id for e in generate_events(1, 10, 50, START)]
    b = [e.event_id for e in generate_events(2, 10, 50, START)]
    assert a != b


def test_every_event_round_trips_through_avro():
    for event in big_run()[:1000]:
        assert decode_event(encode_event(event)) == event


def test_event_ids_unique_and_every_event_keyed():
    events = big_run()
    assert len({e.event_id for e in events}) == len(events)
    assert all(e.key for e in events)


def test_every_input_event_type_occurs():
    assert {e.type for e in big_run()} == INPUT_TYPES


def test_site_events_dominate_like_a_real_shop():
    events = big_run()
    site = sum(e.type in {"Page Viewed", "Product Viewed", "Product List Viewed",
                          "Products Searched"} for e in events)  # fmt: skip
    orders = sum(e.type == "Order Completed" for e in events)
    assert site / len(events) > 0.5
    assert 0.005 < orders / len(events) < 0.1


def _by_key(events):
    grouped = defaultdict(list)
    for event in events:
        grouped[event.key].append(event)
    return grouped


def test_some_products_are_viewed_twice_within_48_hours():
    twice = 0
    for events in _by_key(big_run()).values():
        seen: dict[str, datetime] = {}
        for e in events:
            if isinstance(e, m.ProductViewed):
                pid = e.product.product_id
                if pid in seen and e.occurred_at - seen[pid] < timedelta(hours=48):
                    twice += 1
                seen[pid] = e.occurred_at
    assert twice > 100


SITE_OR_SHOP = ("Page Viewed", "Product", "Cart", "Checkout", "Order")


def test_activity_gaps_cover_every_deadline():
    """With enough events per customer, quiet spells reach every deadline (1h ... 90 days)."""
    long_history = generate_events(9, 15, 12_000, START)
    visits = [e for e in long_history if e.type.startswith(SITE_OR_SHOP)]
    gaps = []
    for events in _by_key(visits).values():
        gaps += [b.occurred_at - a.occurred_at for a, b in pairwise(events)]
    for threshold in (timedelta(hours=1), timedelta(hours=24), timedelta(hours=48),
                      timedelta(days=3), timedelta(days=30), timedelta(days=90)):  # fmt: skip
        assert any(gap > threshold for gap in gaps), threshold


def test_some_carts_are_abandoned_and_some_bought():
    last_add: dict[str, datetime] = {}
    bought: dict[str, datetime] = {}
    for e in big_run():
        if isinstance(e, m.ProductAdded):
            last_add[e.cart_id] = e.occurred_at
        elif isinstance(e, m.OrderCompleted) and e.cart_id:
            bought[e.cart_id] = e.occurred_at
    assert bought and set(bought) <= set(last_add)
    never = set(last_add) - set(bought)
    later = {c for c, at in bought.items() if at - last_add[c] > timedelta(hours=1)}
    assert len(never) > 0.2 * len(last_add)  # abandoned for good
    assert len(later) > 0.05 * len(last_add)  # came back after the 1h reminder would fire


def test_orders_add_up_and_refunds_follow_orders():
    orders: dict[str, m.OrderCompleted] = {}
    for e in big_run():
        if isinstance(e, m.OrderCompleted):
            assert e.revenue == pytest.approx(sum(p.price * p.quantity for p in e.products))
            orders[e.order_id] = e
        elif isinstance(e, m.OrderRefunded | m.OrderCancelled):
            assert e.order_id in orders
            assert e.occurred_at > orders[e.order_id].occurred_at


def test_anonymous_visitors_later_identify():
    anonymous_first: set[str] = set()
    identified_later = 0
    for e in big_run():
        if e.customer_id is None and e.anonymous_id:
            anonymous_first.add(e.anonymous_id)
        elif isinstance(e, m.Identify) and e.anonymous_id in anonymous_first:
            identified_later += 1
    assert identified_later > 10
    aliases = [e for e in big_run() if isinstance(e, m.Alias)]
    assert aliases and all(a.previous_id.startswith("anon-") for a in aliases)


def test_identify_traits_look_real():
    for e in big_run():
        if isinstance(e, m.Identify):
            traits = e.traits
            assert re.fullmatch(r"customer-\d+@example\.test", traits.email or "")
            assert traits.email.split("@")[0] == e.customer_id
            assert ZoneInfo(traits.time_zone or "")
            assert re.fullmatch(r"[a-z]{2}-[A-Z]{2}", traits.locale or "")
            assert traits.consent_email in (True, False)


def test_email_feedback_only_for_known_customers_and_stops_after_opt_out():
    opted_out: set[str] = set()
    late = 0
    for e in big_run():
        if isinstance(e, m.EmailDelivered | m.EmailOpened | m.EmailClicked | m.EmailBounced):
            assert e.customer_id
            late += isinstance(e, m.EmailDelivered) and e.customer_id in opted_out
        if isinstance(e, m.EmailUnsubscribed) or (
            isinstance(e, m.ConsentChanged) and not e.granted
        ):
            opted_out.add(e.key)
    assert opted_out
    assert late == 0


def test_clicks_follow_opens_follow_deliveries():
    state: dict[str, set[str]] = defaultdict(set)
    for e in big_run():
        if isinstance(e, m.EmailDelivered | m.EmailOpened | m.EmailClicked) and e.message_id:
            state[e.message_id].add(e.type)
            if isinstance(e, m.EmailOpened):
                assert "Email Delivered" in state[e.message_id]
            if isinstance(e, m.EmailClicked):
                assert "Email Opened" in state[e.message_id]


def test_clock_restamps_in_order_without_changing_content():
    ticks = iter(START + timedelta(seconds=i) for i in range(1000))
    stamped = list(generate_events(5, 5, 50, START, clock=lambda: next(ticks)))
    plain = list(generate_events(5, 5, 50, START))
    assert [e.occurred_at for e in stamped] == [START + timedelta(seconds=i) for i in range(50)]
    assert [e.event_id for e in stamped] == [e.event_id for e in plain]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"customers": 0}, ValueError),
        ({"events": -1}, ValueError),
        ({"start_time": datetime(2026, 1, 1)}, ValueError),
    ],
)
def test_bad_arguments_are_refused(kwargs, error):
    args = {"seed": 1, "customers": 3, "events": 5, "start_time": START, **kwargs}
    with pytest.raises(error):
        list(generate_events(**args))

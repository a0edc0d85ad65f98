"""Deadlines as data: cart, browse, inactivity, post-purchase and welcome sequences."""

from __future__ import annotations

import pytest

from processors.engine import Engine
from processors.ruleset import rules_from_text
from processors.samples import OPEN_RULES, T0, Events, Runner

H = 3600.0
D = 86_400.0
RULES = OPEN_RULES


@pytest.fixture()
def engine() -> Engine:
    return Engine(rules_from_text(RULES, "test.yaml"))


def identified(engine: Engine) -> tuple[Runner, Events]:
    run, ev = Runner(engine, "c1"), Events("c1")
    run.apply(ev.identify(T0))
    return run, ev


def test_cart_reminders_fire_at_1h_24h_48h_after_last_activity(engine: Engine) -> None:
    run, ev = identified(engine)
    run.apply(ev.add("k1", "p1", T0 + 60))
    assert engine.next_due(run.state) == T0 + 60 + H
    run.tick(T0 + 60 + H - 1)
    assert run.types() == []
    run.tick(T0 + 60 + H)
    run.tick(T0 + 60 + 24 * H)
    run.tick(T0 + 60 + 48 * H)
    cart = [t for t in run.triggers if t.trigger_type == "cart_abandonment"]
    assert [t.step for t in cart] == [1, 2, 3]
    assert {t.episode for t in cart} == {"k1"}
    assert cart[0].products[0].product_id == "p1"
    assert cart[0].tokens["cart_value"] == "80.00"
    run.tick(T0 + 100 * D)
    assert len([t for t in run.triggers if t.trigger_type == "cart_abandonment"]) == 3


def test_cart_activity_moves_the_next_reminder(engine: Engine) -> None:
    run, ev = identified(engine)
    run.apply(ev.add("k1", "p1", T0))
    run.apply(ev.add("k1", "p2", T0 + 50 * 60))  # 50 min later: the 1 h clock restarts
    run.tick(T0 + H + 60)
    assert run.types() == []
    run.tick(T0 + 50 * 60 + H)
    assert run.types() == ["cart_abandonment"]
    assert {p.product_id for p in run.triggers[0].products} == {"p1", "p2"}


@pytest.mark.parametrize("closing", ["checkout", "order", "order_without_cart", "emptied"])
def test_cart_sequence_cancelled_by_checkout_purchase_or_emptying(engine: Engine,
                                                                  closing: str) -> None:
    run, ev = identified(engine)
    run.apply(ev.add("k1", "p1", T0))
    run.tick(T0 + H)  # step 1 fires
    event = {
        "checkout": ev.checkout("k1", T0 + 2 * H),
        "order": ev.order("o1", 80, T0 + 2 * H, cart_id="k1"),
        "order_without_cart": ev.order("o1", 80, T0 + 2 * H),
        "emptied": ev.remove("k1", "p1", T0 + 2 * H),
    }[closing]
    run.apply(event)
    run.tick(T0 + 10 * D)
    assert [t.step for t in run.triggers if t.trigger_type == "cart_abandonment"] == [1]
    assert not [d for d in run.state.deadlines if d.source == "cart"]


def _dumps(run: Runner) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    return ([t.model_dump() for t in run.triggers], [t.model_dump() for t in run.transitions])


def test_overdue_steps_fire_each_at_its_own_due_time(engine: Engine) -> None:
    late, ev = identified(engine)
    late.apply(ev.add("k1", "p1", T0))
    late.tick(T0 + 30 * H)  # worker was down: 1 h and 24 h are both due
    on_time, ev2 = identified(engine)
    on_time.apply(ev2.add("k1", "p1", T0))
    on_time.tick(T0 + H)
    on_time.tick(T0 + 24 * H)
    assert [t.step for t in late.triggers] == [1, 2]
    assert [t.created_at.timestamp() for t in late.triggers] == [T0 + H, T0 + 24 * H]
    assert _dumps(late) == _dumps(on_time)


def test_late_event_first_fires_what_was_due_before_it(engine: Engine) -> None:
    """The purchase at 2 h comes after the 1 h reminder was due: whether the tick came on
    time or not at all, the 1 h reminder goes (decided at 1 h) and the purchase stops the rest."""
    no_tick, ev = identified(engine)
    no_tick.apply(ev.add("k1", "p1", T0))
    no_tick.apply(ev.order("o1", 80, T0 + 2 * H, cart_id="k1"))
    on_time, ev2 = identified(engine)
    on_time.apply(ev2.add("k1", "p1", T0))
    on_time.tick(T0 + H)
    on_time.apply(ev2.order("o1", 80, T0 + 2 * H, cart_id="k1"))
    assert [t.trigger_type for t in no_tick.triggers] == ["cart_abandonment"]
    assert no_tick.triggers[0].created_at.timestamp() == T0 + H
    assert no_tick.triggers[0].cause_event_id is None
    assert _dumps(no_tick) == _dumps(on_time)


def test_apply_decides_at_event_time_not_the_callers_clock(engine: Engine) -> None:
    run, ev = identified(engine)
    run.apply(ev.add("k1", "p1", T0), now=T0 + 2 * H)  # processed two hours late
    assert run.types() == []  # (T0, now] is left to tick()
    assert engine.next_due(run.state) == T0 + H
    run.tick(T0 + 5 * H)
    assert [t.created_at.timestamp() for t in run.triggers] == [T0 + H]


def test_browse_reminder_after_second_view_without_cart(engine: Engine) -> None:
    run, ev = identified(engine)
    run.apply(ev.view("p2", T0))
    run.apply(ev.view("p2", T0 + 3 * H))
    assert any(d.source == "browse" for d in run.state.deadlines)
    run.tick(T0 + 5 * H)
    assert run.types() == ["browse_abandonment"]
    trig = run.triggers[0]
    assert trig.products[0].product_id == "p2" and trig.tokens["product_id"] == "p2"
    run.apply(ev.view("p2", T0 + 6 * H))  # third view in the window: no second reminder
    run.tick(T0 + 10 * H)
    assert run.types() == ["browse_abandonment"]


def test_browse_needs_two_views_within_window_and_is_cancelled_by_add(engine: Engine) -> None:
    run, ev = identified(engine)
    run.apply(ev.view("p2", T0))
    run.apply(ev.view("p2", T0 + 3 * D))  # too far apart
    assert not any(d.source == "browse" for d in run.state.deadlines)
    run.apply(ev.view("p2", T0 + 3 * D + 60))
    run.apply(ev.add("k1", "p2", T0 + 3 * D + 120))
    assert not any(d.source == "browse" for d in run.state.deadlines)


def test_inactivity_30_and_90_days_and_restart_on_activity(engine: Engine) -> None:
    run, ev = identified(engine)
    run.apply(ev.order("o1", 50, T0 + 60, products=("p1",)))
    run.tick(T0 + 3 * D + 120)  # post-purchase cross-sell fires on day 3
    assert run.types() == ["post_purchase_cross_sell"]
    run.apply(ev.page(T0 + 20 * D))  # active again: the 30-day clock restarts lazily
    run.tick(T0 + 31 * D)
    assert run.types() == ["post_purchase_cross_sell"]
    run.tick(T0 + 50 * D + 1)
    assert run.types()[-1] == "re_engagement"
    assert run.state.persona == "at_risk"
    run.tick(T0 + 110 * D + 1)
    assert run.types()[-1] == "win_back"
    assert run.state.persona == "lapsed"
    assert [t.step for t in run.triggers[1:]] == [1, 2]


def test_post_purchase_cancelled_by_refund(engine: Engine) -> None:
    run, ev = identified(engine)
    run.apply(ev.order("o1", 50, T0))
    run.apply(ev.refund("o1", T0 + D))
    run.tick(T0 + 5 * D)
    assert "post_purchase_cross_sell" not in run.types()


def test_welcome_once_on_first_identify() -> None:
    engine = Engine(rules_from_text("settings: {holdout: {share: 0}}", "t.yaml"))
    run, ev = Runner(engine, "c1"), Events("c1")
    run.apply(ev.identify(T0 + 12 * H))  # 22:00 UTC: quiet hours, held until 08:00
    assert run.skipped == [("welcome", "deferred")]
    run.apply(ev.identify(T0 + 13 * H, first_name="Annie"))
    run.tick(T0 + 22 * H)
    assert run.types() == ["welcome"]
    assert run.triggers[0].created_at.hour == 8
    assert run.triggers[0].tokens["first_name"] == "Annie"
    run.tick(T0 + 30 * D)
    assert run.types() == ["welcome"]


def test_welcome_waits_for_an_email_address() -> None:
    engine = Engine(rules_from_text("settings: {holdout: {share: 0}}", "t.yaml"))
    run, ev = Runner(engine, "c1"), Events("c1")
    run.apply(ev.identify(T0, email=None))
    assert not any(d.source == "welcome" for d in run.state.deadlines)
    run.apply(ev.identify(T0 + H, email="late@example.com"))
    assert run.types() == ["welcome"] and run.triggers[0].recipient == "late@example.com"


def test_due_lists_without_changing_state(engine: Engine) -> None:
    run, ev = identified(engine)
    run.apply(ev.add("k1", "p1", T0))
    before = list(run.state.deadlines)
    due = engine.due(run.state, T0 + 2 * H)
    assert [d.source for d in due] == ["cart"]
    assert run.state.deadlines == before
    assert engine.due(run.state, T0) == []

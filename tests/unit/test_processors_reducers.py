"""One reducer per event type: what each input does to the customer state."""

from __future__ import annotations

from processors.engine import Engine
from processors.reducers import REDUCERS
from processors.samples import T0, Events, Runner
from schemas.models import EVENT_TYPES, Envelope

ENGINE = Engine()
H = 3600


def fresh() -> tuple[Runner, Events]:
    return Runner(ENGINE, "c1"), Events("c1")


def test_every_input_type_has_a_reducer() -> None:
    inputs = {n for n, cls in EVENT_TYPES.items() if issubclass(cls, Envelope)}
    assert inputs == set(REDUCERS)


def test_activity_first_last_seen_and_sessions() -> None:
    run, ev = fresh()
    run.apply(ev.page(T0))
    run.apply(ev.page(T0 + 600))  # same session
    run.apply(ev.page(T0 + 3 * H))  # new session after 30 min idle
    run.apply(ev.page(T0 - 60))  # late event: first_seen moves back, last_seen stays
    st = run.state
    assert (st.first_seen, st.last_seen, st.sessions) == (T0 - 60, T0 + 3 * H, 2)


def test_views_bounded_and_affinity_decays() -> None:
    run, ev = fresh()
    for i in range(8):
        run.apply(ev.view("p1" if i % 2 else "p2", T0 + i))
    st = run.state
    assert len(st.views) == ENGINE.rules.settings.limits.views
    assert st.views[-1].at == T0 + 7
    shoes, _ = st.affinity["shoes"]
    run.apply(ev.view("p3", T0 + 14 * 86_400))  # two half-lives later
    assert st.affinity["accessories"][0] == 1.0
    assert round(st.affinity["shoes"][0], 2) == round(shoes, 2)  # stored lazily
    from processors.scoring import decay

    assert abs(decay(shoes, T0 + 7, T0 + 7 + 14 * 86_400, 7 * 86_400) - shoes / 4) < 1e-6


def test_cart_add_remove_view_checkout() -> None:
    run, ev = fresh()
    run.apply(ev.add("k1", "p1", T0, quantity=2))
    run.apply(ev.add("k1", "p3", T0 + 1))
    cart = run.state.carts["k1"]
    assert cart.items["p1"].quantity == 2 and cart.value == 185.0
    run.apply(ev.remove("k1", "p1", T0 + 2))
    assert cart.items["p1"].quantity == 1
    run.apply(ev.checkout("k1", T0 + 3))
    assert cart.checkout_at == T0 + 3
    assert not [d for d in run.state.deadlines if d.source == "cart"]


def test_orders_refunds_cancellations() -> None:
    run, ev = fresh()
    run.apply(ev.order("o1", 100, T0, products=("p1", "p4")))
    run.apply(ev.order("o1", 100, T0 + 1))  # reported twice: counted once
    run.apply(ev.order("o2", 50, T0 + 2))
    st = run.state
    assert (st.orders, st.revenue, st.aov) == (2, 150.0, 75.0)
    assert st.categories == ["shoes", "home"]
    run.apply(ev.refund("o1", T0 + 3))
    assert (st.refunds, st.refunded) == (1, 100.0)
    run.apply(ev.cancel("o2", T0 + 4))
    assert (st.orders, st.revenue) == (1, 100.0)
    assert (st.first_order_at, st.last_order_at) == (T0, T0 + 2)


def test_engagement_and_suppression() -> None:
    run, ev = fresh()
    run.apply(ev.delivered(T0))
    run.apply(ev.opened(T0 + 1))
    run.apply(ev.clicked(T0 + 2))
    st = run.state
    assert (st.delivered, st.opens, st.clicks, st.engagement) == (1, 1, 1, 4.0)
    run.apply(ev.bounced(T0 + 3, hard=False))
    run.apply(ev.bounced(T0 + 4, hard=False))
    assert st.suppressed is None
    run.apply(ev.bounced(T0 + 5, hard=False))
    assert st.suppressed == "bounced"


def test_unsubscribe_and_opt_in_again() -> None:
    run, ev = fresh()
    run.apply(ev.unsubscribed(T0))
    st = run.state
    assert (st.consent_marketing, st.suppressed, st.engagement) == (False, "unsubscribed", 0.0)
    run.apply(ev.consent(True, T0 + 1))
    assert (st.consent_marketing, st.suppressed) == (True, None)
    run.apply(ev.spam(T0 + 2))
    run.apply(ev.consent(True, T0 + 3))
    assert st.suppressed == "complained"  # a complaint is never lifted by an opt-in
    run.apply(ev.consent(False, T0 + 4, purpose="transactional"))
    assert st.consent_transactional is False


def test_identify_traits_alias_and_welcome() -> None:
    run, ev = Runner(ENGINE, "c1"), Events("c1", anonymous_id="anon-7")
    run.apply(ev.identify(T0, time_zone="Asia/Tokyo", locale="ja-JP", consent=True))
    st = run.state
    assert (st.email, st.first_name, st.time_zone, st.locale) == (
        "ann@example.com", "Ann", "Asia/Tokyo", "ja-JP")
    assert st.consent_marketing is True and st.identified_at == T0
    assert st.anonymous_ids == ["anon-7"]
    run.apply(ev.identify(T0 + 1, email=None, first_name=None))
    assert st.email == "ann@example.com"  # missing traits keep what is known
    run.apply(ev.alias("anon-8", T0 + 2))
    assert st.anonymous_ids == ["anon-7", "anon-8"]

"""Trigger rules: ids, priority and budget arbitration, quiet hours, expiry, consent,
holdout, variants and the content a trigger carries."""

from __future__ import annotations

from datetime import UTC, datetime

from processors.engine import Engine
from processors.policy import in_holdout
from processors.ruleset import rules_from_text
from processors.samples import OPEN_RULES, T0, Events, Runner
from schemas.models import Trigger, TriggerPriority

H = 3600.0
D = 86_400.0
OPEN = OPEN_RULES


def engine(extra: str = "", base: str = OPEN) -> Engine:
    text = base
    if extra:
        from processors.yamlsrc import parse_yaml

        merged = parse_yaml(base, "b").data
        for key, value in parse_yaml(extra, "e").data.items():
            merged.setdefault(key, {}).update(value) if isinstance(value, dict) else None
        import yaml

        text = yaml.safe_dump(merged)
    return Engine(rules_from_text(text, "test.yaml"))


def start(eng: Engine, cid: str = "c1", **traits: object) -> tuple[Runner, Events]:
    run, ev = Runner(eng, cid), Events(cid)
    run.apply(ev.identify(T0, **traits))  # type: ignore[arg-type]
    return run, ev


def test_trigger_id_is_deterministic_and_valid_contract() -> None:
    outs = []
    for _ in range(2):
        run, ev = start(engine())
        run.apply(ev.add("k1", "p1", T0 + 60))
        run.tick(T0 + 2 * H)
        outs.append(run.triggers)
    assert [t.trigger_id for t in outs[0]] == [t.trigger_id for t in outs[1]]
    trig = outs[0][0]
    assert trig == outs[1][0]
    assert Trigger.model_validate(trig.model_dump()) == trig
    assert len(trig.trigger_id) == 32
    assert trig.priority == TriggerPriority.CART
    assert trig.recipient == "ann@example.com" and trig.customer_id == "c1"
    assert trig.expires_at == datetime.fromtimestamp(T0 + 60 + H + D, UTC)


def test_trigger_carries_zone_locale_persona_tokens_and_variant() -> None:
    run, ev = start(engine(), time_zone="Europe/Berlin", locale="de-DE")
    run.apply(ev.view("p1", T0 + 10))
    run.apply(ev.add("k1", "p1", T0 + 60, quantity=2))
    run.tick(T0 + 2 * H)
    trig = run.triggers[0]
    assert (trig.time_zone, trig.locale) == ("Europe/Berlin", "de-DE")
    assert trig.persona == "cart_abandoner" and trig.journey_stage == "consideration"
    assert trig.tokens["first_name"] == "Ann"
    assert trig.tokens["cart_items"] == "2" and trig.tokens["top_category"] == "shoes"
    assert trig.products[0].quantity == 2 and trig.products[0].name == "Trail Runner"
    assert trig.experiment == "cart-subject-2026" and trig.variant in ("A", "B")
    assert trig.segment == "prospect"


def test_consent_withdrawn_or_suppressed_blocks_marketing() -> None:
    for block in ("consent", "unsubscribed", "bounced", "spam"):
        run, ev = start(engine())
        event = {"consent": ev.consent(False, T0 + 1), "unsubscribed": ev.unsubscribed(T0 + 1),
                 "bounced": ev.bounced(T0 + 1), "spam": ev.spam(T0 + 1)}[block]
        run.apply(event)
        run.apply(ev.add("k1", "p1", T0 + 60))
        run.tick(T0 + 3 * D)
        assert run.triggers == [], block
        assert all(reason != "deferred" for _, reason in run.skipped)


def test_no_email_means_no_trigger_and_require_consent_needs_opt_in() -> None:
    run, ev = Runner(engine(), "anon"), Events(None, "anon")
    run.apply(ev.add("k1", "p1", T0))
    run.tick(T0 + 2 * H)
    assert run.triggers == [] and ("cart_abandonment", "no_recipient") in run.skipped
    strict = engine("settings: {require_consent: true}")
    run, ev = start(strict)
    run.apply(ev.add("k1", "p1", T0 + 60))
    run.tick(T0 + 2 * H)
    assert run.triggers == []
    run, ev = start(strict, consent=True)
    run.apply(ev.add("k1", "p1", T0 + 60))
    run.tick(T0 + 2 * H)
    assert run.types() == ["cart_abandonment"]


def test_transactional_trigger_ignores_marketing_consent_and_budget() -> None:
    extra = """
triggers:
  - id: receipt
    type: order_receipt
    source: {transition: retention, dimension: journey}
    priority: transactional
    marketing: false
"""
    eng = Engine(rules_from_text(OPEN.replace("per_day: 10", "per_day: 0") + extra, "t.yaml"))
    run, ev = start(eng)
    run.apply(ev.unsubscribed(T0 + 1))
    run.apply(ev.order("o1", 30, T0 + 60))
    assert run.types() == ["order_receipt"]
    assert run.triggers[0].marketing is False
    assert run.triggers[0].priority == TriggerPriority.TRANSACTIONAL
    run.apply(ev.spam(T0 + 120))
    run.apply(ev.order("o2", 30, T0 + 180))
    assert run.types() == ["order_receipt"]  # a complaint blocks even transactional mail


def test_budget_defers_lower_priority_instead_of_dropping() -> None:
    eng = engine("settings: {budget: {per_day: 1, per_week: 3}}")
    run, ev = start(eng)
    run.apply(ev.order("o1", 40, T0 + 60, products=("p3",)))
    run.apply(ev.add("k1", "p1", T0 + 3 * D - 2 * H))
    # at 3 d both the cross-sell (promotional) and the 1 h cart reminder are due
    run.tick(T0 + 3 * D + 120)
    assert run.types() == ["cart_abandonment"]
    assert ("post_purchase_cross_sell", "deferred") in run.skipped
    deferred = [d for d in run.state.deadlines if d.rule == "cross_sell"]
    assert deferred and deferred[0].due >= T0 + 4 * D - 2 * H
    run.tick(T0 + 4 * D - 3 * H)
    assert run.types() == ["cart_abandonment"]  # still deferred, not dropped
    run.apply(ev.checkout("k1", T0 + 4 * D - 2 * H - 60))  # no more cart reminders
    run.tick(T0 + 4 * D + 120)
    assert run.types() == ["cart_abandonment", "post_purchase_cross_sell"]
    first, second = run.triggers
    assert (second.created_at - first.created_at).total_seconds() >= D


def test_deferred_cart_trigger_dies_when_the_cart_is_bought() -> None:
    eng = engine("settings: {budget: {per_day: 1, per_week: 3}}")
    run, ev = start(eng)
    run.apply(ev.order("o0", 40, T0 + 60))
    run.tick(T0 + 3 * D + 60)  # cross-sell takes today's slot
    run.apply(ev.add("k1", "p1", T0 + 3 * D + 120))
    run.tick(T0 + 3 * D + 2 * H)  # the cart reminder is deferred by the budget
    assert run.types() == ["post_purchase_cross_sell"]
    assert any(d.rule == "cart_reminder" for d in run.state.deadlines)
    run.apply(ev.order("o1", 80, T0 + 3 * D + 5 * H, cart_id="k1"))
    assert not any(d.source == "cart" for d in run.state.deadlines)
    run.tick(T0 + 10 * D)
    assert "cart_abandonment" not in run.types()


def test_quiet_hours_hold_in_customer_zone() -> None:
    eng = engine("settings: {quiet_hours: {start: 21, end: 8}}")
    run, ev = start(eng, time_zone="America/New_York")
    # 02:00 UTC = 21:00 New York (winter, UTC-5): quiet until 08:00 local = 13:00 UTC
    night = datetime(2026, 3, 3, 1, 0, tzinfo=UTC).timestamp()
    run.apply(ev.add("k1", "p1", night))
    run.tick(night + H)
    assert run.triggers == [] and ("cart_abandonment", "deferred") in run.skipped
    run.tick(datetime(2026, 3, 3, 13, 0, tzinfo=UTC).timestamp())
    assert run.types() == ["cart_abandonment"]
    assert run.triggers[0].created_at.hour == 13


def test_quiet_hours_not_before_mode_emits_at_once() -> None:
    eng = engine("settings: {quiet_hours: {start: 21, end: 8, hold: false}}")
    run, ev = start(eng, time_zone="Asia/Tokyo")
    night = datetime(2026, 3, 3, 13, 30, tzinfo=UTC).timestamp()  # 22:30 Tokyo
    run.apply(ev.add("k1", "p1", night))
    run.tick(night + H)
    assert run.types() == ["cart_abandonment"]
    assert run.triggers[0].not_before == datetime(2026, 3, 3, 23, 0, tzinfo=UTC)  # 08:00 JST


def test_expired_triggers_are_dropped() -> None:
    eng = engine("settings: {budget: {per_day: 1, per_week: 1}}")
    run, ev = start(eng)
    run.apply(ev.order("o0", 40, T0 + 60))
    run.tick(T0 + 3 * D + 60)  # the cross-sell takes the week's only slot
    run.apply(ev.add("k1", "p1", T0 + 3 * D + 120))
    run.tick(T0 + 30 * D)  # every cart step could only go after its 24 h expiry
    assert run.types() == ["post_purchase_cross_sell"]
    assert run.skipped.count(("cart_abandonment", "expired")) == 3


def test_a_late_tick_decides_at_due_time_and_hands_expiry_to_the_sink() -> None:
    run, ev = start(engine())
    run.apply(ev.order("o1", 40, T0 + 60))
    run.tick(T0 + 30 * D)  # cross-sell was due at 3 d; the worker only ticks at 30 d
    (trig,) = run.triggers
    assert trig.trigger_type == "post_purchase_cross_sell"
    assert trig.created_at.timestamp() == T0 + 60 + 3 * D
    assert trig.expires_at.timestamp() == T0 + 60 + 6 * D  # the sink drops it as expired


def test_holdout_marks_would_have_sent() -> None:
    eng = engine("settings: {holdout: {salt: s1, share: 0.5}}")
    held = [cid for cid in (f"c{i}" for i in range(40)) if in_holdout(cid, "s1", 0.5)]
    free = [cid for cid in (f"c{i}" for i in range(40)) if not in_holdout(cid, "s1", 0.5)]
    for cid, expected in ((held[0], True), (free[0], False)):
        run, ev = start(eng, cid)
        run.apply(ev.add("k1", "p1", T0 + 60))
        run.tick(T0 + 2 * H)
        assert [t.holdout for t in run.triggers] == [expected]


def test_persona_entry_trigger_on_high_value() -> None:
    run, ev = start(engine())
    run.apply(ev.order("o1", 1500, T0 + 60))
    assert "persona_entry" in run.types()
    vip = next(t for t in run.triggers if t.trigger_type == "persona_entry")
    assert vip.persona == "high_value" and vip.episode.startswith("high_value@")

"""processors.records.Layout builds exactly what schemas.construct.trusted_builder builds
(same fields in the same order, same fields_set, same errors): the processors' outputs
(PersonaTransition, Trigger, Product) are built with it from positional values."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs
from pydantic import BaseModel

from processors.records import Layout
from processors.state import Item, View
from processors.triggers import _product
from schemas.construct import TrustedValueError, trusted_builder
from schemas.models import PersonaTransition, Product, Trigger

AT = datetime(2026, 1, 5, 12, 30, 1, 123000, tzinfo=UTC)
TRANSITION = {
    "transition_id": "a" * 32, "customer_id": "c1", "dimension": "interest",
    "from_persona": None, "to_persona": "recent_browser:shoes", "rule_id": "r1",
    "rule_version": 2, "facts": {"orders": "1"}, "cause_event_id": None, "at": AT,
}
PRODUCT = {"product_id": "p1", "name": "Shoe", "category": "shoes", "price": 9.5,
           "quantity": 2}
TRIGGER = {
    "trigger_id": "b" * 32, "customer_id": "c1", "trigger_type": "cart_abandonment",
    "rule_id": "cart", "episode": "cart-1", "step": 1, "priority": 40, "marketing": True,
    "created_at": AT, "not_before": None, "expires_at": AT, "recipient": "a@example.com",
    "locale": "en", "time_zone": "UTC", "persona": "browsing", "interest": None,
    "journey_stage": "cart", "segment": "new", "tokens": {"first_name": "A"},
    "products": [Product(product_id="p1")], "experiment": None, "variant": None,
    "holdout": False, "cause_event_id": "e1",
}
CASES = [(PersonaTransition, TRANSITION), (Trigger, TRIGGER), (Product, PRODUCT)]


def _same(a: BaseModel, b: BaseModel) -> None:
    assert type(a) is type(b)
    assert list(a.__dict__.items()) == list(b.__dict__.items())  # values and order
    assert a.model_fields_set == b.model_fields_set
    assert a.model_dump(exclude_unset=True) == b.model_dump(exclude_unset=True)
    assert a.__pydantic_extra__ is None and a.__pydantic_private__ is None


@pytest.mark.parametrize(("cls", "values"), CASES)
def test_layout_builds_what_trusted_builder_builds(cls: type[BaseModel],
                                                   values: dict[str, Any]) -> None:
    names = tuple(values)
    built = Layout(cls, names).build(tuple(values.values()))
    _same(built, trusted_builder(cls)(**values))
    # the built record is a valid model: full validation of its dump gives it back
    assert cls.model_validate(built.model_dump()) == built


def test_layout_fills_defaults_and_factories_afresh() -> None:
    layout = Layout(PersonaTransition, ("transition_id", "customer_id", "to_persona",
                                        "from_persona", "rule_id", "at"))
    a = layout.build(("t" * 32, "c1", "x", None, "r", AT))
    b = layout.build(("t" * 32, "c1", "x", None, "r", AT))
    assert a.facts == {} and a.facts is not b.facts  # a new dict each time
    assert a.type == "Persona Transition" and a.dimension == "lifecycle"
    assert a.model_fields_set is not b.model_fields_set
    _same(a, trusted_builder(PersonaTransition)(
        transition_id="t" * 32, customer_id="c1", to_persona="x", from_persona=None,
        rule_id="r", at=AT))


@pytest.mark.parametrize("customer_id", ["", "x" * 513])
def test_layout_checks_lengths_as_trusted_builder(customer_id: str) -> None:
    values = {**TRANSITION, "customer_id": customer_id}
    with pytest.raises(TrustedValueError) as fast:
        Layout(PersonaTransition, tuple(values)).build(tuple(values.values()))
    with pytest.raises(TrustedValueError) as slow:
        trusted_builder(PersonaTransition)(**values)
    assert str(fast.value) == str(slow.value)


def test_layout_refuses_unknown_and_missing_required_fields() -> None:
    with pytest.raises(TypeError, match="unknown fields"):
        Layout(Product, ("product_id", "colour"))
    with pytest.raises(TypeError, match="product_id is required"):
        Layout(Product, ("name",))


def test_state_entries_stay_their_namedtuples() -> None:
    """Changes, deadlines and sends are built with ``tuple.__new__`` on the hot path: they
    must still be the NamedTuples (field access by name, ``_replace``), with every field."""
    from bench.processors import events
    from processors.engine import Engine, InputRef
    from processors.state import Change, Deadline, Item, Order, Sent

    engine, states = Engine(), {}
    evs, _ = events(200, 3000)
    for i, ev in enumerate(evs):
        key = ev.customer_id or ev.anonymous_id
        states[key] = engine.apply(states.get(key), key, ev, InputRef("t", 0, i),
                                   ev.occurred_at.timestamp()).state
    last = max(ev.occurred_at.timestamp() for ev in evs) + 30 * 86_400
    seen: dict[type, int] = {Change: 0, Deadline: 0, Sent: 0, Item: 0, Order: 0}
    for key, st in states.items():
        before = list(st.deadlines)
        items = [i for cart in st.carts.values() for i in cart.items.values()]
        engine.tick(st, key, last)
        for cls, entries in ((Change, st.changes), (Deadline, [*before, *st.deadlines]),
                             (Sent, st.sent), (Item, items), (Order, st.recent_orders)):
            for entry in entries:
                assert type(entry) is cls and len(entry) == len(cls._fields)
                seen[cls] += 1
    assert all(seen.values()), seen  # the sample exercised every kind


def test_outcome_is_the_same_dataclass() -> None:
    """Outcome's __init__ is written out (native when compiled): it must still be the
    dataclass it was (fields, defaults, keyword and positional construction, eq, repr)."""
    import dataclasses

    from processors.engine import Engine, Outcome

    st = Engine().new_state("c1", 0.0)
    fields = [(f.name, f.default) for f in dataclasses.fields(Outcome)]
    assert fields == [("state", dataclasses.MISSING), ("transitions", ()), ("triggers", ()),
                      ("applied", True), ("skipped", ())]
    out = Outcome(st)
    assert (out.state, out.transitions, out.triggers, out.applied, out.skipped) == (
        st, (), (), True, ())
    assert Outcome(st, applied=False) == Outcome(st, (), (), False, ())
    assert Outcome(st) != Outcome(st, applied=False)
    assert repr(Outcome(st, skipped=[("a", "b")])).startswith("Outcome(state=")
    assert "skipped=[('a', 'b')]" in repr(Outcome(st, skipped=[("a", "b")]))


def test_contexts_carry_the_rule_set_options() -> None:
    """Guard contexts get the settings' windows (passed one by one, not as ``*opts``)."""
    from processors.engine import Engine
    from tests.unit.test_processors_fastpath import T0, _view

    engine = Engine()
    s = engine.rules.settings
    options = (s.recent_window, s.engagement_half_life, s.affinity_half_life)
    st = engine.new_state("c1", T0)
    ctx = engine.ctx(st, None, "merge", T0)
    assert (ctx.recent, ctx.eng_half, ctx.aff_half) == options
    st.persona, st.interest = "browsing", "none"
    _, built = engine.machine.evaluate_input(st, _view("hats"), "Product Viewed", T0,
                                             engine._ctx_opts, "c1", "e0")
    assert built is not None and (built.recent, built.eng_half, built.aff_half) == options
    _, plain = engine.machine.evaluate_input(engine.new_state("c2", T0), _view("hats"),
                                             "Product Viewed", T0, (), "c2", "e0")
    assert plain is not None and plain.recent == 172_800.0  # Ctx's default


_ids = hs.text(hs.characters(codec="utf-8"), min_size=1, max_size=12)
_texts = hs.text(hs.characters(codec="utf-8"), max_size=12)
_prices = hs.floats(0, 10_000, allow_nan=False).map(lambda p: round(p, 2))


@settings(max_examples=100, deadline=None)
@given(_ids, _texts, _texts, _prices, hs.integers(0, 2**40), hs.integers(1, 99))
def test_trigger_products_of_views_and_cart_lines(product_id: str, name: str, category: str,
                                                  price: float, at: int, quantity: int) -> None:
    """A view (no quantity: 1) and a cart line (its quantity) become the Product that
    trusted_builder builds from the same values, and a valid one."""
    cases = [(View(product_id, name, category, price, at), 1),
             (Item(product_id, name, category, price, quantity), quantity)]
    for line, expected_quantity in cases:
        built = _product(line, int(line[4]) if isinstance(line, Item) else 1)
        _same(built, trusted_builder(Product)(
            product_id=product_id, name=name, category=category, price=float(price),
            quantity=expected_quantity))
        assert Product.model_validate(built.model_dump()) == built

"""The guard language: parsing, semantics, errors with columns, and no eval."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors.conditions import ConditionError, compile_condition
from processors.engine import Engine
from processors.facts import GETTERS, Ctx, fact_values
from processors.samples import T0, Events, Runner

FACTS: dict[str, Any] = {
    "orders": lambda c: c.orders,
    "since": lambda c: c.since,
    "cats": lambda c: c.cats,
    "event.type": lambda c: c.etype,
}


def ctx(**kw: Any) -> SimpleNamespace:
    base = {"orders": 2, "since": None, "cats": ["shoes"], "etype": "Product Viewed"}
    return SimpleNamespace(**{**base, **kw})


@pytest.mark.parametrize(("text", "expected"), [
    ("orders >= 2", True),
    ("orders > 2", False),
    ("orders == 2 and event.type == 'Product Viewed'", True),
    ("orders > 5 or \"shoes\" in cats", True),
    ("not (orders < 1)", True),
    ("orders not in [1, 3]", True),
    ("event.type in ['Order Completed', 'Product Added']", False),
    ("since < 30d", False),  # null never orders
    ("since == null", True),
    ("1d > 23h and 2w == 14d and 90m == 1.5h", True),
    ("orders", True),
    ("true and not false", True),
    ("orders >= 1 and orders <= 3 and orders != 4", True),
])
def test_semantics(text: str, expected: bool) -> None:
    assert compile_condition(text, FACTS).test(ctx()) is expected


def test_facts_read_are_listed_once_in_order() -> None:
    cond = compile_condition("orders > 1 and (cats != null or orders < 9)", FACTS)
    assert cond.facts == ("orders", "cats")


@pytest.mark.parametrize(("text", "column", "needle"), [
    ("orders >", 9, "expected a value"),
    ("foo == 1", 1, "unknown fact 'foo'"),
    ("orders == 1 1", 13, "unexpected '1'"),
    ("orders @ 3", 8, "unexpected character '@'"),
    ("(orders", 8, "expected ')'"),
    ("__import__('os').system('x')", 17, "unexpected character '.'"),
    ("__import__('os')", 1, "unknown fact '__import__'"),
])
def test_errors_have_columns(text: str, column: int, needle: str) -> None:
    with pytest.raises(ConditionError) as info:
        compile_condition(text, FACTS)
    assert info.value.column == column and needle in str(info.value)
    assert info.value.retriable is False


@given(a=st.integers(-50, 50), b=st.integers(-50, 50))
def test_comparisons_match_python(a: int, b: int) -> None:
    facts = {"x": lambda c: a}
    for op in ("==", "!=", "<", "<=", ">", ">="):
        got = compile_condition(f"x {op} {b}", facts).test(None)
        assert got is eval(f"{a} {op} {b}")  # the reference, on literals we built


@given(st.text(max_size=40))
def test_arbitrary_text_compiles_or_raises_condition_error(text: str) -> None:
    with contextlib.suppress(ConditionError):
        compile_condition(text, FACTS)


def test_every_registered_fact_evaluates_on_a_real_state() -> None:
    run, ev = Runner(Engine(), "c1"), Events("c1")
    for event in (ev.identify(T0), ev.view("p1", T0 + 1), ev.add("k1", "p1", T0 + 2),
                  ev.order("o1", 80, T0 + 3, products=("p1",)), ev.opened(T0 + 4)):
        run.apply(event)
    events: tuple[Any, ...] = (None, ev.view("p2", T0 + 5))
    for event in events:
        c = Ctx(run.state, event, event.type if event else "tick", T0 + 10)
        values = fact_values(tuple(GETTERS), c)
        assert set(values) == set(GETTERS)
    assert values["orders"] == "1" and values["top_category"] == "shoes"
    assert values["segment"] == "new" and values["rfm.r"] == "5"
    assert values["event.category"] == "outerwear" and values["recent_views"] == "1"

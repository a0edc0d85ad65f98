"""The machine's per-input-type plans and fast paths give exactly what the general evaluation
gives: every candidate tried in priority order, each target filled by
``Transition.target``, each guard read in full, no caches and no shortcuts.

Also: guards compiled with n-ary and/or chains and fused fact-to-fact orderings evaluate as
the plain pairwise definitions do."""

from __future__ import annotations

import operator
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.conditions import compile_condition
from processors.engine import Engine, decode_state, encode_state
from processors.facts import Ctx, fact_values
from processors.machine import FIELDS
from processors.reducers import REDUCERS
from processors.ruleset import DIMENSIONS
from processors.samples import T0, Events
from processors.state import CustomerState
from schemas.models import PersonaTransition, ProductListViewed

ENGINE = Engine()  # the shipped default rules
PRODUCTS = ["p1", "p2", "p3", "p4", "p5", "p9"]  # p9: not in the catalogue ("misc")
SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

steps = st.one_of(
    st.tuples(st.just("view"), st.sampled_from(PRODUCTS)),
    st.tuples(st.just("add"), st.sampled_from(PRODUCTS)),
    st.tuples(st.just("order"), st.integers(5, 1500)),
    st.tuples(st.just("list")),
    st.tuples(st.just("page")),
    st.tuples(st.just("search")),
    st.tuples(st.just("checkout")),
    st.tuples(st.just("cart_view")),
    st.tuples(st.just("identify")),
)
gaps = st.sampled_from([5, 60, 1800, 3 * 3600, 30 * 3600, 3 * 86_400, 40 * 86_400])
journeys = st.lists(st.tuples(gaps, steps), min_size=1, max_size=25)


def _event(ev: Events, step: tuple[Any, ...], t: float, n: int) -> Any:
    kind = step[0]
    if kind == "view":
        return ev.view(step[1], t)
    if kind == "add":
        return ev.add("k1", step[1], t)
    if kind == "order":
        return ev.order(f"o{n}", float(step[1]), t, cart_id="k1", products=("p1",))
    if kind == "list":
        return ProductListViewed(**ev._env(t), category="shoes")
    if kind == "page":
        return ev.page(t)
    if kind == "search":
        return ev.search("boots", t)
    if kind == "checkout":
        return ev.checkout("k1", t)
    if kind == "cart_view":
        return ev.cart_view("k1", t)
    return ev.identify(t)


def _reference(
    engine: Engine, state: CustomerState, event: Any, t: float, customer_id: str
) -> list[PersonaTransition]:
    """The general evaluation: per dimension, up to max_chain moves, each the first candidate
    (priority order) whose target (Transition.target) differs, whose guard holds and whose
    dimension declares the target."""
    machine, rules = engine.machine, engine.rules
    ctx = Ctx(state, event, event.type, t, None, *engine._ctx_opts)
    out: list[PersonaTransition] = []
    for dim in DIMENSIONS:
        for _ in range(rules.settings.max_chain):
            current = getattr(state, FIELDS[dim][0])
            moved = None
            ordered = sorted(enumerate(rules.transitions), key=lambda it: (-it[1].priority, it[0]))
            for _, tr in ordered:
                if tr.dimension != dim or not tr.applies_from(current):
                    continue
                if tr.events is not None and event.type not in tr.events:
                    continue
                target = tr.target(ctx)
                if target is None or target == current:
                    continue
                if tr.guard is not None and not tr.guard.test(ctx):
                    continue
                if not rules.dimensions[dim].accepts(target):
                    continue
                facts = fact_values(tr.guard.facts, ctx) if tr.guard else {}
                facts.setdefault("event.type", event.type)
                moved = machine.move(
                    state, dim, target, tr.id, tr.version, facts, customer_id, t, event.event_id
                )
                ctx.forget()
                break
            if moved is None:
                break
            out.append(moved)
    return out


@SETTINGS
@given(journeys)
def test_planned_evaluation_matches_the_general_one(plan: list[tuple[int, Any]]) -> None:
    ev = Events("c1")
    t = T0
    state = ENGINE.new_state("c1", t)
    for n, (gap, step) in enumerate(plan):
        t += gap
        event = _event(ev, step, t, n)
        fast = decode_state(encode_state(state))
        slow = decode_state(encode_state(state))
        for copy in (fast, slow):
            REDUCERS[event.type](copy, event, int(t), ENGINE.rules)
        moves, ctx = ENGINE.machine.evaluate_input(
            fast, event, event.type, t, ENGINE._ctx_opts, "c1", event.event_id
        )
        expected = _reference(ENGINE, slow, event, t, "c1")
        assert [m.model_dump() for m in moves] == [m.model_dump() for m in expected]
        assert encode_state(fast) == encode_state(slow)
        assert (ctx is None) <= (moves == [])  # no context, no move
        state = ENGINE.apply(state, "c1", event, None, t).state


def test_new_state_is_initialise_on_an_empty_state() -> None:
    built = ENGINE.new_state("c1", T0 + 0.7)
    expected = CustomerState("c1")
    ENGINE.machine.initialise(expected, T0 + 0.7)
    assert built == expected


def test_event_target_is_the_same_string_for_a_category() -> None:
    ev = Events("c1")
    tr = next(t for t in ENGINE.rules.transitions if t.id == "browses_category")
    fill = ENGINE.machine._ev_targets[tr.id]
    assert fill is not None
    first, second = fill(ev.view("p1", T0)), fill(ev.view("p1", T0 + 1))
    assert first == "recent_browser:shoes" and first is second
    assert fill(ev.page(T0)) is None


# ------------------------------------------------------------------ compiled conditions

VALUES = st.one_of(
    st.none(),
    st.integers(-3, 3),
    st.floats(-3, 3, allow_nan=False),
    st.sampled_from(["a", "b", ""]),
    st.booleans(),
)


def _getter(name: str) -> Any:
    return lambda ctx: ctx[name]


NAMES = ["f0", "f1", "f2", "f3", "f4", "f5", "f6"]
REGISTRY = {name: _getter(name) for name in NAMES}


def _truthy(ctx: dict[str, Any], name: str) -> bool:
    return bool(ctx[name])


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 7), st.sampled_from(["and", "or"]), st.lists(VALUES, min_size=7, max_size=7))
def test_chains_evaluate_as_pairwise_and_or(n: int, op: str, values: list[Any]) -> None:
    ctx = dict(zip(NAMES, values, strict=True))
    cond = compile_condition(f" {op} ".join(NAMES[:n]), REGISTRY)
    parts = [_truthy(ctx, name) for name in NAMES[:n]]
    assert cond.test(ctx) is (all(parts) if op == "and" else any(parts))


def _ordered(op: Any, a: Any, b: Any) -> bool:
    if a is None or b is None:
        return False
    try:
        return bool(op(a, b))
    except TypeError:
        return False


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["<", "<=", ">", ">="]), VALUES, VALUES)
def test_fact_to_fact_ordering_is_null_and_type_safe(op: str, a: Any, b: Any) -> None:
    ops = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
    cond = compile_condition(f"f0 {op} f1", REGISTRY)
    assert cond.test({"f0": a, "f1": b}) is _ordered(ops[op], a, b)

"""The machine's context-free fast path: a target computed from the event alone equals the
one the full evaluation computes, so "no move" can be decided without a guard context."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.engine import Engine
from processors.facts import Ctx
from schemas.models import Product, ProductViewed

ENGINE = Engine()
T0 = datetime(2026, 1, 5, 12, tzinfo=UTC).timestamp()


def _view(category: str, i: int = 0) -> ProductViewed:
    return ProductViewed(
        event_id=f"e{i}", occurred_at=datetime.fromtimestamp(T0 + i, UTC), customer_id="c1",
        product=Product(product_id=f"p{i}", name="Thing", category=category, price=10),
    )


def test_view_of_current_interest_builds_no_context() -> None:
    state = ENGINE.new_state("c1", T0)
    state.persona, state.interest = "browsing", "recent_browser:shoes"
    moves, ctx = ENGINE.machine.evaluate_input(
        state, _view("shoes"), "Product Viewed", T0, ENGINE._ctx_opts, "c1", "e0")
    assert moves == [] and ctx is None


def test_two_views_of_new_category_still_move_interest() -> None:
    state = None
    for i in range(2):
        out = ENGINE.apply(state, "c1", _view("hats", i), None, T0 + i)
        state = out.state
    assert state is not None and state.interest == "recent_browser:hats"


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["shoes", "hats", "bags"]), st.sampled_from(["shoes", "hats", "none"]))
def test_fast_path_agrees_with_full_evaluation(category: str, interest: str) -> None:
    ev = _view(category)
    state = ENGINE.new_state("c1", T0)
    state.persona = "browsing"
    state.interest = interest if interest == "none" else f"recent_browser:{interest}"
    ctx = Ctx(state, ev, "Product Viewed", T0)
    checked = 0
    for tr in ENGINE.machine.candidates("interest", state.interest, "Product Viewed"):
        fill = ENGINE.machine._ev_targets[tr.id]  # the target from the event alone
        if fill is not None:
            assert fill(ev) == tr.target(ctx)
            checked += 1
    assert checked, "no candidate with an event-only target: the fast path is not exercised"

"""The machine's context-free fast path: a view of the current interest category decides
"no move" from the event alone, exactly as the full evaluation would."""

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
    for tr in ENGINE.machine.candidates("interest", state.interest, "Product Viewed"):
        if ENGINE.machine._stays(tr, ev, state.interest):
            ctx = Ctx(state, ev, "Product Viewed", T0)
            target = tr.target(ctx)
            assert target is None or target == state.interest

"""The renderer's fast paths (context built directly, macros called without Jinja's argument
juggling, model fields read without the sandbox's checks, templates found in a dict) give the
same bytes as stock Jinja2 sandboxed rendering of the same templates and context."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from schemas.models import Product, Trigger
from sinks.personas import vocabulary
from sinks.render import PARTS, RenderedEmail, Renderer, _money, _one_line, _safe_url
from sinks.samples import TRIGGER_TYPES
from sinks.settings import TEMPLATES_DIR

UNSUB = "https://shop.example.com/unsubscribe?t=abc"
RENDERER = Renderer(TEMPLATES_DIR)


def _stock_env() -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=lambda name: bool(name and name.endswith(".html.j2")),
        undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )
    env.filters["money"] = _money
    env.filters["safe_url"] = _safe_url
    return env


STOCK = _stock_env()


def stock_render(trigger: Trigger) -> RenderedEmail:
    """The reference: Template.render with a fresh copy of the renderer's context per part."""
    folder = RENDERER._folder(trigger.trigger_type)
    ctx: dict[str, Any] = RENDERER.context(trigger, UNSUB)
    ctx = {k: v for k, v in ctx.items() if k not in STOCK.globals}
    parts = {}
    for part in PARTS:
        name = RENDERER._template_name(folder, part, trigger.variant)
        parts[part] = STOCK.get_template(name).render(ctx)
        if part in ("subject", "preheader"):
            ctx[part] = _one_line(parts[part])
    return RenderedEmail(ctx["subject"], ctx["preheader"], parts["body.html"],
                         parts["body.txt"].strip() + "\n")


def trigger(**fields: Any) -> Trigger:
    base = {
        "trigger_id": "t-1", "customer_id": "c-1", "trigger_type": "cart_abandonment",
        "rule_id": "r", "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        "recipient": "x@example.com",
    }
    return Trigger(**{**base, **fields})


_text = st.text(max_size=30)
_product = st.builds(
    Product, product_id=st.text(min_size=1, max_size=10), name=_text, brand=st.none() | _text,
    price=st.floats(min_value=0, max_value=1e6), quantity=st.integers(0, 5),
    url=st.none() | st.sampled_from(["https://s.example/p", "javascript:x", "http://a/<b>"]),
    image_url=st.none() | st.just("https://img.example/p.png"),
)


@settings(max_examples=150, deadline=None)
@given(
    trigger_type=st.sampled_from([*TRIGGER_TYPES, "unknown_type"]),
    persona=st.none() | st.sampled_from(sorted(vocabulary().lifecycle)),
    segment=st.none() | st.sampled_from(["prospect", "vip", "champions", "x"]),
    variant=st.none() | st.sampled_from(["A", "B", "Z"]),
    step=st.integers(0, 4),
    tokens=st.dictionaries(
        st.sampled_from(["first_name", "cart_value", "currency", "discount_code", "cart_url",
                         "cart_items", "shop_url", "other"]), _text | st.just("<b>&</b>")),
    products=st.lists(_product, max_size=6),
)
def test_same_bytes_as_stock_jinja(
    trigger_type: str, persona: str | None, segment: str | None, variant: str | None,
    step: int, tokens: dict[str, str], products: list[Product],
) -> None:
    t = trigger(trigger_type=trigger_type, persona=persona, segment=segment, variant=variant,
                step=step, tokens=tokens, products=products)
    assert RENDERER.render(t, UNSUB) == stock_render(t)


@pytest.mark.parametrize("trigger_type", TRIGGER_TYPES)
def test_fast_context_has_the_attributes_jinja_builds(trigger_type: str) -> None:
    RENDERER.render(trigger(trigger_type=trigger_type), UNSUB)
    ctx = RENDERER.context(trigger(trigger_type=trigger_type), UNSUB)
    for template in RENDERER._compiled.values():
        stock, fast = template.new_context(ctx, True), RENDERER._new_context(template, ctx)
        a, b = dict(vars(stock)), dict(vars(fast))
        assert vars(a.pop("eval_ctx")) == vars(b.pop("eval_ctx"))
        assert a == b

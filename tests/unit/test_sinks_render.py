"""Rendering: persona/segment subjects, token fallbacks, escaping, variants, template errors."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.models import Product, Trigger
from sinks.errors import TemplateError
from sinks.lint import check_templates
from sinks.personas import (
    LAPSING_PERSONAS,
    LOYAL_PERSONAS,
    NEWCOMER_PERSONAS,
    TOP_SEGMENTS,
    vocabulary,
)
from sinks.render import Renderer
from sinks.samples import TRIGGER_TYPES
from sinks.settings import TEMPLATES_DIR

UNSUB = "https://shop.example.com/unsubscribe?t=abc"
RENDERER = Renderer(TEMPLATES_DIR)


def trigger(**fields) -> Trigger:
    base = {
        "trigger_id": "t-1", "customer_id": "c-1", "trigger_type": "cart_abandonment",
        "rule_id": "r", "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        "recipient": "x@example.com",
    }
    return Trigger(**{**base, **fields})


@pytest.mark.parametrize("loyal_persona", sorted(LOYAL_PERSONAS))
@pytest.mark.parametrize("first_persona", sorted(NEWCOMER_PERSONAS))
def test_loyal_and_first_time_browser_get_different_subjects(loyal_persona, first_persona):
    loyal = RENDERER.render(trigger(persona=loyal_persona, tokens={"first_name": "Ada"}), UNSUB)
    first = RENDERER.render(trigger(persona=first_persona), UNSUB)
    assert loyal.subject == "Ada, your favourites are waiting in your cart"
    assert first.subject == "Still thinking it over? Your cart is saved"
    assert "regulars" in loyal.html and "Welcome! Your first picks" in first.html


def test_persona_groups_only_name_states_of_the_shipped_rules():
    vocab = vocabulary()
    assert "loyal" in vocab.lifecycle and "new_visitor" in vocab.lifecycle
    for group in (LOYAL_PERSONAS, NEWCOMER_PERSONAS, LAPSING_PERSONAS):
        assert group <= set(vocab.lifecycle)
    assert set(vocab.segments) >= TOP_SEGMENTS and "prospect" in vocab.segments


def test_engine_tokens_and_interest_facet_reach_the_email():
    t = trigger(persona="cart_abandoner", tokens={"cart_value": "114.9", "currency": "EUR"})
    assert "Cart total: 114.90 EUR" in RENDERER.render(t, UNSUB).text
    b = RENDERER.render(trigger(trigger_type="browse_abandonment",
                                interest="recent_browser:shoes"), UNSUB)
    assert b.preheader == "More shoes picks inside"
    r = RENDERER.render(trigger(trigger_type="re_engagement", persona="at_risk",
                                tokens={"top_category": "socks"}), UNSUB)
    assert r.subject == "We miss you: see what is new" and "changed in socks" in r.text


def test_templates_check_flags_persona_names_the_engine_never_emits(tmp_path):
    shutil.copytree(TEMPLATES_DIR, tmp_path / "t")
    subject = tmp_path / "t" / "welcome" / "subject.j2"
    subject.write_text('{% if persona == "vip" or trigger.segment in ["new", "whale"] %}Hi'
                       '{% elif persona == "recent_browser:shoes" %}Shoes{% else %}Yo{% endif %}')
    _, problems = check_templates(tmp_path / "t")
    text = "\n".join(map(str, problems))
    assert "persona 'vip' is never emitted" in text
    assert "segment 'whale' is never emitted" in text
    assert "'new'" not in text and "recent_browser" not in text


def test_missing_or_blank_first_name_falls_back_to_neutral_greeting():
    for tokens in ({}, {"first_name": "  "}):
        email = RENDERER.render(trigger(tokens=tokens), UNSUB)
        assert "Hi there," in email.text and "Hi there," in email.html


def test_product_block_lists_products_with_prices_and_safe_links():
    products = [
        Product(product_id="p1", name="Trail Shoe", price=89.9, quantity=2,
                url="https://shop.example.com/p1"),
        Product(product_id="p2", name="Sock", url="javascript:alert(1)"),
    ]
    email = RENDERER.render(trigger(products=products), UNSUB)
    assert "Trail Shoe" in email.html and "89.90 USD" in email.html and "&times; 2" in email.html
    assert 'href="https://shop.example.com/p1"' in email.html
    assert "javascript:" not in email.html and 'href="#"' in email.html
    assert "- Trail Shoe (89.90 USD)" in email.text
    assert email.preheader == "Trail Shoe and 1 more still in your cart"


def test_variant_b_uses_its_own_subject_and_unknown_variant_the_default():
    b = RENDERER.render(trigger(variant="B"), UNSUB)
    other = RENDERER.render(trigger(variant="../../etc"), UNSUB)
    assert b.subject == "Your cart is saved: complete your order"
    assert other.subject == "You left something in your cart"


def test_unknown_trigger_type_uses_default_folder():
    email = RENDERER.render(trigger(trigger_type="something_new"), UNSUB)
    assert email.subject == "News from the shop"


def test_unsubscribe_link_in_both_parts():
    email = RENDERER.render(trigger(), UNSUB)
    assert UNSUB in email.text and UNSUB in email.html


@settings(max_examples=60, deadline=None)
@given(name=st.text(max_size=40), product=st.text(min_size=1, max_size=40),
       trigger_type=st.sampled_from(TRIGGER_TYPES), persona=st.sampled_from(
           ["", *vocabulary().lifecycle]))
def test_any_event_data_renders_escaped(name, product, trigger_type, persona):
    t = trigger(trigger_type=trigger_type, persona=persona or None,
                tokens={"first_name": name + "<i>"},
                products=[Product(product_id="p", name=product + "<b>")])
    email = RENDERER.render(t, UNSUB)
    assert "<i>" not in email.html and "<b>" not in email.html
    assert email.subject and "\n" not in email.subject


def test_broken_template_raises_typed_non_retriable_error(tmp_path):
    shutil.copytree(TEMPLATES_DIR, tmp_path / "t")
    (tmp_path / "t" / "welcome" / "subject.j2").write_text("{{ tokens.first_name }}")
    (tmp_path / "t" / "win_back" / "subject.j2").write_text("{{ ''.__class__.__mro__ }}")
    (tmp_path / "t" / "re_engagement" / "preheader.j2").unlink()
    (tmp_path / "t" / "persona_entry" / "subject.j2").write_text(
        "{{ trigger.__class__.__mro__ }}{{ products[0].__dict__ }}")
    (tmp_path / "t" / "browse_abandonment" / "subject.j2").write_text(
        "{{ token.__call__.__globals__ }}")
    renderer = Renderer(tmp_path / "t")
    for kind, reason in (("welcome", "template_error"), ("win_back", "template_error"),
                         ("re_engagement", "template_missing"),
                         ("persona_entry", "template_error"),
                         ("browse_abandonment", "template_error")):
        with pytest.raises(TemplateError) as info:
            renderer.render(trigger(trigger_type=kind, products=[Product(product_id="p")]),
                            UNSUB)
        assert info.value.reason == reason and info.value.retriable is False


def test_templates_check_passes_for_shipped_templates_and_flags_problems(tmp_path):
    renders, problems = check_templates(TEMPLATES_DIR)
    assert problems == [] and renders >= 3 * len(TRIGGER_TYPES)
    shutil.copytree(TEMPLATES_DIR, tmp_path / "t")
    body = tmp_path / "t" / "welcome" / "body.html.j2"
    body.write_text(body.read_text().replace("{% block content %}",
                                             "{% block content %}{{ tokens | safe }}"))
    (tmp_path / "t" / "browse_abandonment" / "body.txt.j2").write_text("no link\n")
    _, problems = check_templates(tmp_path / "t")
    text = "\n".join(map(str, problems))
    assert "welcome" in text and "not escaped" in text
    assert "browse_abandonment" in text and "no unsubscribe link in the text part" in text


def test_trigger_type_cannot_reach_outside_the_templates_folder():
    for kind in ("../sinks", "cart_abandonment/../../..", "_layout", ".hidden"):
        email = RENDERER.render(trigger(trigger_type=kind), UNSUB)
        assert email.subject == "News from the shop"


def test_an_arithmetic_error_in_a_template_is_a_template_error(tmp_path):
    # (was raised as a bare ZeroDivisionError: not a TemplateError, so no dead letter)
    shutil.copytree(TEMPLATES_DIR, tmp_path / "t")
    (tmp_path / "t" / "welcome" / "subject.j2").write_text("{{ 10 // trigger.step }} news")
    renderer = Renderer(tmp_path / "t")
    with pytest.raises(TemplateError) as info:
        renderer.render(trigger(trigger_type="welcome", step=0), UNSUB)
    assert info.value.reason == "template_error" and "ZeroDivisionError" in str(info.value)
    assert renderer.render(trigger(trigger_type="welcome", step=2), UNSUB).subject == "5 news"

"""The sink end to end over SMTP: real broker, real Redis, a real aiosmtpd server."""

from __future__ import annotations

import pytest

from schemas.models import Product, SendOutcome
from sinks.devservers import CaptureSmtp
from sinks.harness import make_trigger, produce, read_results, running_sink


@pytest.fixture
def smtp():
    server = CaptureSmtp()
    server.start()
    yield server
    server.stop()


def _by_to(messages):
    return {m["To"]: m for m in messages}


async def test_personalised_emails_over_smtp(env, smtp):
    loyal = make_trigger("loyal", persona="loyal", tokens={"first_name": "Ada"},
                         products=[Product(product_id="p1", name="Trail Shoe", price=89.9)])
    browser = make_trigger("first", persona="new_visitor", tokens={},
                           products=[Product(product_id="p2", name="<b>Bold</b> & Co")])
    markup = make_trigger("markup", persona="browsing",
                          tokens={"first_name": "<script>alert(1)</script>"})
    produce(env.bootstrap, env.topics["triggers.email"], [loyal, browser, markup])
    settings = env.settings(esp="smtp", smtp_port=smtp.port)
    async with running_sink(settings, env.wiring()):
        results = await _results(env, 3)
    assert {r.outcome for r in results} == {SendOutcome.SENT}
    mails = _by_to(smtp.messages)
    assert set(mails) == {"personloyal@example.com", "personfirst@example.com",
                          "personmarkup@example.com"}

    a = mails["personloyal@example.com"]
    assert a["Subject"] == "Ada, your favourites are waiting in your cart"
    assert "Hi Ada," in a.get_body(("plain",)).get_content()
    assert "Trail Shoe" in a.get_body(("html",)).get_content()
    assert "89.90 USD" in a.get_body(("html",)).get_content()

    b = mails["personfirst@example.com"]
    assert b["Subject"] == "Still thinking it over? Your cart is saved"
    assert "Hi there," in b.get_body(("plain",)).get_content()  # first-name fallback
    html_b = b.get_body(("html",)).get_content()
    assert "&lt;b&gt;Bold&lt;/b&gt; &amp; Co" in html_b and "<b>Bold" not in html_b

    c = mails["personmarkup@example.com"]
    html_c = c.get_body(("html",)).get_content()
    assert "&lt;script&gt;" in html_c and "<script>" not in html_c

    for m in mails.values():
        assert m["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert m["List-Unsubscribe"].startswith("<http")
        assert m["Message-ID"].startswith("<")


async def test_same_trigger_three_times_sends_one_email(env, smtp):
    trigger = make_trigger("dup")
    produce(env.bootstrap, env.topics["triggers.email"], [trigger, trigger, trigger])
    settings = env.settings(esp="smtp", smtp_port=smtp.port, concurrency=8)
    async with running_sink(settings, env.wiring()):
        results = await _results(env, 3)
    assert len(smtp.messages) == 1
    outcomes = sorted(r.outcome.value for r in results)
    assert outcomes == ["duplicate", "duplicate", "sent"]


async def _results(env, want):
    import asyncio

    return await asyncio.to_thread(
        read_results, env.bootstrap, env.topics["sends.results"], want=want, timeout=30
    )

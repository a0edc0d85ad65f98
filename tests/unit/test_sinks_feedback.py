"""Engagement events -> suppression actions, SendGrid webhook items -> engagement events."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.models import (
    BounceKind,
    ConsentChanged,
    EmailBounced,
    EmailClicked,
    EmailDelivered,
    EmailOpened,
    EmailSpamReported,
    EmailUnsubscribed,
    ErasureRequested,
    Identify,
)
from sinks.suppression import Scope, Suppression, action_for
from sinks.webhooks import SendGridEvent, engagement_event

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def ev(cls, **fields):
    return cls(event_id="e", occurred_at=NOW, customer_id="c", **fields)


def test_suppressing_events_and_their_scopes():
    cases = {
        ErasureRequested: (Scope.ALL, "erasure"),
        EmailBounced: (Scope.ALL, "hard_bounce"),
        EmailSpamReported: (Scope.MARKETING, "spam_report"),
        EmailUnsubscribed: (Scope.MARKETING, "unsubscribed"),
    }
    for cls, (scope, reason) in cases.items():
        action = action_for(ev(cls), now_ms=5)
        assert action.customer_id == "c"
        assert (action.suppress.scope, action.suppress.reason) == (scope, reason)
    withdrawn = action_for(ev(ConsentChanged, granted=False))
    assert withdrawn.suppress.scope is Scope.MARKETING
    assert action_for(ev(ConsentChanged, granted=True)).suppress is None
    assert action_for(ev(ConsentChanged, granted=False, purpose="transactional")) is None
    assert action_for(ev(EmailBounced, bounce_type=BounceKind.SOFT)) is None
    assert action_for(ev(EmailOpened)) is None
    assert action_for(ev(Identify)) is None


def test_suppression_scope_blocks_and_encoding_roundtrip():
    marketing = Suppression(Scope.MARKETING, "unsubscribed", 7)
    assert marketing.blocks(True) and not marketing.blocks(False)
    assert Suppression(Scope.ALL, "erasure", 1).blocks(False)
    assert Suppression.decode(marketing.encode()) == marketing
    assert Suppression.decode("garbage").scope is Scope.ALL  # fail closed


def test_sendgrid_items_map_to_engagement_events():
    def item(**f):
        return SendGridEvent.model_validate(
            {"timestamp": 1767225600, "customer_id": "c", "sg_event_id": "x", **f})

    assert isinstance(engagement_event(item(event="delivered")), EmailDelivered)
    assert isinstance(engagement_event(item(event="open")), EmailOpened)
    click = engagement_event(item(event="click", url="https://x"))
    assert isinstance(click, EmailClicked) and click.url == "https://x"
    hard = engagement_event(item(event="bounce", type="bounce"))
    soft = engagement_event(item(event="bounce", type="blocked"))
    assert hard.bounce_type is BounceKind.HARD and soft.bounce_type is BounceKind.SOFT
    assert isinstance(engagement_event(item(event="unsubscribe")), EmailUnsubscribed)
    assert isinstance(engagement_event(item(event="spamreport")), EmailSpamReported)
    assert engagement_event(item(event="processed")) is None
    a, b = engagement_event(item(event="open")), engagement_event(item(event="open"))
    assert a.event_id == b.event_id == "sg-x"  # SendGrid retries dedupe downstream
    assert a.occurred_at == NOW and a.source == "sendgrid"

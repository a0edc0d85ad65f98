"""Consent and suppression: opted-out and bounced customers get nothing; webhooks and one-click
unsubscribe suppress before they answer and publish engagement events."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import aiohttp
import pytest
from confluent_kafka import Producer

from personaflow.kafka import producer_config
from schemas.codec import decode_event, encode_event
from schemas.models import (
    ConsentChanged,
    EmailBounced,
    EmailSpamReported,
    EmailUnsubscribed,
    SendOutcome,
)
from sinks.devservers import CaptureSmtp
from sinks.harness import make_trigger, produce, read_results, read_topic, running_sink
from sinks.unsubscribe import make_token


@pytest.fixture
def smtp():
    server = CaptureSmtp()
    server.start()
    yield server
    server.stop()


def _publish(env, topic, events):
    producer = Producer(producer_config(env.bootstrap))
    for event in events:
        producer.produce(env.topics[topic], encode_event(event), key=event.customer_id)
    producer.flush(10)


async def _until_suppressed(app, customer_ids):
    for _ in range(300):
        found = [await app.service.suppression.get(c) for c in customer_ids]
        if all(found):
            return found
        await asyncio.sleep(0.05)
    raise AssertionError("suppression feed did not apply the events")


async def test_opted_out_and_bounced_customers_are_suppressed(env, smtp):
    now = datetime.now(UTC)
    settings = env.settings(esp="smtp", smtp_port=smtp.port)
    async with running_sink(settings, env.wiring(), feed=True) as app:
        _publish(env, "events.identity", [
            ConsentChanged(event_id="e1", occurred_at=now, customer_id="cust-optout",
                           granted=False),
        ])
        _publish(env, "events.engagement", [
            EmailBounced(event_id="e2", occurred_at=now, customer_id="cust-bounced"),
        ])
        found = await _until_suppressed(app, ["cust-optout", "cust-bounced"])
        assert [s.reason for s in found] == ["consent_withdrawn", "hard_bounce"]
        produce(env.bootstrap, env.topics["triggers.email"], [
            make_trigger("optout", customer_id="cust-optout"),
            make_trigger("bounced", customer_id="cust-bounced", marketing=False),
            make_trigger("ok", customer_id="cust-ok"),
            make_trigger("optout-tx", customer_id="cust-optout", marketing=False),
        ])
        results = await asyncio.to_thread(
            read_results, env.bootstrap, env.topics["sends.results"], want=4, timeout=30
        )
    by_id = {r.trigger_id: r for r in results}
    assert by_id["trg-optout"].outcome is SendOutcome.SUPPRESSED
    assert by_id["trg-optout"].reason == "consent_withdrawn"
    assert by_id["trg-bounced"].outcome is SendOutcome.SUPPRESSED  # hard bounce blocks all
    assert by_id["trg-ok"].outcome is SendOutcome.SENT
    assert by_id["trg-optout-tx"].outcome is SendOutcome.SENT  # transactional still goes
    assert sorted(m["To"] for m in smtp.messages) == ["personok@example.com",
                                                     "personoptout-tx@example.com"]


async def test_webhook_and_one_click_unsubscribe_suppress_and_publish(env, smtp):
    settings = env.settings(esp="smtp", smtp_port=smtp.port, unsubscribe_secret="s3cret")
    async with running_sink(settings, env.wiring(), web=True) as app:
        base = f"http://127.0.0.1:{app.port}"
        ts = int(datetime.now(UTC).timestamp())
        body = [
            {"event": "delivered", "timestamp": ts, "sg_event_id": "a", "customer_id": "c-d",
             "trigger_id": "t1", "email": "x@example.com"},
            {"event": "open", "timestamp": ts, "sg_event_id": "b", "customer_id": "c-d"},
            {"event": "click", "timestamp": ts, "sg_event_id": "c", "customer_id": "c-d",
             "url": "https://shop.example.com/p/1"},
            {"event": "bounce", "type": "bounce", "timestamp": ts, "sg_event_id": "d",
             "customer_id": "c-hard"},
            {"event": "spamreport", "timestamp": ts, "sg_event_id": "e", "customer_id": "c-spam"},
            {"event": "processed", "timestamp": ts, "customer_id": "c-d"},
            {"event": "open", "timestamp": "yesterday", "customer_id": "c-d"},
            {"event": "open", "timestamp": ts},
        ]
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base}/webhooks/sendgrid", json=body) as resp:
                assert resp.status == 200
                answer = await resp.json()
            async with http.post(f"{base}/webhooks/sendgrid", data=b"{not json") as resp:
                assert resp.status == 400
            token = make_token("s3cret", "c-unsub", "trg-x")
            async with http.post(f"{base}/unsubscribe?t={token}",
                                 data={"List-Unsubscribe": "One-Click"}) as resp:
                assert resp.status == 200
            async with http.post(f"{base}/unsubscribe?t=forged") as resp:
                assert resp.status == 400
            async with http.get(f"{base}/readyz") as resp:
                assert resp.status == 200
            async with http.get(f"{base}/metrics") as resp:
                assert "personaflow_webhook_events_total" in await resp.text()
        assert answer["published"] == 5 and answer["ignored"] == 1 and answer["rejected"] == 2
        assert {e["index"] for e in answer["errors"]} == {6, 7}
        sup = app.service.suppression
        assert (await sup.get("c-hard")).reason == "hard_bounce"
        assert (await sup.get("c-spam")).reason == "spam_report"
        assert (await sup.get("c-unsub")).reason == "unsubscribed"
        assert await sup.get("c-d") is None
        produce(env.bootstrap, env.topics["triggers.email"], [
            make_trigger("u", customer_id="c-unsub"), make_trigger("s", customer_id="c-spam"),
        ])
        results = await asyncio.to_thread(
            read_results, env.bootstrap, env.topics["sends.results"], want=2, timeout=30
        )
    assert {r.outcome for r in results} == {SendOutcome.SUPPRESSED}
    assert smtp.messages == []
    records = await asyncio.to_thread(
        read_topic, env.bootstrap, env.topics["events.engagement"], want=6, timeout=20
    )
    types = sorted(decode_event(v).type for v, _ in records)
    assert types == sorted(["Email Delivered", "Email Opened", "Email Clicked", "Email Bounced",
                            "Email Spam Reported", "Email Unsubscribed"])
    unsub = [decode_event(v) for v, _ in records if decode_event(v).type == "Email Unsubscribed"]
    assert isinstance(unsub[0], EmailUnsubscribed) and unsub[0].customer_id == "c-unsub"


async def test_consent_granted_again_lifts_a_marketing_suppression_only(env, redis_url):
    from sinks.store import Store
    from sinks.suppression import Action, SuppressionList, action_for

    now = datetime.now(UTC)
    store = Store(redis_url, f"{env.prefix}pf:")
    sup = SuppressionList(store)
    try:
        for event in (
            EmailSpamReported(event_id="1", occurred_at=now, customer_id="m"),
            EmailBounced(event_id="2", occurred_at=now, customer_id="h"),
        ):
            await sup.apply(action_for(event))
        for customer in ("m", "h"):
            granted = ConsentChanged(event_id="3", occurred_at=now, customer_id=customer,
                                     granted=True)
            action = action_for(granted)
            assert isinstance(action, Action) and action.suppress is None
            await sup.apply(action)
        assert await sup.get("m") is None
        assert (await sup.get("h")).reason == "hard_bounce"
    finally:
        await store.close()

"""The batch hot path through the running sink (real broker, Redis and local HTTP ESP): copies
of one trigger id in a batch send one email, and a batch mixing every guard outcome gives each
trigger the outcome it would get alone."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from schemas.models import SendOutcome
from sinks.harness import Env, make_trigger, produce, read_results, running_sink
from sinks.suppression import Scope


@pytest.fixture
def env(kafka_bootstrap, redis_url, unique, make_topics):
    return Env(kafka_bootstrap, redis_url, unique, make_topics(unique, 1))


async def _results(env, want):
    return await asyncio.to_thread(
        read_results, env.bootstrap, env.topics["sends.results"], want=want, timeout=30
    )


async def test_copies_of_one_trigger_in_a_batch_send_one_email(env, esp):
    dup = make_trigger("dup")
    produce(env.bootstrap, env.topics["triggers.email"],
            [dup, make_trigger("other"), dup, dup])  # fmt: skip
    settings = env.settings(esp="http", http_url=esp.url, concurrency=64, batch_size=64)
    async with running_sink(settings, env.wiring()) as app:
        results = await _results(env, 4)
        entry = await app.service.ledger.get("trg-dup")
    outcomes = Counter((r.trigger_id, r.outcome) for r in results)
    assert outcomes == {
        ("trg-dup", SendOutcome.SENT): 1,
        ("trg-dup", SendOutcome.DUPLICATE): 2,
        ("trg-other", SendOutcome.SENT): 1,
    }
    assert sorted(esp.deliveries) == ["trg-dup", "trg-other"] and esp.duplicates == 0
    assert entry["state"] == "sent" and entry["published"] == "1"


async def test_a_mixed_batch_gives_each_trigger_its_own_outcome(env, esp):
    now = datetime.now(UTC)
    later = now + timedelta(days=3)
    triggers = [
        make_trigger("exp", expires_at=now - timedelta(minutes=1)),
        make_trigger("sup", customer_id="c-sup"),
        make_trigger("tx", customer_id="c-sup", marketing=False),
        make_trigger("norcpt", recipient=None),
        make_trigger("hold", holdout=True),
        make_trigger("later", not_before=now + timedelta(hours=1), expires_at=later),
        make_trigger("b1", customer_id="c-b", expires_at=later),
        make_trigger("b2", customer_id="c-b", expires_at=later),
        make_trigger("ok"),
    ]
    settings = env.settings(esp="http", http_url=esp.url, budget_per_day=1, budget_per_week=3,
                            concurrency=64, batch_size=64)  # fmt: skip
    async with running_sink(settings, env.wiring()) as app:
        await app.service.suppression.suppress("c-sup", Scope.MARKETING, "unsubscribed")
        produce(env.bootstrap, env.topics["triggers.email"], triggers)
        results = await _results(env, len(triggers))
        parked = await app.service.deferred.size()
    got = {r.trigger_id: (r.outcome, r.reason) for r in results}
    assert got == {
        "trg-exp": (SendOutcome.EXPIRED, "expired"),
        "trg-sup": (SendOutcome.SUPPRESSED, "unsubscribed"),
        "trg-tx": (SendOutcome.SENT, None),  # a marketing opt-out does not block it
        "trg-norcpt": (SendOutcome.SUPPRESSED, "no_recipient"),
        "trg-hold": (SendOutcome.HELD_OUT, "holdout"),
        "trg-later": (SendOutcome.DEFERRED, "not_before"),
        "trg-ok": (SendOutcome.SENT, None),
    } | {b: got[b] for b in ("trg-b1", "trg-b2")}
    # one customer, budget 1 a day: one of its two triggers took the slot, the other waits
    assert sorted([got["trg-b1"], got["trg-b2"]]) == [
        (SendOutcome.DEFERRED, "budget"),
        (SendOutcome.SENT, None),
    ]
    assert len(results) == len(triggers)
    assert parked == 2
    sent_b = "trg-b1" if got["trg-b1"][0] is SendOutcome.SENT else "trg-b2"
    assert sorted(esp.deliveries) == sorted([sent_b, "trg-ok", "trg-tx"])

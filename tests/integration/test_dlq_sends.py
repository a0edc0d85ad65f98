"""dlq.sends through the real sink (in process, real broker and Redis): a trigger that failed
(ESP unreachable, retries exhausted) is dead-lettered with a final ``failed`` ledger entry; once
the ESP works again, ``republish`` clears that entry (and only a ``failed`` one) and
re-publishes the trigger, and the sink sends it exactly once."""

from __future__ import annotations

import asyncio

import pytest
import redis

from personaflow import dlq
from schemas.models import SendOutcome
from sinks.harness import make_trigger, produce, read_results, running_sink
from sinks.store import Store


async def _results(env, want):
    return await asyncio.to_thread(
        read_results, env.bootstrap, env.topics["sends.results"], want=want, timeout=30
    )


async def _assigned(app):
    for _ in range(200):
        if app.service.assigned:
            return
        await asyncio.sleep(0.05)


async def test_failed_send_republished_after_the_fix_is_sent_once(env, tmp_path):
    trigger = make_trigger(f"{env.prefix}1")
    unreachable = env.settings(esp="http", http_url="http://127.0.0.1:9/v3/mail/send",
                               max_attempts=1, esp_timeout_s=1.0)  # fmt: skip
    async with running_sink(unreachable, env.wiring()) as app:
        await _assigned(app)
        produce(env.bootstrap, env.topics["triggers.email"], [trigger])
        first = await _results(env, 1)
    assert [r.outcome for r in first] == [SendOutcome.FAILED]
    sends_dlq = env.topics["dlq.sends"]
    [letter] = (await asyncio.to_thread(dlq.read_dlq, env.bootstrap, sends_dlq)).letters
    assert letter.original_topic == env.topics["triggers.email"]
    assert dlq.trigger_ids([letter]) == [trigger.trigger_id]

    outbox = tmp_path / "outbox"
    fixed = env.settings(esp="outbox", outbox_dir=outbox)
    rearm = dlq.ledger_rearmer(env.redis_url, fixed.redis_key_prefix)
    async with running_sink(fixed, env.wiring()) as app:
        await _assigned(app)
        report = await asyncio.to_thread(dlq.republish, env.bootstrap, sends_dlq,
                                         before_write=rearm)  # fmt: skip
        assert report.rearmed == [trigger.trigger_id] and len(report.republished) == 1
        results = await _results(env, 2)
        with pytest.raises(dlq.AlreadyRepublished):
            await asyncio.to_thread(dlq.republish, env.bootstrap, sends_dlq,
                                    ref=str(letter.ref), before_write=rearm)  # fmt: skip
    assert [r.outcome for r in results] == [SendOutcome.FAILED, SendOutcome.SENT]
    assert len(list(outbox.glob("*.eml"))) == 1


def test_rearm_clears_only_failed_entries(redis_url, unique):
    prefix = f"{unique}pf:"
    key = Store(redis_url, prefix).key  # the sink's own key scheme
    client = redis.Redis.from_url(redis_url)
    try:
        for tid, state in (("t-failed", "failed"), ("t-sent", "sent"), ("t-pending", "pending")):
            assert dlq.LEDGER_KEY.format(prefix=prefix, trigger_id=tid) == key("ledger", tid)
            client.hset(key("ledger", tid), mapping={"state": state})
        ids = ["t-failed", "t-sent", "t-pending", "t-unknown"]
        assert dlq.rearm_failed_sends(redis_url, prefix, ids) == ["t-failed"]
        assert not client.exists(key("ledger", "t-failed"))
        assert client.hget(key("ledger", "t-sent"), "state") == b"sent"
        assert client.hget(key("ledger", "t-pending"), "state") == b"pending"
    finally:
        client.close()
    with pytest.raises(dlq.DlqStoreError) as caught:
        dlq.rearm_failed_sends("redis://127.0.0.1:9/0", prefix, ["t"])
    assert caught.value.retriable

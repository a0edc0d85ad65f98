"""Redis stopped for a while during a run: the sink pauses and retries, and afterwards every
trigger has exactly one outcome (and one email)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from schemas.models import SendOutcome
from sinks.harness import Env, make_trigger, produce, read_results, running_sink


@pytest.fixture
def env(kafka_bootstrap, redis_server, unique, make_topics):
    return Env(kafka_bootstrap, redis_server.url, unique, make_topics(unique))


async def test_redis_outage_pauses_then_every_trigger_has_one_outcome(env, redis_server,
                                                                       tmp_path):
    outbox = tmp_path / "outbox"
    topic = env.topics["triggers.email"]
    settings = env.settings(esp="outbox", outbox_dir=outbox, concurrency=8,
                            redis_retry_max_s=0.5)
    async with running_sink(settings, env.wiring()) as app:
        produce(env.bootstrap, topic, [make_trigger(i) for i in range(10)])
        for _ in range(300):
            if app.service.handled >= 10:
                break
            await asyncio.sleep(0.05)
        assert app.service.handled == 10
        await asyncio.to_thread(redis_server.stop)
        produce(env.bootstrap, topic, [make_trigger(i) for i in range(10, 30)])
        await asyncio.sleep(2.0)
        paused_at = app.service.handled
        assert app.service.store.available is False
        await asyncio.to_thread(redis_server.start)
        results = await asyncio.to_thread(
            read_results, env.bootstrap, env.topics["sends.results"], want=30, timeout=40
        )
    assert paused_at == 10  # nothing was decided while Redis was down
    outcomes = Counter(r.trigger_id for r in results if r.outcome is SendOutcome.SENT)
    assert sorted(outcomes) == sorted(f"trg-{i}" for i in range(30))
    assert set(outcomes.values()) == {1}
    assert len(list(outbox.glob("*.eml"))) == 30

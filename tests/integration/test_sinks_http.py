"""The sink through the SendGrid-shaped HTTP adapter, against a real local HTTP ESP."""

from __future__ import annotations

import asyncio
import time

import pytest

from schemas.deadletter import parse_headers
from schemas.models import SendOutcome
from sinks.devservers import LocalHttpEsp
from sinks.harness import make_trigger, produce, read_results, read_topic, running_sink


@pytest.fixture
async def esp():
    server = LocalHttpEsp(api_key="k3y")
    await server.start()
    yield server
    await server.stop()


def _settings(env, esp, **more):
    return env.settings(esp="http", http_url=esp.url, http_api_key="k3y", **more)


async def _results(env, want, timeout=30):
    return await asyncio.to_thread(
        read_results, env.bootstrap, env.topics["sends.results"], want=want, timeout=timeout
    )


async def test_429_with_retry_after_then_200_sends_once_after_the_wait(env, esp):
    esp.fail_next = [(429, {"Retry-After": "1"})]
    produce(env.bootstrap, env.topics["triggers.email"], [make_trigger("r1")])
    async with running_sink(_settings(env, esp, http_batch_size=1), env.wiring()):
        results = await _results(env, 1)
    assert [r.outcome for r in results] == [SendOutcome.SENT]
    assert results[0].attempts == 2
    assert list(esp.deliveries) == ["trg-r1"]
    (t429, s429), (t202, s202) = esp.request_log
    assert (s429, s202) == (429, 202)
    assert t202 - t429 >= 0.95  # honoured Retry-After: 1


async def test_400_goes_to_dead_letter_with_reason(env, esp):
    esp.fail_next = [(400, {})]
    produce(env.bootstrap, env.topics["triggers.email"], [make_trigger("bad")])
    async with running_sink(_settings(env, esp, http_batch_size=1), env.wiring()):
        results = await _results(env, 1)
        dead = await asyncio.to_thread(
            read_topic, env.bootstrap, env.topics["dlq.sends"], want=1, timeout=20
        )
    assert [r.outcome for r in results] == [SendOutcome.FAILED]
    assert results[0].reason == "http_400" and results[0].attempts == 1
    assert esp.deliveries == {} and len(esp.request_log) == 1
    assert len(dead) == 1
    headers = parse_headers(dead[0][1])
    assert headers["x-dlq-reason"].startswith("http_400")
    assert headers["x-dlq-error-type"] == "EspPermanentError"


async def test_batches_personalizations_and_sends_each_trigger_once(env, esp):
    triggers = [make_trigger(f"b{i}", tokens={"first_name": f"N{i}"}) for i in range(40)]
    produce(env.bootstrap, env.topics["triggers.email"], triggers)
    settings = _settings(env, esp, http_batch_size=50, http_batch_wait_ms=20)
    async with running_sink(settings, env.wiring()):
        results = await _results(env, 40)
    assert sorted(r.trigger_id for r in results if r.outcome is SendOutcome.SENT) == sorted(
        t.trigger_id for t in triggers
    )
    assert len(esp.deliveries) == 40 and esp.duplicates == 0
    assert esp.requests < 40  # personalizations were batched
    d = esp.deliveries["trg-b7"]
    assert d.to == "personb7@example.com" and "Hi N7," in d.text and "Hi N7," in d.html
    assert d.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


async def test_5xx_retried_with_backoff_then_dead_letter_after_max_attempts(env, esp):
    esp.fail_next = [(503, {})] * 3
    produce(env.bootstrap, env.topics["triggers.email"], [make_trigger("5xx")])
    settings = _settings(env, esp, http_batch_size=1, max_attempts=3)
    started = time.time()
    async with running_sink(settings, env.wiring()):
        results = await _results(env, 1)
    assert [r.outcome for r in results] == [SendOutcome.FAILED]
    assert results[0].attempts == 3 and results[0].reason == "http_503"
    assert len(esp.request_log) == 3 and esp.deliveries == {}
    assert time.time() - started > 0.05


async def test_a_rejected_recipient_fails_alone_not_its_whole_batch(env, esp):
    esp.reject_recipients = {"personbad@example.com"}
    triggers = [make_trigger(f"ok{i}") for i in range(6)] + [make_trigger("bad")]
    produce(env.bootstrap, env.topics["triggers.email"], triggers)
    settings = _settings(env, esp, http_batch_size=50, http_batch_wait_ms=50)
    async with running_sink(settings, env.wiring()):
        results = await _results(env, 7)
    by_id = {r.trigger_id: r for r in results}
    assert by_id["trg-bad"].outcome is SendOutcome.FAILED
    assert by_id["trg-bad"].reason == "http_400"
    assert {by_id[f"trg-ok{i}"].outcome for i in range(6)} == {SendOutcome.SENT}
    assert sorted(esp.deliveries) == sorted(f"trg-ok{i}" for i in range(6))

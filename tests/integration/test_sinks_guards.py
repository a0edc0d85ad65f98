"""Guards through the running sink: expiry, holdout, not_before and quiet-hours deferral (and
the deferred trigger coming back), template errors and undecodable records to dlq.sends."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime, timedelta

from schemas.deadletter import parse_headers
from schemas.models import SendOutcome
from sinks.harness import make_trigger, produce, read_results, read_topic, running_sink
from sinks.settings import TEMPLATES_DIR


async def _results(env, want, timeout=30):
    return await asyncio.to_thread(
        read_results, env.bootstrap, env.topics["sends.results"], want=want, timeout=timeout
    )


async def _assigned(app):
    for _ in range(200):
        if app.service.assigned:
            return
        await asyncio.sleep(0.05)


async def test_expired_holdout_and_deferred_then_sent(env, tmp_path):
    outbox = tmp_path / "outbox"
    async with running_sink(env.settings(esp="outbox", outbox_dir=outbox), env.wiring()) as app:
        await _assigned(app)
        now = datetime.now(UTC)
        triggers = _guard_triggers(now)
        produce(env.bootstrap, env.topics["triggers.email"], triggers)
        results = await _results(env, 5, timeout=30)
    got = {(r.trigger_id, r.outcome) for r in results}
    assert got == {
        ("trg-old", SendOutcome.EXPIRED),
        ("trg-hold", SendOutcome.HELD_OUT),
        ("trg-later", SendOutcome.DEFERRED),
        ("trg-later", SendOutcome.SENT),  # re-queued by the pump when due
        ("trg-now", SendOutcome.SENT),
    }
    sent_later = next(r for r in results if r.trigger_id == "trg-later" and r.outcome == "sent")
    assert sent_later.at >= triggers[2].not_before
    assert len(list(outbox.glob("*.eml"))) == 2


def _guard_triggers(now):
    return [
        make_trigger("old", expires_at=now - timedelta(minutes=1)),
        make_trigger("hold", holdout=True, experiment="exp1", variant="control"),
        make_trigger("later", not_before=now + timedelta(seconds=6)),
        make_trigger("now"),
    ]


async def test_quiet_hours_defer_marketing_not_transactional(env, tmp_path):
    hour = datetime.now(UTC).hour
    settings = env.settings(esp="outbox", outbox_dir=tmp_path / "o",
                            quiet_start_hour=hour, quiet_end_hour=(hour + 2) % 24)
    produce(env.bootstrap, env.topics["triggers.email"], [
        make_trigger("mkt", time_zone="UTC"),
        make_trigger("tx", time_zone="UTC", marketing=False),
    ])
    async with running_sink(settings, env.wiring()) as app:
        results = await _results(env, 2)
        assert await app.service.deferred.size() == 1
    by_id = {r.trigger_id: r for r in results}
    assert by_id["trg-mkt"].outcome is SendOutcome.DEFERRED
    assert by_id["trg-mkt"].reason == "quiet_hours"
    assert by_id["trg-tx"].outcome is SendOutcome.SENT


async def test_template_error_and_garbage_go_to_dead_letter(env, tmp_path):
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR, templates)
    (templates / "welcome" / "body.html.j2").write_text("{{ trigger.no_such_field.x }}")
    produce(env.bootstrap, env.topics["triggers.email"], [
        make_trigger("broken", trigger_type="welcome"),
        b"\x00\x00\x00\x00\x07garbage",
        make_trigger("fine"),
    ])
    settings = env.settings(esp="outbox", outbox_dir=tmp_path / "o", templates_dir=templates)
    async with running_sink(settings, env.wiring()) as app:
        results = await _results(env, 2)
        dead = await asyncio.to_thread(
            read_topic, env.bootstrap, env.topics["dlq.sends"], want=2, timeout=20
        )
        assert app.service.handled == 3  # the garbage record is handled too (dead letter)
    by_id = {r.trigger_id: r for r in results}
    assert by_id["trg-broken"].outcome is SendOutcome.FAILED
    assert by_id["trg-broken"].reason == "template_error"
    assert by_id["trg-fine"].outcome is SendOutcome.SENT
    reasons = sorted(parse_headers(h)["x-dlq-error-type"] for _, h in dead)
    assert reasons[1] == "TemplateError" and len(reasons) == 2

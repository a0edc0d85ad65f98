"""kill -9 of a sink process between ESP accept and offset commit, then a restart: no second
email and no lost trigger."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time

from schemas.models import SendOutcome
from sinks.devservers import CaptureSmtp, LocalHttpEsp
from sinks.harness import make_trigger, produce, read_results, spawn_sink

N = 5


def _wait_exit(proc: subprocess.Popen, timeout: float) -> int | None:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return None


def _stop(proc: subprocess.Popen) -> int | None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return _wait_exit(proc, 30)


async def _crash_then_restart(env, settings, tmp_path):
    """Run a sink with the crash hook until it kills itself, then one without it."""
    produce(env.bootstrap, env.topics["triggers.email"], [make_trigger(i) for i in range(N)])
    crashing = spawn_sink(env.env_vars(settings), tmp_path / "sink1.log")
    code = await asyncio.to_thread(_wait_exit, crashing, 60)
    assert code == -signal.SIGKILL, (tmp_path / "sink1.log").read_text()[-3000:]
    healthy = spawn_sink(
        env.env_vars(settings.model_copy(update={"crash_hook": ""})), tmp_path / "sink2.log"
    )
    try:
        results = await asyncio.to_thread(
            read_results, env.bootstrap, env.topics["sends.results"], want=N, timeout=60,
            quiet_s=2.0,
        )
    finally:
        code = await asyncio.to_thread(_stop, healthy)
    assert code == 0, (tmp_path / "sink2.log").read_text()[-3000:]  # graceful exit on SIGTERM
    return results


def _one_sent_each(results):
    final = {}
    for r in results:
        assert r.outcome in (SendOutcome.SENT, SendOutcome.DUPLICATE), r
        if r.outcome is SendOutcome.SENT:
            final.setdefault(r.trigger_id, []).append(r)
    assert sorted(final) == sorted(f"trg-{i}" for i in range(N))  # no trigger lost
    return final


async def test_kill_after_ledger_write_before_commit_smtp(env, tmp_path):
    smtp = CaptureSmtp()
    smtp.start()
    try:
        settings = env.settings(esp="smtp", smtp_port=smtp.port, crash_hook="after_ledger",
                                concurrency=1)
        results = await _crash_then_restart(env, settings, tmp_path)
        _one_sent_each(results)
        recipients = sorted(m["To"] for m in smtp.messages)
        assert recipients == sorted(f"person{i}@example.com" for i in range(N))  # one each
    finally:
        smtp.stop()


async def test_kill_between_esp_accept_and_ledger_write_http_dedupes(env, tmp_path):
    esp = LocalHttpEsp()
    await esp.start()
    try:
        settings = env.settings(esp="http", http_url=esp.url, http_batch_size=1,
                                crash_hook="after_accept", concurrency=1, lease_s=2.0)
        started = time.time()
        results = await _crash_then_restart(env, settings, tmp_path)
        _one_sent_each(results)
        # the resend after the lease expired carried the same trigger id: the ESP kept one
        assert sorted(esp.deliveries) == sorted(f"trg-{i}" for i in range(N))
        assert esp.duplicates == 1
        assert time.time() - started < 60
    finally:
        await esp.stop()

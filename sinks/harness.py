"""Helpers to drive a sink against real services: produce triggers, read Send Results and
dead letters, run the service in-process or as a subprocess. Used by tests and bench/sink.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer

from personaflow.kafka import consumer_config, producer_config
from schemas.codec import decode_event, encode_event
from schemas.models import Product, SendResult, Trigger
from sinks.app import SinkApp
from sinks.service import Wiring
from sinks.settings import SinkSettings

FAST_GROUP = {"session.timeout.ms": 3000, "heartbeat.interval.ms": 500}
"""Consumer settings that keep group joins short on Tansu (joins wait half the session)."""


def make_trigger(n: int | str, **fields: Any) -> Trigger:
    """A valid marketing trigger for tests and benchmarks (override any field)."""
    now = datetime.now(UTC)
    base: dict[str, Any] = {
        "trigger_id": f"trg-{n}",
        "customer_id": f"cust-{n}",
        "trigger_type": "cart_abandonment",
        "rule_id": "cart.v1",
        "created_at": now,
        "expires_at": now + timedelta(days=1),
        "recipient": f"person{n}@example.com",
        "time_zone": "UTC",
        "persona": "loyal",
        "tokens": {"first_name": "Ada"},
        "products": [Product(product_id="sku-1", name="Trail Shoe", price=89.9)],
    }
    base.update(fields)
    return Trigger(**base)


def produce(bootstrap: str, topic: str, triggers: Iterable[Trigger | bytes]) -> int:
    """Produce triggers (or raw bytes) keyed by customer id; flush; return how many."""
    producer = Producer(producer_config(bootstrap, **{"linger.ms": 2}))
    count = 0
    for item in triggers:
        if isinstance(item, Trigger):
            producer.produce(topic, encode_event(item), key=item.customer_id)
        else:
            producer.produce(topic, item, key=b"raw")
        count += 1
        if count % 10_000 == 0:
            producer.flush()
        producer.poll(0)
    producer.flush(30)
    return count


def read_topic(bootstrap: str, topic: str, *, want: int = 0, timeout: float = 20.0,
               quiet_s: float = 1.0) -> list[tuple[bytes | None, list[tuple[str, bytes]]]]:
    """Every record (value, headers) on ``topic``: waits until ``want`` arrived (then ``quiet_s``
    with nothing new) or ``timeout``."""
    group = f"reader-{os.getpid()}-{time.monotonic_ns()}"
    consumer = Consumer(consumer_config(bootstrap, group, **FAST_GROUP))
    consumer.subscribe([topic])
    out: list[tuple[bytes | None, list[tuple[str, bytes]]]] = []
    deadline = time.monotonic() + timeout
    last_new = time.monotonic()
    try:
        while time.monotonic() < deadline:
            msgs = consumer.consume(1000, 0.2)
            for msg in msgs:
                if msg.error() is None:
                    out.append((msg.value(), list(msg.headers() or [])))  # type: ignore[arg-type]
                    last_new = time.monotonic()
            if len(out) >= want and time.monotonic() - last_new >= quiet_s and (want or out):
                break
    finally:
        consumer.close()
    return out


def read_results(bootstrap: str, topic: str, *, want: int = 0, timeout: float = 20.0,
                 quiet_s: float = 1.0) -> list[SendResult]:
    """Send Results on ``topic`` (see :func:`read_topic`)."""
    results = []
    for value, _ in read_topic(bootstrap, topic, want=want, timeout=timeout, quiet_s=quiet_s):
        event = decode_event(value)
        assert isinstance(event, SendResult)
        results.append(event)
    return results


@dataclass
class Env:
    """Endpoints and topic names of one test run."""

    bootstrap: str
    redis_url: str
    prefix: str
    topics: dict[str, str]

    def wiring(self) -> Wiring:
        return Wiring(self.bootstrap, self.redis_url, self.prefix, dict(FAST_GROUP))

    def settings(self, **fields: Any) -> SinkSettings:
        """Sink settings isolated to this run (own group, own Redis key prefix)."""
        base: dict[str, Any] = {
            "group_id": f"{self.prefix}sink",
            "feedback_group_id": f"{self.prefix}suppr",
            "redis_key_prefix": f"{self.prefix}pf:",
            "quiet_start_hour": 0,
            "quiet_end_hour": 0,
            "budget_per_day": 100,
            "budget_per_week": 100,
            "backoff_base_s": 0.05,
            "backoff_max_s": 0.5,
            "http_port": 0,
            "defer_poll_s": 0.2,
            "session_timeout_ms": 3000,
        }
        base.update(fields)
        return SinkSettings(**base)

    def env_vars(self, settings: SinkSettings) -> dict[str, str]:
        """Environment for a ``personaflow sink`` subprocess with ``settings``."""
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "REDIS_URL": self.redis_url,
            "PERSONAFLOW_TOPIC_PREFIX": self.prefix,
        }
        for name, value in settings.model_dump(mode="json").items():
            if name in ("http_api_key", "unsubscribe_secret"):
                continue
            env[f"PERSONAFLOW_SINK_{name.upper()}"] = str(value)
        return env


@contextlib.asynccontextmanager
async def running_sink(settings: SinkSettings, wiring: Wiring, *, web: bool = False,
                       feed: bool = False) -> AsyncIterator[SinkApp]:
    """Run a whole sink in this process for the duration of the ``async with`` block."""
    app = SinkApp(settings, wiring, web=web, feed=feed)
    task = asyncio.create_task(app.run(signals=False))
    for _ in range(3000):
        if (app.service.ready and (not web or app.port is not None)) or task.done():
            break  # ready, and the web server listening when asked for
        await asyncio.sleep(0.01)
    if task.done():
        task.result()
    try:
        yield app
    finally:
        app.service.request_stop()
        await asyncio.wait_for(task, 60)


def spawn_sink(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start the sink (``python -m sinks``, as ``personaflow sink``) as a subprocess in its own
    process group, logging to ``log_path``."""
    full = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "sinks", "--no-web"],
            env=full, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )

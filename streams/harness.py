"""Run stream workers as child processes and observe them: for tests, benchmarks, demos.

- :class:`WorkerProcess`: ``personaflow worker`` in its own process group with a free web
  port and its own data dir; ``wait_ready`` polls ``/readyz``; ``stop`` (SIGTERM) and
  ``kill`` (SIGKILL, the crash case).
- :func:`produce_events`, :func:`read_topic`, :func:`committed_total`: confluent-kafka helpers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from personaflow.kafka import consumer_config, producer_config


def _free_port() -> int:
    from personaflow.devstack import free_port

    return free_port()


@dataclass
class WorkerProcess:
    """One ``personaflow worker`` child process."""

    bootstrap: str
    prefix: str
    app_id: str
    data_dir: Path
    partitions: int = 4
    clock: str = "event"
    env: Mapping[str, str] = field(default_factory=dict)
    web_port: int = 0
    log_path: Path | None = None
    argv: list[str] | None = None
    process: subprocess.Popen[bytes] | None = None

    def environment(self) -> dict[str, str]:
        """The child's environment: PERSONAFLOW_* settings for this worker."""
        if not self.web_port:
            self.web_port = _free_port()
        return {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "PERSONAFLOW_TOPIC_PREFIX": self.prefix,
            "PERSONAFLOW_APP_ID": self.app_id,
            "PERSONAFLOW_DATA_DIR": str(self.data_dir),
            "PERSONAFLOW_PARTITIONS": str(self.partitions),
            "PERSONAFLOW_CLOCK": self.clock,
            "PERSONAFLOW_WORKER_WEB_PORT": str(self.web_port),
            "PERSONAFLOW_WORKER_WEB_HOST": "127.0.0.1",
            "PERSONAFLOW_SESSION_TIMEOUT_S": "4",
            "PERSONAFLOW_HEARTBEAT_INTERVAL_S": "1",
            **self.env,
        }

    def start(self) -> WorkerProcess:
        env = self.environment()
        argv = self.argv or [sys.executable, "-m", "personaflow.cli", "worker",
                             "--no-create-topics"]  # fmt: skip
        log_path = self.log_path or Path(self.data_dir) / "worker.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.log_path = log_path
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def get(self, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
        """``(status, body)`` of a GET on the worker's web port (0 when unreachable)."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as resp:
                return int(resp.status), bytes(resp.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), bytes(exc.read())
        except (urllib.error.URLError, OSError):
            return 0, b""

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Wait until ``/readyz`` answers 200; returns the seconds waited."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"worker exited with {self.process.returncode}: {self.log_path}")
            if self.get("/readyz")[0] == 200:
                return time.monotonic() - started
            time.sleep(0.1)
        raise TimeoutError(f"worker not ready within {timeout}s: {self.log_path}")

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM and wait (SIGKILL after ``timeout``); returns the exit code."""
        if self.process is None:
            return None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return self.kill()

    def kill(self) -> int | None:
        """SIGKILL the worker's whole process group (a crash)."""
        if self.process is None:
            return None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.wait(10)

    def rss_bytes(self) -> int:
        """Resident memory of the worker process."""
        if self.process is None:
            return 0
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0


def produce_events(bootstrap: str, prefix: str, events: Iterable[Any], **overrides: Any) -> int:
    """Publish input events (Avro) to their catalogue topics, keyed like producers do."""
    from confluent_kafka import Producer

    from schemas.codec import encode_event
    from schemas.topics import EVENT_TOPIC

    producer = Producer(producer_config(bootstrap, **overrides))
    count = 0
    for event in events:
        topic = prefix + EVENT_TOPIC[event.type].name
        producer.produce(topic, key=event.key.encode(), value=encode_event(event))
        count += 1
        if count % 10_000 == 0:
            producer.poll(0)
    if producer.flush(30) != 0:
        raise RuntimeError("events not delivered within 30s")
    return count


def produce_raw(bootstrap: str, records: Iterable[tuple[str, bytes | None, bytes]]) -> None:
    """Publish ``(topic, key, value)`` records as they are (garbage included)."""
    from confluent_kafka import Producer

    producer = Producer(producer_config(bootstrap))
    for topic, key, value in records:
        producer.produce(topic, key=key, value=value)
    if producer.flush(30) != 0:
        raise RuntimeError("records not delivered within 30s")


def read_topic(
    bootstrap: str,
    topic: str,
    *,
    until: int | None = None,
    timeout: float = 30.0,
    idle: float = 3.0,
) -> list[Any]:
    """Every record of ``topic`` from the start: stop at ``until`` records, or after ``idle``
    seconds without a new one (once ``timeout`` passed without reaching ``until``)."""
    from confluent_kafka import Consumer

    group = f"reader-{uuid.uuid4().hex[:8]}"
    consumer = Consumer(consumer_config(bootstrap, group, session_timeout_ms=6000))
    consumer.subscribe([topic])
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    try:
        while time.monotonic() < deadline:
            if until is not None and len(out) >= until:
                break
            if until is None and out and time.monotonic() - last > idle:
                break
            for msg in consumer.consume(500, 0.2):
                if msg.error() is None:
                    out.append(msg)
                    last = time.monotonic()
    finally:
        consumer.close()
    return out


def committed_total(bootstrap: str, group: str, topics: list[str], partitions: int) -> int:
    """Sum of the committed offsets of ``group`` over ``topics`` (0 where none)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(consumer_config(bootstrap, group))
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(partitions)]
        committed = consumer.committed(tps, timeout=10)
    finally:
        consumer.close()
    return sum(max(tp.offset, 0) for tp in committed)


# ---------------------------------------------------------------- scenarios

TEST_RULES = """\
version: 1
settings:
  budget: {per_day: 6, per_week: 6}
  holdout: {salt: tests, share: 0.0}
"""
"""A rules override for tests: no holdout, a send budget that never defers a test trigger."""


def cart_scenario(start: float, customer: str = "cust-1", anonymous: str = "anon-1") -> Any:
    """Anonymous browsing -> identify -> add to cart (no checkout), as input events.

    Returns ``(events, cart_id, product_id)``; times are ``start`` + seconds (UTC)."""
    from datetime import UTC, datetime

    from schemas import models as m

    def at(seconds: float) -> datetime:
        return datetime.fromtimestamp(start + seconds, UTC)

    shoe = m.Product(product_id="sku-shoe-1", name="Trail shoe", category="shoes", price=89.0)
    cart_id = f"cart-{customer}"
    events = [
        m.ProductViewed(event_id=f"{anonymous}-v1", occurred_at=at(0), anonymous_id=anonymous,
                        product=shoe),
        m.ProductViewed(event_id=f"{anonymous}-v2", occurred_at=at(60), anonymous_id=anonymous,
                        product=shoe),
        m.Identify(event_id=f"{customer}-id", occurred_at=at(120), customer_id=customer,
                   anonymous_id=anonymous,
                   traits=m.Traits(email=f"{customer}@example.com", first_name="Ada")),
        m.ProductAdded(event_id=f"{customer}-add", occurred_at=at(180), customer_id=customer,
                       cart_id=cart_id, product=shoe),
    ]  # fmt: skip
    return events, cart_id, shoe.product_id


def purchase(start: float, seconds: float, customer: str, cart_id: str) -> Any:
    """An Order Completed of the scenario's cart at ``start + seconds``."""
    from datetime import UTC, datetime

    from schemas import models as m

    return m.OrderCompleted(
        event_id=f"{customer}-order", occurred_at=datetime.fromtimestamp(start + seconds, UTC),
        customer_id=customer, order_id=f"order-{customer}", cart_id=cart_id, revenue=89.0,
    )  # fmt: skip


def clock_advance(at: float, n: int | str = 0) -> Any:
    """An unrelated visitor's page view at ``at``: moves an event-time clock forward.
    ``n`` picks the visitor (an int, or the anonymous id itself)."""
    from datetime import UTC, datetime

    from schemas import models as m

    anonymous = n if isinstance(n, str) else f"clock-{n}"
    return m.PageViewed(event_id=f"tick-{at:.0f}-{anonymous}",
                        occurred_at=datetime.fromtimestamp(at, UTC),
                        anonymous_id=anonymous)  # fmt: skip


def wait_committed(
    bootstrap: str, group: str, topics: list[str], partitions: int, total: int,
    timeout: float = 60.0,
) -> float:  # fmt: skip
    """Wait until ``group`` committed ``total`` records over ``topics``; returns seconds."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if committed_total(bootstrap, group, topics, partitions) >= total:
            return time.monotonic() - started
        time.sleep(0.25)
    have = committed_total(bootstrap, group, topics, partitions)
    raise TimeoutError(f"{group}: {have} of {total} records committed after {timeout}s")


def keys_covering(partitions: int, prefix: str = "clock") -> list[str]:
    """One key per partition (murmur2), e.g. to move every worker's event clock."""
    from streams.replay import partition_for

    found: dict[int, str] = {}
    n = 0
    while len(found) < partitions:
        key = f"{prefix}-{n}"
        found.setdefault(partition_for(key.encode(), partitions), key)
        n += 1
    return [found[p] for p in range(partitions)]

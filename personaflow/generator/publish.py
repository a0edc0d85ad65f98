"""Publish generated events to Kafka (Avro, confluent-kafka, every delivery checked) or write
them as JSONL (one model JSON per line, for replay).

Each event goes to its catalogue topic (``schemas.topics.EVENT_TOPIC`` plus the prefix), keyed
by customer id or anonymous id, with the murmur2 partitioner (``personaflow.kafka``) so it
lands on the partition Faust expects.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from personaflow.kafka import KafkaClientError, producer_config
from schemas.models import Envelope
from schemas.topics import EVENT_TOPIC, INPUT_TOPICS

ProgressFn = Callable[["PublishStats"], None]


@dataclass
class PublishStats:
    """Counts of one run: handed to the producer, confirmed, failed (by error name)."""

    produced: int = 0
    delivered: int = 0
    failed: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Every produced event was confirmed by the broker."""
        return self.failed == 0 and self.delivered == self.produced

    @property
    def rate(self) -> float:
        """Delivered events per second over the run."""
        return self.delivered / self.seconds if self.seconds > 0 else 0.0


class Pacer:
    """Spaces calls to ``rate`` per second (0 = no limit) without drifting."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.clock = clock
        self.start = clock()

    def wait(self, index: int) -> float:
        """Sleep until item ``index`` is due; returns the seconds slept."""
        if not self.interval:
            return 0.0
        delay = self.start + index * self.interval - self.clock()
        if delay > 0:
            time.sleep(delay)
            return delay
        return 0.0


def missing_topics(bootstrap: str, prefix: str, timeout: float = 10.0) -> list[str]:
    """Input topics (with ``prefix``) the cluster does not have yet."""
    from confluent_kafka.admin import AdminClient

    from personaflow.kafka import admin_config

    try:
        have = AdminClient(admin_config(bootstrap)).list_topics(timeout=timeout).topics
    except Exception as exc:
        raise KafkaClientError(f"cannot list topics on {bootstrap}: {exc}", retriable=True) from exc
    return [spec.full_name(prefix) for spec in INPUT_TOPICS if spec.full_name(prefix) not in have]


class Publisher:
    """Produces events and counts delivery reports; see :meth:`publish`."""

    def __init__(
        self,
        bootstrap: str,
        prefix: str = "",
        *,
        encode: Callable[[Any], bytes] | None = None,
        **overrides: Any,
    ) -> None:
        from confluent_kafka import Producer

        from schemas.codec import encode_event

        self.encode: Callable[[Any], bytes] = encode or encode_event
        self.prefix = prefix
        self.producer = Producer(producer_config(bootstrap, **overrides))
        self.stats = PublishStats()

    def _on_delivery(self, error: Any, _message: Any) -> None:
        if error is None:
            self.stats.delivered += 1
        else:
            self.stats.failed += 1
            self.stats.errors[str(error.name())] += 1

    def _produce(self, event: Envelope) -> None:
        topic = EVENT_TOPIC[event.type].full_name(self.prefix)  # type: ignore[attr-defined]
        value = self.encode(event)
        while True:
            try:
                self.producer.produce(topic, value=value, key=event.key.encode(),
                                      on_delivery=self._on_delivery)  # fmt: skip
                break
            except BufferError:  # local queue full: let deliveries drain
                self.producer.poll(0.05)
        self.producer.poll(0)
        self.stats.produced += 1
        self.stats.by_type[event.type] += 1  # type: ignore[attr-defined]

    def publish(
        self,
        events: Iterable[Envelope],
        rate: float = 0.0,
        progress: ProgressFn | None = None,
        flush_timeout: float = 60.0,
    ) -> PublishStats:
        """Produce every event (``rate`` per second, 0 = as fast as possible), wait for all
        delivery reports, and return the counts; undelivered after ``flush_timeout`` count as
        failed (``errors["FLUSH_TIMEOUT"]``)."""
        started = time.monotonic()
        pacer = Pacer(rate)
        last_report = 0.0
        for index, event in enumerate(events):
            pacer.wait(index)
            self._produce(event)
            if progress and time.monotonic() - last_report > 0.1:
                last_report = time.monotonic()
                progress(self.stats)
        remaining = self.producer.flush(flush_timeout)
        if remaining:
            self.stats.failed += remaining
            self.stats.errors["FLUSH_TIMEOUT"] += remaining
        self.stats.seconds = time.monotonic() - started
        if progress:
            progress(self.stats)
        return self.stats


def write_jsonl(events: Iterable[Envelope], path: Path,
                progress: ProgressFn | None = None) -> PublishStats:  # fmt: skip
    """Write one model JSON per line (readable back with ``schemas.codec.decode_json``)."""
    stats = PublishStats()
    started = time.monotonic()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for event in events:
            out.write(event.model_dump_json())
            out.write("\n")
            stats.produced += 1
            stats.delivered += 1
            stats.by_type[event.type] += 1  # type: ignore[attr-defined]
            if progress and stats.produced % 1000 == 0:
                progress(stats)
    stats.seconds = time.monotonic() - started
    if progress:
        progress(stats)
    return stats

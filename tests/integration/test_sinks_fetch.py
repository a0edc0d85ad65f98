"""The sink's fetch-loop turn (real broker): records that are ready come back at once, not
after the wait for a full batch (``consume(n, timeout)`` waits for ``n`` records or the whole
timeout, so at a low rate every trigger used to sit in the consumer for up to 20 ms)."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, Producer

from personaflow.kafka import consumer_config, producer_config
from sinks import service
from sinks.harness import FAST_GROUP


@pytest.fixture
def topic_consumer(kafka_bootstrap, unique, make_topics):
    topic = make_topics(unique, 1)["triggers.email"]
    consumer = Consumer(consumer_config(kafka_bootstrap, f"{unique}fetch", **FAST_GROUP))
    consumer.subscribe([topic])
    deadline = time.monotonic() + 30
    while not consumer.assignment() and time.monotonic() < deadline:
        consumer.consume(1, 0.1)
    producer = Producer(producer_config(kafka_bootstrap))
    yield topic, consumer, producer
    consumer.close()


def _produce(producer: Producer, topic: str, n: int) -> None:
    for i in range(n):
        producer.produce(topic, f"r{i}".encode())
    producer.flush(10)


def _fetch_until(consumer: Consumer, want: int) -> list[bytes]:
    got: list[bytes] = []
    deadline = time.monotonic() + 20
    while len(got) < want and time.monotonic() < deadline:
        got += [m.value() for m in service._fetch(consumer) if m.error() is None]
    return got


def test_ready_records_come_back_without_waiting_for_a_full_batch(topic_consumer, monkeypatch):
    topic, consumer, producer = topic_consumer
    _produce(producer, topic, 3)
    assert _fetch_until(consumer, 3) == [b"r0", b"r1", b"r2"]  # fetched, in order
    monkeypatch.setattr(service, "FETCH_WAIT_S", 5.0)
    _produce(producer, topic, 2)
    time.sleep(1.0)  # in the consumer's local queue by now
    started = time.monotonic()
    got = _fetch_until(consumer, 2)
    assert got == [b"r0", b"r1"]
    assert time.monotonic() - started < 2.5  # a 500-record consume would wait the whole 5 s


def test_an_idle_turn_waits_for_the_first_record_then_returns(topic_consumer, monkeypatch):
    _, consumer, _ = topic_consumer
    monkeypatch.setattr(service, "FETCH_WAIT_S", 0.3)
    started = time.monotonic()
    assert service._fetch(consumer) == []
    assert time.monotonic() - started >= 0.25  # waited (no busy loop), then gave up

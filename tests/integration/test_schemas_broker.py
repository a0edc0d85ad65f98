"""Every event type published as Avro through the real broker and read back equal; garbage
records read from the broker are dead-lettered with their origin and read back from the DLQ."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)

from personaflow.kafka import consumer_config, producer_config
from schemas.codec import decode_event, encode_event
from schemas.deadletter import H_OFFSET, H_PARTITION, H_TOPIC, dead_letter_for, parse_dead_letter
from schemas.errors import BadMagicByte, DecodeError, InvalidUtf8, TruncatedPayload
from schemas.samples import sample_events
from schemas.topics import DLQ_EVENTS, EVENT_TOPIC, SITE


def _key_of(event: Any) -> str | None:
    return getattr(event, "key", None) or getattr(event, "customer_id", None)


def _produce(bootstrap: str, records: list[tuple[str, bytes, str | None]]) -> None:
    errors: list[KafkaError] = []

    def delivered(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            errors.append(err)

    producer = Producer(producer_config(bootstrap))
    for topic, value, key in records:
        producer.produce(topic, value=value, key=key, on_delivery=delivered)
    assert producer.flush(30) == 0
    assert errors == []


def _read_all(bootstrap: str, group: str, topics: list[str], count: int) -> list[Message]:
    consumer = Consumer(consumer_config(bootstrap, group))
    try:
        metadata = consumer.list_topics(timeout=10)
        consumer.assign([
            TopicPartition(topic, p, OFFSET_BEGINNING)
            for topic in topics
            for p in metadata.topics[topic].partitions
        ])
        out: list[Message] = []
        deadline = time.monotonic() + 30
        while len(out) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                out.append(msg)
        return out
    finally:
        consumer.close()


def test_every_event_type_through_the_broker_and_garbage_to_the_dlq(
    kafka_bootstrap: str, make_topics: Callable[..., dict[str, str]], unique: str
) -> None:
    names = make_topics(unique)
    samples = sample_events()
    topic_of = {t: names[spec.name] for t, spec in EVENT_TOPIC.items()}
    topic_of["Dead Letter"] = names[DLQ_EVENTS.name]
    good = [(topic_of[t], encode_event(e), _key_of(e)) for t, e in samples.items()]
    garbage = [b"\x05nope", b"\x00\x00", b"\x00\x00\x00\x00\x04\x02\xff"]
    site = names[SITE.name]
    _produce(kafka_bootstrap, good + [(site, g, "cust-bad") for g in garbage])

    messages = _read_all(kafka_bootstrap, f"{unique}g", sorted(set(topic_of.values())),
                         len(good) + len(garbage))
    decoded: dict[str, Any] = {}
    dead: list[tuple[bytes, list[tuple[str, bytes]], DecodeError, Message]] = []
    for msg in messages:
        try:
            event = decode_event(msg.value())
            decoded[event.type] = event  # type: ignore[attr-defined]
        except DecodeError as exc:
            value, headers = dead_letter_for(exc, msg.topic(), msg.partition(), msg.offset(),
                                             msg.key())
            dead.append((value, headers, exc, msg))
    assert decoded == samples
    assert sorted(type(d[2]).__name__ for d in dead) == sorted(
        [BadMagicByte.__name__, TruncatedPayload.__name__, InvalidUtf8.__name__]
    )

    dlq = names[DLQ_EVENTS.name]
    producer = Producer(producer_config(kafka_bootstrap))
    for value, headers, _, msg in dead:
        producer.produce(dlq, value=value, key=msg.key(), headers=dict(headers))
    assert producer.flush(30) == 0
    letters = [
        parse_dead_letter(m.value(), m.headers())
        for m in _read_all(kafka_bootstrap, f"{unique}d", [dlq], len(dead) + 1)
        if m.headers()
    ]
    assert sorted(v.event.payload for v in letters) == sorted(garbage)
    for view in letters:
        assert view.headers[H_TOPIC] == site
        assert view.event.original_key == b"cust-bad"
        source = next(d[3] for d in dead if d[3].value() == view.event.payload)
        assert view.headers[H_PARTITION] == str(source.partition())
        assert view.headers[H_OFFSET] == str(source.offset())

"""The shared fixtures give real, working services."""

from __future__ import annotations

import socket
import time

import pytest
import redis
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from personaflow.kafka import consumer_config, producer_config
from schemas.topics import ALL_TOPICS


def test_make_topics_creates_catalogue_with_prefix(kafka_bootstrap, unique, make_topics):
    names = make_topics(unique, partitions=3)
    assert set(names) == {spec.name for spec in ALL_TOPICS}
    assert all(full == f"{unique}{name}" for name, full in names.items())
    topics = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10).topics
    for full in names.values():
        assert len(topics[full].partitions) == 3


def test_produce_and_consume_round_trip(kafka_bootstrap, unique, make_topics):
    topic = make_topics(unique)["events.site"]
    producer = Producer(producer_config(kafka_bootstrap))
    failures: list[object] = []
    for i in range(20):
        producer.produce(topic, key=f"c{i % 5}", value=f"v{i}".encode(),
                         on_delivery=lambda err, _msg: err and failures.append(err))
    assert producer.flush(10) == 0
    assert failures == []
    consumer = Consumer(consumer_config(kafka_bootstrap, f"{unique}g", session_timeout_ms=3000))
    consumer.subscribe([topic])
    seen: list[bytes] = []
    deadline = time.monotonic() + 20
    while len(seen) < 20 and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            seen.append(msg.value())
    consumer.close()
    assert sorted(seen) == sorted(f"v{i}".encode() for i in range(20))


def test_redis_url_answers(redis_url):
    client = redis.Redis.from_url(redis_url)
    assert client.ping() is True


def test_redis_server_outage_keeps_port_and_data(redis_server):
    client = redis.Redis.from_url(redis_server.url, socket_timeout=1)
    client.set("outage-key", "kept")
    port = redis_server.port
    redis_server.stop()
    with pytest.raises(redis.ConnectionError):
        client.ping()
    redis_server.start()
    assert redis_server.port == port
    assert redis.Redis.from_url(redis_server.url).get("outage-key") == b"kept"


def test_redis_server_left_stopped_is_restarted_part1(redis_server):
    redis_server.stop()


def test_redis_server_left_stopped_is_restarted_part2(redis_server):
    with socket.create_connection(("127.0.0.1", redis_server.port), timeout=1):
        pass
    assert redis.Redis.from_url(redis_server.url).ping() is True


_SEEN_UNIQUE: set[str] = set()


@pytest.mark.parametrize("run", range(3))
def test_unique_is_short_and_fresh_per_test(unique, run):
    assert len(unique) <= 12 and unique.endswith("-")
    assert unique not in _SEEN_UNIQUE
    _SEEN_UNIQUE.add(unique)

"""The main job's "every input processed" check against the real broker: a group's committed
offsets versus the end of each input partition."""

from __future__ import annotations

from confluent_kafka import Consumer, Producer, TopicPartition

from personaflow.kafka import consumer_config
from personaflow.mainjob import InputProgress


def _publish(bootstrap: str, topic: str, count: int) -> None:
    """One record per produce request: Tansu reports a partition's end offset as the first
    offset of its last batch + 1 (DESIGN.md), so batched records would hide the true end."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for i in range(count):
        producer.produce(topic, key=f"k{i}", value=b"x", partition=i % 2)
        assert producer.flush(30) == 0


def _commit(bootstrap: str, group: str, offsets: list[TopicPartition]) -> None:
    consumer = Consumer(consumer_config(bootstrap, group))
    try:
        consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()


def test_done_only_when_every_partition_is_committed_to_its_end(
    kafka_bootstrap, unique, make_topics
):
    topics = make_topics(unique, partitions=2)
    site, cart = topics["events.site"], topics["events.cart"]
    group = f"{unique}workers"
    _publish(kafka_bootstrap, site, 6)  # 3 records in each partition; cart stays empty
    progress = InputProgress(kafka_bootstrap, group, [site, cart])
    try:
        assert not progress.done()  # nothing committed
        _commit(kafka_bootstrap, group, [TopicPartition(site, 0, 3), TopicPartition(site, 1, 2)])
        assert not progress.done()  # partition 1 one record short
        _commit(kafka_bootstrap, group, [TopicPartition(site, 1, 3)])
        assert progress.done()  # the empty topic needs nothing
        _publish(kafka_bootstrap, site, 1)  # a new record at the end of partition 0
        assert not progress.done()
    finally:
        progress.close()

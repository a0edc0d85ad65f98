"""Every event type through the real broker, and `personaflow generate` delivering exactly N."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import Producer

from personaflow.generator import generate_events
from personaflow.generator.publish import Publisher
from personaflow.kafka import producer_config
from schemas.codec import decode_batch, encode_event
from schemas.models import EVENT_TYPES
from schemas.samples import sample_events
from schemas.topics import DLQ_EVENTS, EVENT_TOPIC, INPUT_TOPICS

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 3, 1, tzinfo=UTC)


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (Java client ``Utils.murmur2``), as a positive 32-bit int."""
    m, r, length = 0x5BD1E995, 24, len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = data[length - length % 4 :]
    if len(tail) >= 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h ^= tail[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h & 0x7FFFFFFF


def _key(event) -> bytes:
    return str(getattr(event, "key", None) or getattr(event, "customer_id", None) or "dl").encode()


def test_every_event_type_round_trips_through_the_broker(kafka_bootstrap, unique, make_topics,
                                                         consume):  # fmt: skip
    make_topics(unique)
    samples = list(sample_events().values())
    generated = list(generate_events(7, 30, 1500, START))
    events = samples + generated
    producer = Producer(producer_config(kafka_bootstrap))
    failures: list[object] = []
    for event in events:
        spec = EVENT_TOPIC.get(event.type, DLQ_EVENTS)
        producer.produce(spec.full_name(unique), encode_event(event), key=_key(event),
                         on_delivery=lambda err, _m: err and failures.append(err))  # fmt: skip
        producer.poll(0)
    assert producer.flush(30) == 0 and failures == []
    topics = sorted({EVENT_TOPIC.get(e.type, DLQ_EVENTS).full_name(unique) for e in events})
    records = consume(topics, len(events))
    decoded, errors = decode_batch(m.value() for m in records)
    assert errors == []
    assert len(decoded) == len(events)
    assert {e.type for e in decoded} == set(EVENT_TYPES)
    assert Counter(e.type for e in decoded) == Counter(e.type for e in events)
    assert sorted(map(repr, decoded)) == sorted(map(repr, events))


def test_generated_events_land_on_the_murmur2_partition(kafka_bootstrap, unique, make_topics,
                                                        consume):  # fmt: skip
    make_topics(unique, partitions=4)
    events = list(generate_events(3, 40, 600, START))
    stats = Publisher(kafka_bootstrap, unique).publish(events)
    assert stats.ok and stats.delivered == 600
    records = consume([spec.full_name(unique) for spec in INPUT_TOPICS], 600)
    assert len(records) == 600
    for record in records:
        assert record.partition() == murmur2(record.key()) % 4
    by_key: dict[bytes, set[int]] = {}
    for record in records:
        by_key.setdefault(record.key(), set()).add(record.partition())
    assert all(len(parts) == 1 for parts in by_key.values())  # co-partitioned across topics


def _generate(kafka_bootstrap: str, prefix: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
           "PERSONAFLOW_TOPIC_PREFIX": prefix, "COLUMNS": "200"}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "personaflow.cli", "generate", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip


def test_cli_generate_publishes_exactly_n_decodable_events(kafka_bootstrap, unique, make_topics,
                                                           consume):  # fmt: skip
    make_topics(unique)
    n = 2500
    result = _generate(kafka_bootstrap, unique, "--events", str(n), "--customers", "60",
                       "--seed", "11", "--start", "2026-02-01T00:00:00+00:00")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"produced {n}, delivered {n}, failed 0" in result.stderr
    records = consume([spec.full_name(unique) for spec in INPUT_TOPICS], n)
    decoded, errors = decode_batch(m.value() for m in records)
    assert errors == [] and len(decoded) == n
    expected = generate_events(11, 60, n, datetime(2026, 2, 1, tzinfo=UTC))
    assert sorted(e.event_id for e in decoded) == sorted(e.event_id for e in expected)


def test_cli_generate_refuses_missing_topics(kafka_bootstrap, unique):
    result = _generate(kafka_bootstrap, unique, "--events", "10")
    assert result.returncode != 0
    assert f"{unique}events.site" in result.stderr and "topics create" in result.stderr


def test_cli_generate_rate_limits(kafka_bootstrap, unique, make_topics):
    make_topics(unique)
    result = _generate(kafka_bootstrap, unique, "--events", "60", "--rate", "40")
    assert result.returncode == 0, result.stderr
    seconds = float(result.stderr.split(" in ")[1].split("s ")[0])
    assert seconds >= 60 / 40 - 0.1


def test_cli_replay_publishes_a_jsonl_file(kafka_bootstrap, unique, make_topics, consume,
                                           tmp_path):  # fmt: skip
    make_topics(unique)
    out = tmp_path / "history.jsonl"
    assert _generate(kafka_bootstrap, unique, "-n", "300", "--out", str(out)).returncode == 0
    result = _generate(kafka_bootstrap, unique, "--replay", str(out))
    assert result.returncode == 0, result.stderr
    records = consume([spec.full_name(unique) for spec in INPUT_TOPICS], 300)
    decoded, errors = decode_batch(m.value() for m in records)
    assert errors == [] and len(decoded) == 300
    written = [line for line in out.read_text().splitlines() if line]
    assert sorted(e.model_dump_json() for e in decoded) == sorted(written)

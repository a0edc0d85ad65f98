"""How fast ``personaflow dlq`` reads a dead-letter topic and re-publishes it, against the same
work done by bare clients in the same run:

- read: ``read_dlq`` (consume to the end, decode every Dead Letter, split out markers) versus
  a bare confluent-kafka consumer reading the same records (no decoding);
- re-publish: ``republish`` of every dead letter (read + plan + one transaction writing each
  record and its marker) versus a bare idempotent producer writing the same payloads once.

Runs on an embedded Tansu broker unless KAFKA_BOOTSTRAP_SERVERS is set. Last line: JSON.

    python -m bench.dlq [--letters 20000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from personaflow import dlq
from personaflow.admin import create_topics
from personaflow.kafka import consumer_config, producer_config
from schemas.codec import encode_event
from schemas.deadletter import dead_letter_record
from schemas.models import Product, ProductViewed

AT = datetime(2026, 11, 1, tzinfo=UTC)


def _fill(bootstrap: str, dlq_topic: str, origin: str, n: int) -> list[bytes]:
    """Write ``n`` dead letters of product views; returns their original payloads."""
    producer = Producer(producer_config(bootstrap, **{"linger.ms": 20}))
    payloads = []
    for i in range(n):
        event = ProductViewed(event_id=f"e{i}", occurred_at=AT, customer_id=f"c{i % 5000}",
                              product=Product(product_id=f"p{i % 300}", price=9.5))  # fmt: skip
        raw = encode_event(event)
        value, headers = dead_letter_record(raw, "state store unavailable", "ProcessingError",
                                            origin, i % 4, i, f"c{i % 5000}".encode())  # fmt: skip
        wire: list[tuple[str, str | bytes | None]] = list(headers)
        producer.produce(dlq_topic, value=value, key=f"c{i % 5000}".encode(), headers=wire)
        producer.poll(0)
        payloads.append(raw)
    assert producer.flush(30) == 0
    return payloads


def _raw_read(bootstrap: str, topic: str, n: int) -> float:
    consumer = Consumer(consumer_config(bootstrap, f"bench-raw-{time.time_ns()}"))
    start = time.perf_counter()
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(4)])
    seen = 0
    while seen < n:
        seen += sum(1 for m in consumer.consume(500, timeout=0.5) if m.error() is None)
    elapsed = time.perf_counter() - start
    consumer.close()
    return elapsed


def _plain_produce(bootstrap: str, topic: str, payloads: list[bytes]) -> float:
    producer = Producer(producer_config(bootstrap))
    start = time.perf_counter()
    for i, payload in enumerate(payloads):
        producer.produce(topic, value=payload, key=f"c{i % 5000}".encode())
        producer.poll(0)
    assert producer.flush(30) == 0
    return time.perf_counter() - start


def run_once(bootstrap: str, n: int, round_no: int) -> dict[str, float]:
    """One round on fresh topics: seconds of each of the four measurements."""
    prefix = f"bench-dlq-{os.getpid()}-{round_no}-"
    names = dict(create_topics(bootstrap, prefix, 4, 1).raise_for_errors().names)
    payloads = _fill(bootstrap, names["dlq.events"], names["events.site"], n)
    raw_s = _raw_read(bootstrap, names["dlq.events"], n)
    start = time.perf_counter()
    snapshot = dlq.read_dlq(bootstrap, names["dlq.events"])
    read_s = time.perf_counter() - start
    assert len(snapshot.letters) == n, len(snapshot.letters)
    plain_s = _plain_produce(bootstrap, names["events.cart"], payloads)
    start = time.perf_counter()
    report = dlq.republish(bootstrap, names["dlq.events"],
                           transactional_id=f"bench-dlq-{os.getpid()}-{round_no}")  # fmt: skip
    republish_s = time.perf_counter() - start
    assert len(report.republished) == n
    return {"raw": raw_s, "read": read_s, "plain": plain_s, "republish": republish_s}


def _bootstrap() -> tuple[str, Any]:
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
    if configured:
        return configured, None
    from personaflow.devstack import BrokerProcess

    broker = BrokerProcess()
    broker.start()
    return broker.bootstrap, broker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--letters", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    bootstrap, broker = _bootstrap()
    rounds = []
    try:
        for round_no in range(args.repeats):
            rounds.append(run_once(bootstrap, args.letters, round_no))
            line = ", ".join(f"{k} {v:.2f}s" for k, v in rounds[-1].items())
            print(f"round {round_no + 1}: {args.letters} dead letters: {line}")
    finally:
        if broker is not None:
            broker.stop()
    med = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    n = args.letters
    result = {
        "letters": n,
        "repeats": args.repeats,
        "dlq_read_per_s": round(n / med["read"]),
        "raw_read_per_s": round(n / med["raw"]),
        "dlq_read_vs_raw": round(med["raw"] / med["read"], 3),
        "republish_per_s": round(n / med["republish"]),
        "plain_produce_per_s": round(n / med["plain"]),
        "republish_vs_plain": round(med["plain"] / med["republish"], 3),
    }
    print(f"read: {result['dlq_read_per_s']}/s vs bare consumer {result['raw_read_per_s']}/s; "
          f"re-publish: {result['republish_per_s']}/s vs bare producer "
          f"{result['plain_produce_per_s']}/s (medians of {args.repeats})")  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()

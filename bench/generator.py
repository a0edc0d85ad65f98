"""Traffic generator throughput: generating, writing JSONL, and publishing Avro to a broker.

Run: ``python -m bench.generator [--events N] [--repeats R] [--seed S]``.

Uses KAFKA_BOOTSTRAP_SERVERS when set, else starts a Tansu broker for the run. Each round
runs every measure once (interleaved, so machine-load drift hits all alike); medians over the
rounds are reported. The baseline is a bare confluent-kafka producer sending the same,
already-encoded records with the same config: ``publish_vs_bare_producer`` is the share of the
producer's ceiling that ``personaflow generate`` reaches (generation + Avro + delivery checks).
The last line is one JSON object of named metrics.

Measures (events per second):
  generate       generate_events: synthetic shoppers -> validated pydantic models
  jsonl          write_jsonl of pre-generated events to a temp file
  publish        Publisher.publish of pre-generated events (Avro encode + produce + reports)
  end_to_end     what `personaflow generate` does: generate + encode + produce + reports
  bare_producer  Producer.produce of pre-encoded bytes, same config (the ceiling)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from personaflow.admin import create_topics
from personaflow.devstack import BrokerProcess
from personaflow.generator import generate_events
from personaflow.generator.publish import Publisher, write_jsonl
from personaflow.kafka import producer_config
from schemas.codec import encode_event
from schemas.topics import EVENT_TOPIC

START = datetime(2026, 1, 1, tzinfo=UTC)


@contextmanager
def broker() -> Iterator[str]:
    """The configured broker, or a Tansu started for this run."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
    if configured:
        yield configured
        return
    process = BrokerProcess()
    process.start()
    try:
        yield process.bootstrap
    finally:
        process.stop()


def _timed(run: Callable[[], int]) -> float:
    started = time.perf_counter()
    count = run()
    return count / (time.perf_counter() - started)


def _bare(bootstrap: str, prefix: str, records: list[tuple[str, bytes, bytes]]) -> int:
    from confluent_kafka import Producer

    producer = Producer(producer_config(bootstrap))
    delivered = 0

    def on_delivery(error: object, _msg: object) -> None:
        nonlocal delivered
        delivered += error is None

    for topic, key, value in records:
        while True:
            try:
                producer.produce(prefix + topic, value, key, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(60)
    assert delivered == len(records), (delivered, len(records))
    return delivered


def _round(bootstrap: str, args: argparse.Namespace, index: int) -> dict[str, float]:
    prefix = f"bench{os.getpid()}r{index}-"
    create_topics(bootstrap, prefix, 12).raise_for_errors()
    customers = max(1, args.events // 40)
    events = list(generate_events(args.seed, customers, args.events, START))
    records = [(EVENT_TOPIC[str(e.type)].name, e.key.encode(), encode_event(e))  # type: ignore[attr-defined]
               for e in events]

    def publish(stream: object) -> int:
        stats = Publisher(bootstrap, prefix).publish(stream)  # type: ignore[arg-type]
        assert stats.ok, stats
        return stats.delivered

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "events.jsonl"
        return {
            "generate": _timed(lambda: len(list(
                generate_events(args.seed, customers, args.events, START)))),
            "jsonl": _timed(lambda: write_jsonl(events, out).delivered),
            "publish": _timed(lambda: publish(events)),
            "end_to_end": _timed(lambda: publish(
                generate_events(args.seed, customers, args.events, START))),
            "bare_producer": _timed(lambda: _bare(bootstrap, prefix, records)),
        }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    with broker() as bootstrap:
        rounds = [_round(bootstrap, args, i) for i in range(args.repeats)]
    medians = {name: statistics.median(r[name] for r in rounds) for name in rounds[0]}
    for name, rate in medians.items():
        print(f"{name:14s} {rate:12,.0f} events/s  (rounds: "
              + ", ".join(f"{r[name]:,.0f}" for r in rounds) + ")")  # fmt: skip
    result: dict[str, object] = {f"{name}_per_s": round(rate) for name, rate in medians.items()}
    result["publish_vs_bare_producer"] = round(medians["publish"] / medians["bare_producer"], 3)
    result["end_to_end_vs_bare_producer"] = round(
        medians["end_to_end"] / medians["bare_producer"], 3
    )
    result.update(events=args.events, repeats=args.repeats, broker="tansu" if not
                  os.environ.get("KAFKA_BOOTSTRAP_SERVERS") else "configured")  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()

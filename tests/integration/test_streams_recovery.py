"""Crash and restart of a real worker: kill -9 mid-stream loses no trigger and re-emits only
identical ids; after a clean stop, a worker with an empty data dir recovers the table from
its changelog to exactly the state before."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from personaflow.admin import create_topics
from schemas import models as m
from schemas.codec import decode_event
from streams.domain import load_domain
from streams.harness import (
    TEST_RULES,
    WorkerProcess,
    clock_advance,
    committed_total,
    keys_covering,
    produce_events,
    read_topic,
    wait_committed,
)
from streams.replay import replay_events
from streams.topics import TopicNames

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC).timestamp()
PARTITIONS = 4
CUSTOMERS = 1500


def history() -> list[Any]:
    """Per customer: identify, two product views, an add to cart; then time moves on 2 h."""
    events: list[Any] = []
    for i in range(CUSTOMERS):
        cid = f"c{i:05d}"

        def at(s: float, i: int = i) -> datetime:
            return datetime.fromtimestamp(T0 + i + s, UTC)

        shoe = m.Product(product_id=f"p{i % 50}", name="shoe", category="shoes", price=50.0)
        hat = m.Product(product_id=f"h{i % 30}", name="hat", category="hats", price=20.0)
        events += [
            m.Identify(event_id=f"{cid}-i", occurred_at=at(0), customer_id=cid,
                       traits=m.Traits(email=f"{cid}@example.com")),
            m.ProductViewed(event_id=f"{cid}-v1", occurred_at=at(10), customer_id=cid,
                            product=shoe),
            m.ProductViewed(event_id=f"{cid}-v2", occurred_at=at(20), customer_id=cid, product=hat),
            m.ProductAdded(event_id=f"{cid}-a", occurred_at=at(30), customer_id=cid,
                           cart_id=f"k-{cid}", product=shoe),
        ]  # fmt: skip
    later = T0 + CUSTOMERS + 2 * 3600
    events += [clock_advance(later, key) for key in keys_covering(PARTITIONS)]
    return events


def expected_triggers(events: list[Any], rules: Path) -> dict[str, tuple[str, str, int]]:
    """Trigger id -> (customer, type, step), from a replay of the same history."""
    lines = [e.model_dump_json().encode() for e in events]
    triggers = replay_events(lines, load_domain(rules), PARTITIONS).triggers
    return {t["trigger_id"]: (t["customer_id"], t["trigger_type"], t["step"]) for t in triggers}


def live_trigger_ids(bootstrap: str, topic: str, want: set[str], timeout: float) -> list[str]:
    """Trigger ids on ``topic`` (with repeats) once ``want`` is covered and 2 s stay quiet."""
    deadline = time.monotonic() + timeout
    ids: list[str] = []
    while time.monotonic() < deadline:
        ids = [decode_event(r.value()).trigger_id for r in read_topic(bootstrap, topic, idle=2)]
        if want <= set(ids):
            break
        time.sleep(1)
    return ids


def test_kill_mid_stream_then_restart_and_recover(kafka_bootstrap: str, tmp_path: Path) -> None:
    prefix = f"sr{uuid.uuid4().hex[:8]}-"
    create_topics(kafka_bootstrap, prefix, PARTITIONS, 1).raise_for_errors()
    topics = TopicNames(prefix)
    rules = tmp_path / "rules.yaml"
    rules.write_text(TEST_RULES)
    events = history()
    described = expected_triggers(events, rules)
    expected = set(described)
    assert len(expected) == 2 * CUSTOMERS  # a welcome and a 1 h cart reminder each
    # two thirds before the kill, the rest after it: the kill lands before the end of the
    # stream whatever the worker's speed (this machine's faster windows let the compiled
    # worker commit all 6,004 events before the test saw its first commit)
    cut = 2 * len(events) // 3
    produce_events(kafka_bootstrap, prefix, events[:cut])

    def worker(data: str, **env: str) -> WorkerProcess:
        return WorkerProcess(
            kafka_bootstrap, prefix, f"{prefix}app", tmp_path / data, partitions=PARTITIONS,
            clock="event", env={"PERSONAFLOW_RULES_FILE": str(rules), **env},
        )  # fmt: skip

    # persist and commit often, so that the first commit (the kill's cue) comes after a
    # fraction of the history: with the defaults the compiled worker (make native) could apply
    # all 6,004 events before its first commit, and the kill landed after the stream
    first = worker("data", PERSONAFLOW_PERSIST_INTERVAL_S="0.05",
                   PERSONAFLOW_COMMIT_INTERVAL_S="0.05").start()
    first.wait_ready(60)
    while committed_total(kafka_bootstrap, f"{prefix}app", topics.inputs, PARTITIONS) == 0:
        time.sleep(0.05)
    first.kill()  # kill -9, mid-stream
    done = committed_total(kafka_bootstrap, f"{prefix}app", topics.inputs, PARTITIONS)
    assert 0 < done <= cut, f"the kill should land mid-stream ({done} committed)"
    produce_events(kafka_bootstrap, prefix, events[cut:])

    second = worker("data").start()
    try:
        second.wait_ready(60)
        wait_committed(kafka_bootstrap, f"{prefix}app", topics.inputs, PARTITIONS, len(events))
        ids = live_trigger_ids(kafka_bootstrap, topics.triggers, expected, timeout=90)
        missing = sorted(described[i] for i in expected - set(ids))
        assert set(ids) == expected, f"missing {missing[:5]}, extra {len(set(ids) - expected)}"
        sample = [f"c{i:05d}" for i in range(0, CUSTOMERS, 97)]
        before = {cid: _state(second, cid) for cid in sample}
        personas_before = json.loads(second.get("/personas")[1])
    finally:
        second.stop()

    # a clean restart on an empty data dir: the table comes back from its changelog
    third = worker("fresh-data").start()
    try:
        third.wait_ready(60)
        after = {cid: _wait_state(third, cid) for cid in sample}
        assert after == before
        assert json.loads(third.get("/personas")[1]) == personas_before
    finally:
        third.stop()


def _state(worker: WorkerProcess, customer: str) -> Any:
    status, body = worker.get(f"/customers/{customer}")
    assert status == 200, customer
    return json.loads(body)


def _wait_state(worker: WorkerProcess, customer: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = worker.get(f"/customers/{customer}")
        if status == 200:
            return json.loads(body)
        time.sleep(0.2)
    return None

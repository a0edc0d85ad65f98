"""A second worker joins while the first is processing a stream: the first one's partitions
are revoked mid-stream (StreamWorker.revoke persists what it processed and fences off what it
had fetched), half of them move. Together they emit exactly the replay's trigger ids, and the
table recovered from the changelog alone equals the one the workers served: no write of a
revoked partition was lost or landed after the new owner took it over.

The states are not compared with the replay's: around the rebalance the alignment can apply a
customer's events of different topics in another order than replay (seen: ~100 of 900
customers whose view or cart add was applied before their Identify, so the times in the state
differ; the same with the code before StreamWorker.revoke). docs/streams.md lists it as a
known source of order differences (records read again after a rebalance)."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

from personaflow.admin import create_topics
from streams.harness import (
    TEST_RULES,
    WorkerProcess,
    committed_total,
    produce_events,
    wait_committed,
)
from streams.topics import TopicNames
from tests.integration.test_streams_crash_persist import (
    CUSTOMERS,
    PARTITIONS,
    _states,
    _trigger_ids,
    history,
    replayed,
    state_diff,
)


def test_partitions_revoked_mid_stream_lose_nothing(kafka_bootstrap: str, tmp_path: Path) -> None:
    prefix = f"sv{uuid.uuid4().hex[:8]}-"
    create_topics(kafka_bootstrap, prefix, PARTITIONS, 1).raise_for_errors()
    topics = TopicNames(prefix)
    group = f"{prefix}app"
    rules = tmp_path / "rules.yaml"
    rules.write_text(TEST_RULES)
    events = history()
    expected, states = replayed(events, rules)
    body, tail = events[: -PARTITIONS], events[-PARTITIONS:]  # tail: the clock moves on 2 h
    head = len(body) // 4
    produce_events(kafka_bootstrap, prefix, body[:head])

    def worker(name: str) -> WorkerProcess:
        return WorkerProcess(
            kafka_bootstrap, prefix, group, tmp_path / name, partitions=PARTITIONS,
            clock="event", env={"PERSONAFLOW_RULES_FILE": str(rules)},
        )  # fmt: skip

    first = worker("a").start()
    second: WorkerProcess | None = None
    feeder = threading.Thread(target=_trickle, args=(kafka_bootstrap, prefix, body[head:]))
    try:
        first.wait_ready(60)
        while committed_total(kafka_bootstrap, group, topics.inputs, PARTITIONS) == 0:
            time.sleep(0.05)
        feeder.start()  # events keep coming while the second worker joins
        second = worker("b").start()
        second.wait_ready(90)
        feeder.join(60)
        produce_events(kafka_bootstrap, prefix, tail)
        wait_committed(kafka_bootstrap, group, topics.inputs, PARTITIONS, len(events), 90)
        ids = _trigger_ids(kafka_bootstrap, topics.triggers, set(expected), timeout=90)
        missing = sorted(expected[i] for i in set(expected) - set(ids))
        extra = set(ids) - set(expected)
        assert set(ids) == set(expected), f"missing for {missing[:5]}, extra {len(extra)}"
        served = _merged(_states(first), _states(second))
        assert sorted(k for k, v in served.items() if v is None) == []
        revoked = Path(str(first.log_path)).read_text().count("Revoking previously assigned")
        assert revoked >= 2, "the first worker's partitions were never revoked"
    finally:
        if second is not None:
            second.stop()
        first.stop()

    fresh = worker("fresh").start()  # the whole table from its changelog alone
    try:
        fresh.wait_ready(60)
        got = _states(fresh)
        assert got == served, state_diff(got, served)
    finally:
        fresh.stop()
    assert len(served) == len(states) == CUSTOMERS


def _trickle(bootstrap: str, prefix: str, events: list[Any], seconds: float = 8.0) -> None:
    """Publish ``events`` in 20 slices over about ``seconds``."""
    step = max(1, len(events) // 20)
    for start in range(0, len(events), step):
        produce_events(bootstrap, prefix, events[start : start + step])
        time.sleep(seconds / 20)


def _merged(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Each customer's state from whichever worker holds it."""
    return {key: a[key] if a[key] is not None else b.get(key) for key in a}

"""Two workers share the partitions and together emit exactly the expected trigger ids.
One runs the batch intake (default), the other Faust's own ``take_events`` path."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from personaflow.admin import create_topics
from streams.harness import TEST_RULES, WorkerProcess, produce_events, wait_committed
from streams.topics import TopicNames
from tests.integration.test_streams_recovery import (
    PARTITIONS,
    expected_triggers,
    history,
    live_trigger_ids,
)


def test_two_workers_split_partitions_and_emit_the_expected_triggers(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = f"ss{uuid.uuid4().hex[:8]}-"
    create_topics(kafka_bootstrap, prefix, PARTITIONS, 1).raise_for_errors()
    topics = TopicNames(prefix)
    rules = tmp_path / "rules.yaml"
    rules.write_text(TEST_RULES)
    events = history()
    expected = set(expected_triggers(events, rules))
    workers = [
        WorkerProcess(
            kafka_bootstrap, prefix, f"{prefix}app", tmp_path / f"w{n}", partitions=PARTITIONS,
            clock="event", env={"PERSONAFLOW_RULES_FILE": str(rules), "PERSONAFLOW_INTAKE": intake},
        ).start()
        for n, intake in enumerate(("batch", "take"))
    ]  # fmt: skip
    try:
        for worker in workers:
            worker.wait_ready(60)
        produce_events(kafka_bootstrap, prefix, events)
        wait_committed(kafka_bootstrap, f"{prefix}app", topics.inputs, PARTITIONS, len(events))
        ids = live_trigger_ids(kafka_bootstrap, topics.triggers, expected, timeout=40)
        assert set(ids) == expected
        owned = [set(json.loads(w.get("/readyz")[1])["partitions"]) for w in workers]
        assert owned[0] and owned[1] and not owned[0] & owned[1]
        assert owned[0] | owned[1] == set(range(PARTITIONS))
    finally:
        for worker in workers:
            worker.stop()

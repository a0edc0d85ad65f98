"""The dead-letter round trip through a real stream worker (issue 6): a bad event is
dead-lettered by the worker with its reason, an operator fixes it and re-publishes it with
`personaflow dlq republish --fix-json`, the worker processes it exactly once, and a second
re-publish of the same dead letter is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from personaflow.admin import create_topics
from schemas.deadletter import H_REASON, parse_dead_letter
from streams.harness import WorkerProcess, produce_raw, read_topic
from streams.topics import TopicNames

pytestmark = pytest.mark.e2e

CUSTOMER = "dlq-customer-1"


def _bad_search() -> dict[str, Any]:
    # Products Searched without its required `query`: fails validation -> dead letter
    return {"type": "Products Searched", "event_id": "search-1",
            "occurred_at": "2026-03-02T10:00:00Z", "customer_id": CUSTOMER}  # fmt: skip


def _wait_for(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    return check()


def _searches(worker: WorkerProcess) -> int:
    status, body = worker.get(f"/customers/{CUSTOMER}")
    return int(json.loads(body)["state"]["searches"]) if status == 200 else 0


def _dlq_cli(bootstrap: str, prefix: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "PERSONAFLOW_TOPIC_PREFIX": prefix}
    return subprocess.run([sys.executable, "-m", "personaflow.cli", "dlq", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def test_bad_event_fixed_and_republished_is_processed_once(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = f"dq{uuid.uuid4().hex[:8]}-"
    create_topics(kafka_bootstrap, prefix, 4, 1).raise_for_errors()
    topics = TopicNames(prefix)
    worker = WorkerProcess(kafka_bootstrap, prefix, f"{prefix}app", tmp_path / "data",
                           partitions=4, clock="event")  # fmt: skip
    worker.start()
    try:
        worker.wait_ready(90)
        site = topics.full("events.site")
        bad = json.dumps(_bad_search()).encode()
        produce_raw(kafka_bootstrap, [(site, CUSTOMER.encode(), bad)])
        dead = read_topic(kafka_bootstrap, topics.dlq, until=1, timeout=30)
        assert len(dead) == 1
        letter = parse_dead_letter(dead[0].value(), dead[0].headers())
        assert "query" in letter.headers[H_REASON]
        assert _searches(worker) == 0

        fixed = tmp_path / "fixed.json"
        fixed.write_text(json.dumps({**_bad_search(), "query": "red shoes"}))
        where = f"{dead[0].partition()}:{dead[0].offset()}"
        first = _dlq_cli(kafka_bootstrap, prefix, "republish", "--offset", where,
                         "--fix-json", str(fixed))  # fmt: skip
        assert first.returncode == 0, first.stdout + first.stderr
        assert "re-published: 1" in first.stdout
        assert _wait_for(lambda: _searches(worker) == 1), "fixed event not processed"

        second = _dlq_cli(kafka_bootstrap, prefix, "republish", "--offset", where,
                          "--fix-json", str(fixed))  # fmt: skip
        assert second.returncode == 1, "a second re-publish of one dead letter must be refused"
        time.sleep(3)
        assert _searches(worker) == 1, "the fixed event was processed more than once"
    finally:
        worker.stop()

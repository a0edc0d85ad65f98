"""A worker killed (SIGKILL) inside a background persist, at each of its points in turn
(streams/crashpoints.py: outputs acknowledged / changelog produced / changelog acknowledged /
local store written), loses no trigger and leaves no table behind its inputs: after the
restarts, the trigger ids equal a replay's (repeats only with identical ids), and every
customer's state equals the replay's, both in the restarted worker and when recovered from
the changelog alone (an empty data dir)."""

from __future__ import annotations

import json
import signal
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from personaflow.admin import create_topics
from schemas import models as m
from schemas.codec import decode_event
from streams.crashpoints import ENV, POINTS
from streams.domain import describe, load_domain
from streams.harness import (
    TEST_RULES,
    WorkerProcess,
    clock_advance,
    keys_covering,
    produce_events,
    read_topic,
    wait_committed,
)
from streams.replay import Replayer
from streams.topics import TopicNames

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC).timestamp()
PARTITIONS = 4
CUSTOMERS = 900


def history() -> list[Any]:
    """Per customer: identify, a product view and (two in three) an add to cart; then time
    moves on 2 h (the 1 h cart reminders fire). Customers without a cart get no write after
    their last event: a write of theirs lost from the changelog stays lost."""
    events: list[Any] = []
    for i in range(CUSTOMERS):
        cid = f"c{i:05d}"

        def at(s: float, i: int = i) -> datetime:
            return datetime.fromtimestamp(T0 + i + s, UTC)

        shoe = m.Product(product_id=f"p{i % 50}", name="shoe", category="shoes", price=50.0)
        events += [
            m.Identify(event_id=f"{cid}-i", occurred_at=at(0), customer_id=cid,
                       traits=m.Traits(email=f"{cid}@example.com")),
            m.ProductViewed(event_id=f"{cid}-v", occurred_at=at(10), customer_id=cid,
                            product=shoe),
        ]  # fmt: skip
        if i % 3:
            events.append(m.ProductAdded(event_id=f"{cid}-a", occurred_at=at(20),
                                         customer_id=cid, cart_id=f"k-{cid}",
                                         product=shoe))  # fmt: skip
    later = T0 + CUSTOMERS + 2 * 3600
    events += [clock_advance(later, key) for key in keys_covering(PARTITIONS)]
    return events


def replayed(events: list[Any], rules: Path) -> tuple[dict[str, str], dict[str, Any]]:
    """(trigger id -> customer, customer -> state view) from a replay of the history."""
    domain = load_domain(rules)
    replayer = Replayer(domain, PARTITIONS)
    for event in events:
        replayer.feed(event.model_dump_json().encode())
    result = replayer.finish()
    triggers = {str(t["trigger_id"]) for t in result.triggers}
    ids = {str(t["trigger_id"]): str(t["customer_id"]) for t in result.triggers}
    assert len(triggers) == len(ids)
    customers = replayer.tables.data["customers"]
    states = {cid: _comparable(describe(domain.decode_state(customers[cid])))
              for cid in (f"c{i:05d}" for i in range(CUSTOMERS))}  # fmt: skip
    return ids, states


def _comparable(state: dict[str, Any]) -> dict[str, Any]:
    """A state view without the input watermarks (live offsets of internal.ticks differ)."""
    return {k: v for k, v in state.items() if k != "watermarks"}


def test_kill_at_each_persist_point_then_recover(kafka_bootstrap: str, tmp_path: Path) -> None:
    prefix = f"sc{uuid.uuid4().hex[:8]}-"
    create_topics(kafka_bootstrap, prefix, PARTITIONS, 1).raise_for_errors()
    topics = TopicNames(prefix)
    rules = tmp_path / "rules.yaml"
    rules.write_text(TEST_RULES)
    events = history()
    expected, states = replayed(events, rules)
    assert len(expected) == CUSTOMERS + len([i for i in range(CUSTOMERS) if i % 3])
    produce_events(kafka_bootstrap, prefix, events)

    def worker(data: str, name: str, env: dict[str, str] | None = None) -> WorkerProcess:
        return WorkerProcess(
            kafka_bootstrap, prefix, f"{prefix}app", tmp_path / data, partitions=PARTITIONS,
            clock="event", env={"PERSONAFLOW_RULES_FILE": str(rules), **(env or {})},
            log_path=tmp_path / f"{name}.log",
        )  # fmt: skip

    for point in POINTS:  # each worker dies inside its first persist that writes something
        crashing = worker("data", point, {ENV: point}).start()
        assert crashing.process is not None
        code = crashing.process.wait(120)
        assert code == -signal.SIGKILL, f"{point}: exited with {code}"
        assert f"crash point {point} reached" in Path(str(crashing.log_path)).read_text()

    final = worker("data", "final").start()
    try:
        final.wait_ready(60)
        wait_committed(kafka_bootstrap, f"{prefix}app", topics.inputs, PARTITIONS, len(events))
        ids = _trigger_ids(kafka_bootstrap, topics.triggers, set(expected), timeout=90)
        missing = sorted(expected[i] for i in set(expected) - set(ids))
        extra = set(ids) - set(expected)
        assert set(ids) == set(expected), (
            f"missing for {missing[:5]}, extra {len(extra)}\n"
            + explain_missing(final, missing, states, tmp_path)
            + _offsets_read(kafka_bootstrap, topics.triggers)
        )
        got = _states(final)
        assert got == states, state_diff(got, states)
    finally:
        final.stop()

    fresh = worker("fresh-data", "fresh").start()  # the table from its changelog alone
    try:
        fresh.wait_ready(60)
        got = _states(fresh)
        assert got == states, state_diff(got, states)
    finally:
        fresh.stop()


def explain_missing(
    worker: WorkerProcess, missing: list[str], want: dict[str, Any], logs: Path
) -> str:
    """What a failed trigger comparison needs to be understood from CI output alone: how the
    served state of the first customers missing a trigger differs from the replay's, and
    what each worker logged about rebalances, dropped records and failures."""
    if not missing:
        return ""
    lines = []
    for cid in missing[:2]:
        try:
            status, body = worker.get(f"/customers/{cid}")
            got = {cid: _comparable(json.loads(body)["state"]) if status == 200 else None}
        except Exception as exc:  # a diagnostic must not hide the failure
            lines.append(f"{cid}: state not read ({type(exc).__name__})")
            continue
        lines += [f"{cid} served: {line}" for line in state_diff(got, {cid: want[cid]})]
    _, exposition = worker.get("/metrics", timeout=10)
    lines += [line for line in exposition.decode(errors="replace").splitlines()
              if line.startswith("personaflow_triggers_total")]  # fmt: skip
    for log in sorted(logs.glob("*.log")):
        text = log.read_text(errors="replace").splitlines()
        notable = [line[:200] for line in text
                   if any(w in line for w in ("generation id", "Revoking", "dropped",
                                               "WARNING", "ERROR", "due-index"))]  # fmt: skip
        lines.append(f"{log.name}: {len(notable)} notable lines")
        lines += [f"  {line}" for line in notable[-12:]]
    return "\n".join(lines)


def _offsets_read(bootstrap: str, topic: str) -> str:
    """Per partition of ``topic``: how many records a reader got and their offset range. The
    worker produces without transactions, so a hole in the offsets read means the broker
    held back records it had acknowledged; the worker's own trigger counts (above, from
    /metrics) say what it produced."""
    offsets: dict[int, list[int]] = {}
    for record in read_topic(bootstrap, topic, idle=2):
        offsets.setdefault(record.partition(), []).append(record.offset())
    lines = []
    for partition, seen in sorted(offsets.items()):
        holes = max(seen) - min(seen) + 1 - len(set(seen))
        lines.append(f"\n{topic}[{partition}]: {len(seen)} read, offsets {min(seen)}-"
                     f"{max(seen)}, {holes} missing in between")  # fmt: skip
    return "".join(lines)


def _trigger_ids(bootstrap: str, topic: str, want: set[str], timeout: float) -> list[str]:
    """Trigger ids on ``topic`` (with repeats) once ``want`` is covered and 2 s stay quiet."""
    deadline = time.monotonic() + timeout
    ids: list[str] = []
    while time.monotonic() < deadline:
        ids = [decode_event(r.value()).trigger_id for r in read_topic(bootstrap, topic, idle=2)]
        if want <= set(ids):
            break
        time.sleep(1)
    return ids


def state_diff(got: dict[str, Any], want: dict[str, Any]) -> list[str]:
    """The first few differences between two customer -> state view maps, readable."""
    out: list[str] = []
    for key in sorted(set(got) | set(want)):
        a, b = got.get(key), want.get(key)
        if a == b:
            continue
        if a is None or b is None:
            out.append(f"{key}: {'missing' if a is None else 'unexpected'}")
        else:
            fields = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            out.append(f"{key}: " + "; ".join(f"{k}={a.get(k)!r} want {b.get(k)!r}"
                                               for k in fields))  # fmt: skip
    return out[:5] + ([f"... {len(out)} customers differ"] if len(out) > 5 else [])


def _states(worker: WorkerProcess) -> dict[str, Any]:
    """Every customer's state view as the worker serves it (None: not found)."""
    out: dict[str, Any] = {}
    for i in range(CUSTOMERS):
        cid = f"c{i:05d}"
        status, body = worker.get(f"/customers/{cid}")
        out[cid] = _comparable(json.loads(body)["state"]) if status == 200 else None
    return out

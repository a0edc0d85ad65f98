"""One real worker (`personaflow worker` subprocess) on the real broker: the cart scenario in
event time, dead letters for garbage in every input topic, and the operator's web views."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from personaflow.admin import create_topics
from schemas.codec import decode_event, encode_event
from schemas.deadletter import H_OFFSET, H_REASON, H_TOPIC, parse_dead_letter
from schemas.models import Product, ProductViewed
from streams.harness import (
    TEST_RULES,
    WorkerProcess,
    cart_scenario,
    clock_advance,
    keys_covering,
    produce_events,
    produce_raw,
    purchase,
    read_topic,
)
from streams.topics import TopicNames

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC).timestamp()
HOUR = 3600.0
PARTITIONS = 4


class Env:
    def __init__(self, bootstrap: str, prefix: str, worker: WorkerProcess) -> None:
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.topics = TopicNames(prefix)
        self.worker = worker

    def triggers(self, customer: str, until: int | None = None, timeout: float = 30.0) -> list:
        records = read_topic(self.bootstrap, self.topics.triggers, until=until, timeout=timeout)
        found = [decode_event(r.value()) for r in records]
        return [t for t in found if t.customer_id == customer]


@pytest.fixture(scope="module")
def env(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    prefix = f"sw{uuid.uuid4().hex[:8]}-"
    create_topics(kafka_bootstrap, prefix, PARTITIONS, 1).raise_for_errors()
    base = tmp_path_factory.mktemp("worker")
    rules = base / "rules.yaml"
    rules.write_text(TEST_RULES)
    worker = WorkerProcess(
        kafka_bootstrap, prefix, f"{prefix}app", base / "data", partitions=PARTITIONS,
        clock="event", env={"PERSONAFLOW_RULES_FILE": str(rules)},
    )  # fmt: skip
    worker.start()
    try:
        worker.wait_ready(60)
        yield Env(kafka_bootstrap, prefix, worker)
    finally:
        worker.stop()


def _get_json(worker: WorkerProcess, path: str) -> tuple[int, Any]:
    status, body = worker.get(path)
    return status, (json.loads(body) if body else None)


def test_cart_scenario_in_event_time(env: Env) -> None:
    events, cart_id, product_id = cart_scenario(T0, "cust-a", "anon-a")
    # event time is per partition: move every partition's clock (cust-a's included)
    advance = [clock_advance(T0 + 180 + HOUR + 60, key) for key in keys_covering(4)]
    produce_events(env.bootstrap, env.prefix, [*events, *advance])
    carts = _wait_for(lambda: [t for t in env.triggers("cust-a", timeout=5)
                               if t.trigger_type == "cart_abandonment"])  # fmt: skip
    assert len(carts) == 1 and carts[0].step == 1
    assert [p.product_id for p in carts[0].products] == [product_id]
    assert carts[0].recipient == "cust-a@example.com"

    # a purchase cancels the 24 h and 48 h steps
    later = [clock_advance(T0 + 180 + h * HOUR + 60, key)
             for h in (24, 48) for key in keys_covering(4)]  # fmt: skip
    produce_events(env.bootstrap, env.prefix, [purchase(T0, 2 * HOUR, "cust-a", cart_id)])
    time.sleep(1.5)
    produce_events(env.bootstrap, env.prefix, later)
    time.sleep(4)  # two ticker rounds and more: nothing may fire
    carts = [t for t in env.triggers("cust-a", timeout=5) if t.trigger_type == "cart_abandonment"]
    assert [t.step for t in carts] == [1]

    # identity stitching: the anonymous views are in the customer's state
    status, view = _get_json(env.worker, "/customers/cust-a")
    assert status == 200
    assert product_id in [v[0] if isinstance(v, list) else v["product_id"]
                          for v in view["state"]["views"]]  # fmt: skip
    assert view["state"]["email"] == "<redacted>"
    assert view["persona_history"], "each persona change is listed with its rule"
    assert all("rule_id" in change for change in view["persona_history"])


def test_garbage_in_every_input_topic_is_dead_lettered(env: Env) -> None:
    at = datetime.fromtimestamp(T0, UTC)
    garbage = {
        "events.site": b"\x00\x00\x00\x00",  # truncated wire header
        "events.cart": b"\x07not avro at all",  # wrong magic byte
        "events.purchase": b'{"type": "Order Completed"}',  # JSON failing validation
        "events.engagement": b"\x00\xff\xff\xff\xfe" + b"\x01" * 20,  # unknown schema id
        "events.identity": b"\xff\xfe\xfd",  # invalid UTF-8, not JSON
    }
    records = []
    for i, (name, junk) in enumerate(garbage.items()):
        topic = env.topics.full(name)
        key = f"garbage-{i}".encode()
        records.append((env.topics.full("events.site"), key, _view(f"g{i}-before", at)))
        records.append((topic, key, junk))
        records.append((env.topics.full("events.site"), key, _view(f"g{i}-after", at)))
    produce_raw(env.bootstrap, records)
    dead = read_topic(env.bootstrap, env.topics.dlq, until=len(garbage), timeout=30)
    by_topic = {}
    for record in dead:  # the shared dead-letter format, as `personaflow dlq` reads it
        letter = parse_dead_letter(record.value(), record.headers())
        origin = letter.headers[H_TOPIC]
        by_topic[origin] = letter.headers[H_REASON]
        assert letter.event.payload == garbage[env.topics.catalogue_name(origin)]
        assert letter.event.original_offset == int(letter.headers[H_OFFSET])
    assert set(by_topic) == {env.topics.full(n) for n in garbage}
    assert all(reason for reason in by_topic.values())
    # every valid event around the garbage was applied
    for i in range(len(garbage)):
        status, view = _get_json(env.worker, f"/customers/garbage-{i}")
        assert status == 200, f"garbage-{i} not processed"
        viewed = {v[0] if isinstance(v, list) else v["product_id"] for v in view["state"]["views"]}
        assert viewed == {f"g{i}-before", f"g{i}-after"}


def test_operator_views(env: Env) -> None:
    status, health = _get_json(env.worker, "/healthz")
    assert status == 200 and health["status"] == "ok"
    status, ready = _get_json(env.worker, "/readyz")
    assert status == 200 and ready["partitions"] == list(range(PARTITIONS))
    status, personas = _get_json(env.worker, "/personas")
    assert status == 200 and personas["customers"] >= 1
    assert sum(personas["personas"].values()) == personas["customers"]
    status, body = env.worker.get("/metrics")
    text = body.decode()
    assert status == 200
    names = ("personaflow_events_total", "personaflow_triggers_total",
             "personaflow_table_customers", "personaflow_event_to_trigger_seconds")  # fmt: skip
    for name in names:
        assert name in text
    assert env.worker.get("/customers/nobody-here")[0] == 404


def _view(event_id: str, at: datetime) -> bytes:
    """A valid Product Viewed of visitor ``garbage-<i>`` (the key its neighbours use)."""
    product = Product(product_id=event_id, name="x", category="c", price=1.0)
    visitor = "garbage-" + event_id[1:].split("-")[0]
    event = ProductViewed(event_id=event_id, occurred_at=at, anonymous_id=visitor, product=product)
    return encode_event(event)


def _wait_for(fetch: Any, timeout: float = 40.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = fetch()
        if found:
            return found
        time.sleep(0.5)
    return fetch()

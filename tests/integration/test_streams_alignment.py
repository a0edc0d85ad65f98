"""Cross-partition ordering on the real broker: an Identify's alias request reaches the
anonymous id's partition while that partition is still behind (a backlog on another worker).

The request carries the Identify's event time and is released there only after the anonymous
id's earlier events, so the state handed over is the state at the Identify, as in replay.
Released at once (as before), it found no cart yet: the cart add was then forwarded to the
customer after their purchase and left an abandoned cart (an extra cart trigger).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from personaflow.admin import create_topics
from schemas import models as m
from streams.harness import (
    TEST_RULES,
    WorkerProcess,
    clock_advance,
    keys_covering,
    produce_events,
    purchase,
    read_topic,
    wait_committed,
)
from streams.records import KIND
from streams.replay import partition_for
from streams.topics import TopicNames
from tests.integration.test_streams_recovery import expected_triggers, live_trigger_ids

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC).timestamp()
PARTITIONS = 4
BACKLOG = 6000
"""Events on the anonymous id's partition before its cart add (in event time)."""


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0 + seconds, UTC)


def _key_on(partition: int, prefix: str, n: int = 0) -> str:
    found = [k for i in range(4000) if partition_for((k := f"{prefix}-{i}").encode(),
                                                        PARTITIONS) == partition]  # fmt: skip
    return found[n]


def _page_views(partition: int) -> list[Any]:
    """BACKLOG page views by 20 anonymous visitors keyed on ``partition``, spread over the
    first 980 s: a backlog the partition must work through."""
    others = [_key_on(partition, "bg", n) for n in range(20)]
    return [
        m.PageViewed(event_id=f"bg-{i}", occurred_at=_at(i * 980 / BACKLOG),
                     anonymous_id=others[i % len(others)])
        for i in range(BACKLOG)
    ]  # fmt: skip


def _history(anon_partition: int, customer_partition: int) -> tuple[list[Any], list[Any]]:
    """(customer's records, anonymous partition's records + clock advances), in event time."""
    anon = _key_on(anon_partition, "anon")
    customer = _key_on(customer_partition, "cust")
    shoe = m.Product(product_id="sku-1", name="shoe", category="shoes", price=50.0)
    cart_id = f"cart-{customer}"
    mine = [
        m.Identify(event_id="id", occurred_at=_at(1000), customer_id=customer,
                   anonymous_id=anon, traits=m.Traits(email="c@example.com")),
        purchase(T0, 1060, customer, cart_id),
    ]  # fmt: skip
    backlog = _page_views(anon_partition)
    backlog.append(m.ProductAdded(event_id="add", occurred_at=_at(990), anonymous_id=anon,
                                  cart_id=cart_id, product=shoe))  # fmt: skip
    later = T0 + 1000 + 3 * 3600
    backlog += [clock_advance(later, key) for key in keys_covering(PARTITIONS)]
    return mine, backlog


def _owned(workers: list[WorkerProcess], timeout: float = 60.0) -> list[set[int]]:
    """Each worker's partitions, once the two split all of them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        owned = [set(json.loads(w.get("/readyz")[1] or b"{}").get("partitions", []))
                 for w in workers]  # fmt: skip
        if all(owned) and not owned[0] & owned[1] and owned[0] | owned[1] == set(range(4)):
            return owned
        time.sleep(0.5)
    raise TimeoutError("the two workers did not split the partitions")


@contextmanager
def _two_event_workers(
    bootstrap: str, tmp_path: Path, stem: str
) -> Iterator[tuple[str, Path, list[WorkerProcess]]]:
    """Fresh topics and two ready event-clock workers on the test rules: (prefix, rules file,
    workers); the workers are stopped afterwards."""
    prefix = f"{stem}{uuid.uuid4().hex[:8]}-"
    create_topics(bootstrap, prefix, PARTITIONS, 1).raise_for_errors()
    rules = tmp_path / "rules.yaml"
    rules.write_text(TEST_RULES)
    workers = [
        WorkerProcess(
            bootstrap, prefix, f"{prefix}app", tmp_path / f"w{n}", partitions=PARTITIONS,
            clock="event", env={"PERSONAFLOW_RULES_FILE": str(rules)},
        ).start()
        for n in range(2)
    ]  # fmt: skip
    try:
        for worker in workers:
            worker.wait_ready(60)
        yield prefix, rules, workers
    finally:
        for worker in workers:
            worker.stop()


def test_an_alias_request_waits_for_a_lagging_anonymous_partition(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    with _two_event_workers(kafka_bootstrap, tmp_path, "sa") as (prefix, rules, workers):
        topics = TopicNames(prefix)
        owned = _owned(workers)
        mine, backlog = _history(min(owned[0]), min(owned[1]))
        events = sorted(mine + backlog, key=lambda e: e.occurred_at)
        expected = set(expected_triggers(events, rules))
        # the customer's partition gets its records first; the anonymous id's partition,
        # on the other worker, is still working through its backlog when the request arrives
        produce_events(kafka_bootstrap, prefix, mine)
        produce_events(kafka_bootstrap, prefix, backlog)
        wait_committed(kafka_bootstrap, f"{prefix}app", topics.inputs, PARTITIONS, len(events))
        forwarded = [
            r for r in read_topic(kafka_bootstrap, topics.rekeyed, idle=2, timeout=10)
            if (KIND, b"event") in [(k, bytes(v)) for k, v in r.headers() or []]
        ]  # fmt: skip
        assert forwarded == []  # the cart add was handed over with the state, not forwarded
        ids = live_trigger_ids(kafka_bootstrap, topics.triggers, expected, timeout=40)
        assert set(ids) == expected


def test_an_anonymous_partition_ahead_waits_for_the_customers_partition(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """The other direction: the anonymous id's partition is *ahead* (little to do) while the
    customer's partition, on the other worker, works through a backlog before the Identify.
    Without bounds across partitions the anonymous partition's clock ran past the Identify
    and its ticker fired the anonymous cart's deadline before the alias request arrived; with
    them it waits (bound records through internal.rekeyed), hands the cart over, and no tick
    for the anonymous id is ever sent (as in replay)."""
    with _two_event_workers(kafka_bootstrap, tmp_path, "sb") as (prefix, rules, workers):
        topics = TopicNames(prefix)
        owned = _owned(workers)
        anon_partition, customer_partition = min(owned[0]), min(owned[1])
        anon = _key_on(anon_partition, "anon")
        customer = _key_on(customer_partition, "cust")
        shoe = m.Product(product_id="sku-1", name="shoe", category="shoes", price=50.0)
        cart_id = f"cart-{customer}"
        backlog = _page_views(customer_partition)
        backlog += [
            m.Identify(event_id="id", occurred_at=_at(1000), customer_id=customer,
                       anonymous_id=anon, traits=m.Traits(email="c@example.com")),
            purchase(T0, 1060, customer, cart_id),
        ]  # fmt: skip
        ahead = [
            m.ProductAdded(event_id="add", occurred_at=_at(940), anonymous_id=anon,
                           cart_id=cart_id, product=shoe),
            clock_advance(T0 + 1000 + 3 * 3600, _key_on(anon_partition, "clock")),
        ]  # fmt: skip
        events = sorted(backlog + ahead, key=lambda e: e.occurred_at)
        expected = set(expected_triggers(events, rules))
        produce_events(kafka_bootstrap, prefix, ahead)  # the anonymous side has it all at once
        produce_events(kafka_bootstrap, prefix, backlog)
        wait_committed(kafka_bootstrap, f"{prefix}app", topics.inputs, PARTITIONS, len(events))
        time.sleep(2)  # a few ticker rounds after the last input
        ticks = [r.key() for r in read_topic(kafka_bootstrap, topics.ticks, idle=2, timeout=10)]
        assert anon.encode() not in ticks  # its deadline went over with the cart, as in replay
        bounds = [
            r for r in read_topic(kafka_bootstrap, topics.rekeyed, idle=2, timeout=10)
            if (KIND, b"bound") in [(k, bytes(v)) for k, v in r.headers() or []]
        ]  # fmt: skip
        assert bounds  # the partitions told each other how far they may still send
        ids = live_trigger_ids(kafka_bootstrap, topics.triggers, expected, timeout=40)
        assert set(ids) == expected

"""The worker's reads see table writes that are not persisted yet (the persist runs in the
background, every ``persist_interval_s``): a batch must not act on stale identity data."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from schemas.codec import encode_event
from schemas.models import Identify, Product, ProductViewed, Traits
from streams.clock import EventClock
from streams.core import key_partition
from streams.domain import Domain, load_domain
from streams.harness import TEST_RULES
from streams.records import KIND, InRecord
from streams.replay import MemoryTables
from streams.settings import StreamSettings
from streams.worker import StreamWorker

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
PARTITIONS = 4
SHOE = Product(product_id="sku-1", name="shoe", category="shoes", price=10.0)


@pytest.fixture(scope="module")
def domain(tmp_path_factory: pytest.TempPathFactory) -> Domain:
    rules = tmp_path_factory.mktemp("rules") / "rules.yaml"
    rules.write_text(TEST_RULES)
    return load_domain(Path(rules))


def _worker(domain: Domain, tables: MemoryTables) -> StreamWorker:
    settings = StreamSettings(align_hold_ms=0, partitions=PARTITIONS, clock="event")
    return StreamWorker(SimpleNamespace(consumer=None), settings, domain, EventClock(), tables)


def _identify(offset: int, anonymous: str) -> InRecord:
    hello = Identify(event_id=f"i{offset}", occurred_at=T0, customer_id="c1",
                     anonymous_id=anonymous, traits=Traits(email="c1@example.com"))  # fmt: skip
    partition = key_partition(b"c1", PARTITIONS) or 0
    return InRecord("events.identity", partition, offset, b"c1", encode_event(hello), 1.0)


def test_an_alias_not_persisted_yet_is_seen_by_the_next_batch(domain: Domain) -> None:
    home = key_partition(b"c1", PARTITIONS)
    anonymous = next(f"anon-{n}" for n in range(100)
                     if key_partition(f"anon-{n}".encode(), PARTITIONS) != home)  # fmt: skip
    tables = MemoryTables(domain.encode_state)
    worker = _worker(domain, tables)
    asked = worker.processor.process([_identify(0, anonymous)])
    (request,) = [o for o in asked.outputs if (KIND, b"alias") in list(o.headers)]
    partition = key_partition(request.key, PARTITIONS) or 0
    incoming = InRecord(request.topic, partition, 0, request.key, request.value, 1.0,
                        tuple(request.headers))  # fmt: skip
    answered = worker.processor.process([incoming])  # the anonymous side records the alias
    worker._remember(answered.writes)  # queued for the next persist, not in the table yet
    assert not tables.data["identity"]
    view = ProductViewed(event_id="v", occurred_at=T0, anonymous_id=anonymous, product=SHOE)
    later = InRecord("events.site", partition, 0, anonymous.encode(), encode_event(view), 1.0)
    effects = worker.processor.process([later])
    forwarded = [o for o in effects.outputs if (KIND, b"event") in list(o.headers)]
    assert [o.key for o in forwarded] == [b"c1"]  # resolved through the alias, not applied
    assert not [w for w in effects.writes if w.key == anonymous]


def test_a_state_not_persisted_yet_is_read_back_after_the_cache_lost_it(domain: Domain) -> None:
    tables = MemoryTables(domain.encode_state)
    worker = _worker(domain, tables)
    first = worker.processor.process([_identify(0, "")])
    worker._remember(first.writes)
    worker.processor.invalidate()  # e.g. evicted: the read goes to the tables
    source = _identify(1, "")
    raw = worker.reader.read("customers", "c1", source)
    assert raw is not None and tables.read("customers", "c1", source) is None
    assert domain.decode_state(raw).customer_id == "c1"

"""The worker's reads see table writes that are not persisted yet (the persist runs in the
background, every ``persist_interval_s``): a batch must not act on stale identity data."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from schemas.codec import encode_event
from schemas.models import Identify, Product, ProductViewed, Traits
from streams.clock import EventClock
from streams.core import key_partition
from streams.domain import Domain
from streams.records import KIND, InRecord
from streams.replay import MemoryTables
from streams.settings import StreamSettings
from streams.worker import StreamWorker

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
PARTITIONS = 4
SHOE = Product(product_id="sku-1", name="shoe", category="shoes", price=10.0)


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


class _Fetched:
    """A fetched message, as the batch intake hands it to the worker."""

    def __init__(self, topic: str, partition: int, offset: int, key: bytes, value: bytes,
                 headers: tuple = ()) -> None:  # fmt: skip
        self.topic, self.partition, self.offset = topic, partition, offset
        self.key, self.value, self.timestamp, self.headers = key, value, 1.0, headers


def _at(seconds: int) -> datetime:
    return datetime.fromtimestamp(T0.timestamp() + seconds, UTC)


def test_bounds_between_owned_partitions_wait_for_what_was_sent_until_it_is_fetched(
    domain: Domain,
) -> None:
    partitions = 2
    customer = next(f"c{n}" for n in range(100) if key_partition(f"c{n}".encode(), 2) == 0)
    anonymous = next(f"a{n}" for n in range(100) if key_partition(f"a{n}".encode(), 2) == 1)
    settings = StreamSettings(align_hold_ms=300, partitions=partitions, clock="event")
    tables = MemoryTables(domain.encode_state)
    worker = StreamWorker(SimpleNamespace(consumer=None), settings, domain, EventClock(), tables)
    worker._owned = frozenset({0, 1})  # both partitions on this worker: bounds in process
    hello = Identify(event_id="i", occurred_at=_at(10), customer_id=customer,
                     anonymous_id=anonymous, traits=Traits(email="c@example.com"))  # fmt: skip
    views = [ProductViewed(event_id=f"v{t}", occurred_at=_at(t), anonymous_id=anonymous,
                           product=SHOE) for t in (5, 20)]  # fmt: skip
    fetched = [
        _Fetched("events.identity", 0, 0, customer.encode(), encode_event(hello)),
        *(_Fetched("events.site", 1, i, anonymous.encode(), encode_event(v))
          for i, v in enumerate(views)),
    ]  # fmt: skip
    worker._admit(fetched)
    worker._busy_s -= 10.0  # every hold has passed: only the bounds hold records back
    released = worker._admit([])
    # partition 0's Identify at 10 may send partition 1 an alias request: the view at 20 waits
    assert sorted(r.event.event_id for r in released) == ["i", "v5"]
    effects = worker.processor.process(released)
    worker._track_sent(effects.outputs)
    (request,) = [o for o in effects.outputs if (KIND, b"alias") in list(o.headers)]
    assert worker._admit([]) == []  # sent, not fetched back yet: still held at its time
    back = _Fetched(request.topic, 1, 0, request.key, request.value, tuple(request.headers))
    order = [(r.topic, r.offset) for r in worker._admit([back])]
    assert order == [(worker.topics.rekeyed, 0), ("events.site", 1)]  # request, then the view

"""Revocation (StreamWorker.revoke, Faust's revocation callback): the table writes of revoked
partitions are persisted before the partitions go, none is written after, and records
fetched before the rebalance are not processed (the next owner reads them again)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

from schemas.codec import encode_event
from schemas.models import Identify, Product, ProductAdded, Traits
from streams.clock import EventClock
from streams.core import key_partition
from streams.domain import Domain
from streams.records import Write
from streams.replay import MemoryTables
from streams.settings import StreamSettings
from streams.worker import StreamWorker

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
PARTITIONS = 4
SHOE = Product(product_id="sku-1", name="shoe", category="shoes", price=10.0)


class _Producer:
    """Outputs are "acknowledged" at once (flush); the test looks at table writes only."""

    def __init__(self) -> None:
        self.produced: list[tuple[str, bytes | None]] = []

    def produce(self, topic: str, key: bytes | None, *_: Any) -> None:
        self.produced.append((topic, key))

    async def flush(self) -> None:
        return None


class _Tables(MemoryTables):
    """The in-memory tables, persisted like the Faust ones (``persist``), with a log of
    which keys each persist wrote and whether the partitions were revoked by then."""

    def __init__(self, domain: Domain) -> None:
        super().__init__(domain.encode_state)
        self.producer = _Producer()
        self.revoked = False
        self.log: list[tuple[bool, list[str]]] = []

    async def persist(self, writes: list[Write]) -> None:
        self.apply(writes)
        self.log.append((self.revoked, sorted(w.key for w in writes)))


class _Message:
    """A fetched message as the batch intake hands it over (Faust's ConsumerMessage)."""

    def __init__(self, offset: int, event: Any, generation_id: int) -> None:
        self.topic = "events.identity" if isinstance(event, Identify) else "events.cart"
        self.key = event.customer_id.encode()
        self.partition = key_partition(self.key, PARTITIONS) or 0
        self.offset, self.value, self.timestamp, self.headers = offset, encode_event(event), 1.0, ()
        self.generation_id = generation_id


def _worker(domain: Domain, tables: _Tables) -> StreamWorker:
    settings = StreamSettings(align_hold_ms=0, partitions=PARTITIONS, clock="event",
                              persist_interval_s=3600.0)  # fmt: skip
    consumer = SimpleNamespace(_unacked_messages=set())
    app = SimpleNamespace(consumer=consumer, consumer_generation_id=1)
    return StreamWorker(app, settings, domain, EventClock(), cast(Any, tables))


def _hello(n: int) -> Identify:
    return Identify(event_id=f"i{n}", occurred_at=T0, customer_id=f"c{n}",
                    traits=Traits(email=f"c{n}@example.com"))  # fmt: skip


def _cart(n: int) -> ProductAdded:
    return ProductAdded(event_id=f"a{n}", occurred_at=T0, customer_id=f"c{n}",
                        cart_id=f"k{n}", product=SHOE)  # fmt: skip


def _revoked(messages: list[_Message]) -> set[Any]:
    from faust.types import TP

    return {TP(m.topic, m.partition) for m in messages}


async def test_pending_writes_are_persisted_before_the_partitions_go(domain: Domain) -> None:
    tables = _Tables(domain)
    worker = _worker(domain, tables)
    fetched = [_Message(n, _hello(n), 1) for n in range(6)]
    assert await worker.handle(fetched) == []  # processed; the persist is not due yet
    assert not tables.data["customers"]
    dropped = await worker.revoke(_revoked(fetched))
    tables.revoked = True
    assert sorted(tables.data["customers"]) == [f"c{n}" for n in range(6)]
    assert not worker._pending and not worker._inflight
    # their inputs are never acknowledged here: the next owner reads them again (no-ops)
    assert {id(m) for m in dropped} == {id(m) for m in fetched}
    assert await worker.handle([]) == []
    await worker._persist()
    assert [revoked for revoked, keys in tables.log if keys] == [False]


async def test_records_fetched_before_the_rebalance_are_not_processed(domain: Domain) -> None:
    tables = _Tables(domain)
    worker = _worker(domain, tables)
    assert await worker.revoke(set()) == []  # Faust's empty revocation at start-up: no fence
    assert worker._fresh(first := [_Message(9, _hello(9), 1)]) == first
    queued = [_Message(n, _cart(n), 1) for n in range(4)]  # fetched in generation 1
    await worker.revoke(_revoked(queued))
    tables.revoked = True
    worker.app.consumer._unacked_messages.update(queued)
    assert await worker.handle(queued) == []
    await worker._persist()
    assert not tables.data["customers"] and not [keys for _, keys in tables.log if keys]
    assert not worker.app.consumer._unacked_messages  # nothing left for Faust to wait on
    # the new owner (here: this worker again, generation 2) reads them again and applies them
    worker.app.consumer_generation_id = 2
    again = [_Message(n, _cart(n), 2) for n in range(4)]
    await worker.handle(again)
    assert await worker.handle([]) == []  # persist not due yet: nothing acknowledged
    await worker._persist()
    assert {id(m) for m in await worker.handle([])} == {id(m) for m in again}
    assert sorted(tables.data["customers"]) == [f"c{n}" for n in range(4)]

"""Inputs are handed back for acknowledgement in offset order per topic-partition, even when
a later record becomes durable first (here: an earlier record parked behind its customer's
identity merge). Faust commits the first run of consecutive acknowledged offsets without
checking that the committed offset itself was acknowledged, so acknowledging the later
record first let it commit past the parked one: a crash then lost it."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

from schemas.codec import encode_event
from schemas.models import Identify, Product, ProductAdded, Traits
from streams.clock import EventClock
from streams.core import key_partition
from streams.domain import Domain
from streams.records import KIND, InRecord, OutRecord, Write
from streams.replay import MemoryTables
from streams.settings import StreamSettings
from streams.worker import StreamWorker

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
PARTITIONS = 4
SHOE = Product(product_id="sku-1", name="shoe", category="shoes", price=10.0)


class _Producer:
    """Outputs are "acknowledged" at once (flush); kept to read the alias request back."""

    def __init__(self) -> None:
        self.sent: list[OutRecord] = []

    def produce(self, topic: str, key: bytes | None, value: bytes, _: Any = None,
                headers: Any = None) -> None:  # fmt: skip
        self.sent.append(OutRecord(topic, key, value, list(headers or [])))

    async def flush(self) -> None:
        return None


class _Tables(MemoryTables):
    def __init__(self, domain: Domain) -> None:
        super().__init__(domain.encode_state)
        self.producer = _Producer()

    async def persist(self, writes: list[Write]) -> None:
        self.apply(writes)


class _Message:
    """A fetched message as the batch intake hands it over (Faust's ConsumerMessage)."""

    def __init__(self, topic: str, offset: int, key: str, value: bytes,
                 headers: tuple[tuple[str, bytes], ...] = ()) -> None:  # fmt: skip
        self.topic, self.offset, self.key, self.value = topic, offset, key.encode(), value
        self.partition = key_partition(self.key, PARTITIONS) or 0
        self.timestamp, self.headers, self.generation_id = 1.0, headers, 1

    def __repr__(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


def _same_partition(key: str, prefix: str, other: bool = False) -> str:
    home = key_partition(key.encode(), PARTITIONS)
    names = (f"{prefix}{n}" for n in range(1000))
    return next(n for n in names if (key_partition(n.encode(), PARTITIONS) == home) != other)


def _cart(customer: str, offset: int) -> _Message:
    add = ProductAdded(event_id=f"a-{customer}", occurred_at=T0, customer_id=customer,
                       cart_id=f"k-{customer}", product=SHOE)  # fmt: skip
    return _Message("events.cart", offset, customer, encode_event(add))


async def test_a_later_record_is_not_acknowledged_before_an_earlier_parked_one(
    domain: Domain,
) -> None:
    customer = "c1"
    anonymous = _same_partition(customer, "anon-", other=True)
    neighbour = _same_partition(customer, "d")  # another customer on the same partition
    settings = StreamSettings(align_hold_ms=0, partitions=PARTITIONS, clock="event",
                              persist_interval_s=3600.0)  # fmt: skip
    app = SimpleNamespace(consumer=SimpleNamespace(_unacked_messages=set()),
                          consumer_generation_id=1)  # fmt: skip
    tables = _Tables(domain)
    worker = StreamWorker(app, settings, domain, EventClock(), cast(Any, tables))
    hello = Identify(event_id="i", occurred_at=T0, customer_id=customer, anonymous_id=anonymous,
                     traits=Traits(email="c1@example.com"))  # fmt: skip
    identify = _Message("events.identity", 0, customer, encode_event(hello))
    await worker.handle([identify])  # asks the anonymous side for its state: c1 now waits
    parked, later = _cart(customer, 0), _cart(neighbour, 1)
    await worker.handle([parked, later])  # c1's cart add is parked, the neighbour's applied
    await worker._persist()
    acked = await worker.handle([])
    assert acked == [identify]  # not the neighbour's offset 1 while offset 0 is outstanding

    # the anonymous side answers (no state): the parked record is applied, then both go
    answer = _answer(tables, worker, customer)
    await worker.handle([answer])
    await worker._persist()
    assert _lanes(await worker.handle([])) == _lanes([parked, later, answer])
    state = domain.decode_state(tables.data["customers"][customer])
    assert state.customer_id == customer


def _lanes(tokens: list[Any]) -> dict[tuple[str, int], list[int]]:
    """The offsets handed back per topic-partition, in the order given (the order between
    topic-partitions is not part of the contract: Faust commits each on its own)."""
    lanes: dict[tuple[str, int], list[int]] = {}
    for token in tokens:
        lanes.setdefault((token.topic, token.partition), []).append(token.offset)
    return lanes


def _answer(tables: _Tables, worker: StreamWorker, customer: str) -> _Message:
    """The anonymous side's (empty) merge answer to the alias request the Identify sent."""
    (request,) = [o for o in tables.producer.sent if (KIND, b"alias") in o.headers]
    incoming = InRecord(request.topic, key_partition(request.key, PARTITIONS) or 0, 0,
                        request.key, request.value, 1.0, tuple(request.headers))  # fmt: skip
    effects = worker.processor.process([incoming])
    (merge,) = [o for o in effects.outputs if (KIND, b"merge") in o.headers]
    assert merge.key == customer.encode()
    return _Message("internal.rekeyed", 0, customer, merge.value, tuple(merge.headers))


def test_a_partition_without_an_event_clock_yet_keeps_its_due_customers(domain: Domain) -> None:
    settings = StreamSettings(align_hold_ms=300, partitions=PARTITIONS, clock="event")
    app = SimpleNamespace(consumer=None)
    worker = StreamWorker(app, settings, domain, EventClock(), cast(Any, _Tables(domain)))
    worker.index.update("early", 0, 100.0, None)
    worker.index.update("waiting", 1, 100.0, None)
    worker._released_at[0] = 200.0  # partition 1 has not released (or restored) a clock yet
    owned = frozenset({0, 1})
    assert worker.index.pop_due_within(worker._tick_limits(owned, 0.0), 0.0, 10.0) == [
        ("early", 100.0)
    ]
    worker._released_at[1] = 150.0
    assert worker.index.pop_due_within(worker._tick_limits(owned, 0.0), 1.0, 10.0) == [
        ("waiting", 100.0)
    ]

"""The batch processor, without a broker: dead letters, re-keying, idempotency, ticks."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.codec import decode_event, encode_event
from schemas.models import Identify, Product, ProductAdded, ProductViewed, Traits
from streams.clock import EventClock
from streams.core import CustomerProcessor
from streams.domain import Domain
from streams.records import KIND, ORIGIN, InRecord
from streams.replay import MemoryTables
from streams.topics import TopicNames
from streams.wire import dumps

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
SHOE = Product(product_id="sku-1", name="shoe", category="shoes", price=10.0)


def _processor(domain: Domain, tables: MemoryTables | None = None) -> CustomerProcessor:
    return CustomerProcessor(
        domain, TopicNames("p-"), EventClock(), tables or MemoryTables(domain.encode_state)
    )


def _rec(topic: str, offset: int, key: str, value: bytes, **kw) -> InRecord:
    return InRecord(f"p-{topic}", 0, offset, key.encode(), value, 1.0, **kw)


def _added(customer: str, n: int = 0) -> bytes:
    event = ProductAdded(event_id=f"{customer}-{n}", occurred_at=T0, customer_id=customer,
                         cart_id="k", product=SHOE)  # fmt: skip
    return encode_event(event)


def test_garbage_is_dead_lettered_with_its_reason_and_the_batch_goes_on(domain: Domain) -> None:
    tables = MemoryTables(domain.encode_state)
    proc = _processor(domain, tables)
    effects = proc.process([
        _rec("events.cart", 0, "c1", _added("c1")),
        _rec("events.cart", 1, "c1", b"\x00\x00garbage"),
        _rec("events.cart", 2, "c2", _added("c2")),
    ])  # fmt: skip
    dead = [o for o in effects.outputs if o.topic == "p-dlq.events"]
    assert len(dead) == 1
    headers = dict(dead[0].headers)
    assert any("reason" in k and v for k, v in headers.items())
    assert {w.key for w in effects.writes if w.space == "customers"} == {"c1", "c2"}
    assert effects.tally.dead_letters == {"events.cart": 1}


def test_the_same_record_twice_changes_nothing(domain: Domain) -> None:
    tables = MemoryTables(domain.encode_state)
    proc = _processor(domain, tables)
    first = proc.process([_rec("events.cart", 7, "c1", _added("c1"))])
    tables.apply(first.writes)
    proc.invalidate()
    again = proc.process([_rec("events.cart", 7, "c1", _added("c1"))])
    assert first.writes and not again.writes
    assert not [o for o in again.outputs if o.topic != "p-dlq.events"]


def test_an_event_not_keyed_by_its_customer_is_forwarded_through_rekeyed(domain: Domain) -> None:
    proc = _processor(domain)
    effects = proc.process([_rec("events.cart", 3, "someone-else", _added("c9"))])
    (out,) = effects.outputs
    assert out.topic == "p-internal.rekeyed" and out.key == b"c9"
    headers = dict(out.headers)
    assert headers[KIND] == b"event" and headers[ORIGIN] == b"p-events.cart/0/3"
    assert not effects.writes


def test_a_forwarded_event_applies_under_its_original_offset(domain: Domain) -> None:
    tables = MemoryTables(domain.encode_state)
    proc = _processor(domain, tables)
    headers = ((KIND, b"event"), (ORIGIN, b"p-events.cart/2/40"))
    one = proc.process([_rec("internal.rekeyed", 0, "c9", _added("c9"), headers=headers)])
    tables.apply(one.writes)
    # the same original record forwarded a second time (a crash before commit) is a no-op
    two = proc.process([_rec("internal.rekeyed", 1, "c9", _added("c9"), headers=headers)])
    assert one.writes and not two.writes
    state = domain.decode_state(tables.data["customers"]["c9"])
    assert state.watermarks == {"events.cart:2": 40}


def test_anonymous_events_after_an_alias_go_to_the_customer(domain: Domain) -> None:
    tables = MemoryTables(domain.encode_state)
    tables.data["identity"]["a:anon-7"] = b"cust-7"
    proc = _processor(domain, tables)
    view = ProductViewed(event_id="v", occurred_at=T0, anonymous_id="anon-7", product=SHOE)
    (out,) = proc.process([_rec("events.site", 0, "anon-7", encode_event(view))]).outputs
    assert out.topic == "p-internal.rekeyed" and out.key == b"cust-7"


def test_a_tick_fires_the_due_cart_reminder(domain: Domain) -> None:
    tables = MemoryTables(domain.encode_state)
    proc = _processor(domain, tables)
    hello = Identify(event_id="i", occurred_at=T0, customer_id="c1",
                     traits=Traits(email="c1@example.com"))  # fmt: skip
    records = [_rec("events.identity", 0, "c1", encode_event(hello)),
               _rec("events.cart", 0, "c1", _added("c1"))]  # fmt: skip
    tables.apply(proc.process(records).writes)
    due = proc.index.due_for("c1")
    assert due is not None
    tick = dumps({"now": due + 1, "due": due})
    effects = proc.process([_rec("internal.ticks", 0, "c1", tick)])
    triggers = [decode_event(o.value) for o in effects.outputs if o.topic == "p-triggers.email"]
    assert [t.trigger_type for t in triggers] == ["cart_abandonment"]
    assert effects.tally.deadline_lag and effects.tally.deadline_lag[0] >= 0


def test_an_engine_failure_dead_letters_the_record(domain: Domain) -> None:
    class Broken:
        def __getattr__(self, name: str):
            return getattr(domain.engine, name)

        def apply(self, *args, **kwargs):
            raise ZeroDivisionError("boom")

    broken = Domain(Broken(), domain.encode_state, domain.decode_state, domain.input_ref)
    effects = _processor(broken).process([_rec("events.cart", 0, "c1", _added("c1"))])
    (dead,) = effects.outputs
    assert dead.topic == "p-dlq.events"
    assert b"ZeroDivisionError" in dict(dead.headers).get("x-dlq-reason", b"") or any(
        b"ZeroDivisionError" in v for _, v in dead.headers
    )


def _round_trip(proc: CustomerProcessor, effects, offset: int) -> list:
    """The processor's own internal.rekeyed outputs, read back as the next records."""
    return [
        InRecord("p-internal.rekeyed", 0, offset + i, o.key, o.value, 1.0, tuple(o.headers))
        for i, o in enumerate(effects.outputs) if o.topic == "p-internal.rekeyed"
    ]  # fmt: skip


def test_events_after_an_identify_wait_for_the_merge_answer(domain: Domain) -> None:
    tables = MemoryTables(domain.encode_state)
    proc = _processor(domain, tables)
    view = ProductViewed(event_id="v", occurred_at=T0, anonymous_id="anon-1", product=SHOE)
    first = proc.process([_rec("events.site", 0, "anon-1", encode_event(view))])
    tables.apply(first.writes)
    hello = Identify(event_id="i", occurred_at=T0, customer_id="c1", anonymous_id="anon-1",
                     traits=Traits(email="c1@example.com"))  # fmt: skip
    later = _rec("events.cart", 0, "c1", _added("c1"))
    asked = proc.process([_rec("events.identity", 0, "c1", encode_event(hello)), later])
    tables.apply(asked.writes)
    assert [r.offset for r in asked.done] == [0] and later not in asked.done  # parked
    (request,) = _round_trip(proc, asked, 0)
    answered = proc.process([request])  # the anonymous side hands its state over
    tables.apply(answered.writes)
    assert not tables.data["customers"].get("anon-1")
    (merge,) = _round_trip(proc, answered, 1)
    resumed = proc.process([merge])
    tables.apply(resumed.writes)
    assert resumed.done == [merge, later]  # the parked event runs right after the merge
    state = domain.decode_state(tables.data["customers"]["c1"])
    assert "sku-1" in str(state.views) and "k" in state.carts


def test_an_identify_without_anonymous_history_gets_an_empty_answer(domain: Domain) -> None:
    proc = _processor(domain)
    hello = Identify(event_id="i", occurred_at=T0, customer_id="c2", anonymous_id="anon-2",
                     traits=Traits(email="c2@example.com"))  # fmt: skip
    later = _rec("events.cart", 0, "c2", _added("c2"))
    asked = proc.process([_rec("events.identity", 0, "c2", encode_event(hello)), later])
    (request,) = _round_trip(proc, asked, 0)
    (answer,) = _round_trip(proc, proc.process([request]), 1)
    assert answer.value == b""
    assert proc.process([answer]).done == [answer, later]
    assert len(proc.parking) == 0


def test_a_forwarded_anonymous_event_applies_to_its_key_without_resolving_again(
    domain: Domain,
) -> None:
    # the alias anon-5 -> c5 lives on the anonymous id's partition, not on c5's
    tables = MemoryTables(domain.encode_state)
    proc = _processor(domain, tables)
    view = ProductViewed(event_id="v5", occurred_at=T0, anonymous_id="anon-5", product=SHOE)
    headers = ((KIND, b"event"), (ORIGIN, b"p-events.site/1/9"))
    record = _rec("internal.rekeyed", 0, "c5", encode_event(view), headers=headers)
    effects = proc.process([record])
    assert not [o for o in effects.outputs if o.topic == "p-internal.rekeyed"]
    assert [w.key for w in effects.writes if w.space == "customers"] == ["c5"]


# ---------------------------------------------------------------- internal records in process

PARTS = 4


def _keys(same: bool) -> tuple[str, str]:
    """An anonymous id and a customer id on the same partition (or on different ones)."""
    from streams.replay import partition_for

    anon = "anon-local"
    home = partition_for(anon.encode(), PARTS)
    for n in range(1000):
        customer = f"cust-{n}"
        if (partition_for(customer.encode(), PARTS) == home) == same:
            return anon, customer
    raise AssertionError("no such key")


def _on(partition_of: str, topic: str, offset: int, key: str, value: bytes) -> InRecord:
    from streams.replay import partition_for

    partition = partition_for(partition_of.encode(), PARTS)
    return InRecord(f"p-{topic}", partition, offset, key.encode(), value, 1.0)


def _story(anon: str, customer: str) -> list[InRecord]:
    """Anonymous view and cart add, then the Identify, then the customer's next view."""
    view = ProductViewed(event_id="v", occurred_at=T0, anonymous_id=anon, product=SHOE)
    add = ProductAdded(event_id="a", occurred_at=T0, anonymous_id=anon, cart_id="k",
                       product=SHOE)  # fmt: skip
    hello = Identify(event_id="i", occurred_at=T0, customer_id=customer, anonymous_id=anon,
                     traits=Traits(email="x@example.com"))  # fmt: skip
    again = ProductViewed(event_id="v2", occurred_at=T0, customer_id=customer, product=SHOE)
    return [
        _on(anon, "events.site", 0, anon, encode_event(view)),
        _on(anon, "events.cart", 0, anon, encode_event(add)),
        _on(customer, "events.identity", 0, customer, encode_event(hello)),
        _on(customer, "events.site", 1, customer, encode_event(again)),
    ]


def test_an_alias_request_carries_the_event_time_of_its_identify(domain: Domain) -> None:
    from streams.align import header_time
    from streams.records import TIME

    anon, customer = _keys(same=False)
    effects = _processor(domain).process(_story(anon, customer)[2:3])
    (request,) = [o for o in effects.outputs if o.topic == "p-internal.rekeyed"]
    assert dict(request.headers)[KIND] == b"alias"
    assert header_time(request.headers, TIME) == T0.timestamp()


def test_internal_records_for_the_same_partition_are_handled_in_process(domain: Domain) -> None:
    anon, customer = _keys(same=True)
    records = _story(anon, customer)
    tables = MemoryTables(domain.encode_state)
    proc = CustomerProcessor(domain, TopicNames("p-"), EventClock(), tables, partitions=PARTS)
    effects = proc.process(records)
    tables.apply(effects.writes)
    # alias request and merge answer never left the process; nothing stays parked, and only
    # consumed records are acknowledged
    assert not [o for o in effects.outputs if o.topic == "p-internal.rekeyed"]
    assert effects.done == records and len(proc.parking) == 0
    state = domain.decode_state(tables.data["customers"][customer])
    assert "k" in state.carts and anon not in tables.data["customers"]
    # the same as the round trip through the topic, as replay does it
    assert tables.data["customers"] == _through_the_topic(domain, records)


def _through_the_topic(domain: Domain, records: list[InRecord]) -> dict[str, bytes]:
    tables = MemoryTables(domain.encode_state)
    proc = _processor(domain, tables)
    queue = list(records)
    offset = 0
    while queue:
        effects = proc.process([queue.pop(0)])
        tables.apply(effects.writes)
        for out in effects.outputs:
            if out.topic == "p-internal.rekeyed":
                from streams.replay import partition_for

                partition = partition_for(out.key or b"", PARTS)
                queue.insert(0, InRecord(out.topic, partition, offset, out.key, out.value, 1.0,
                                         tuple(out.headers)))  # fmt: skip
                offset += 1
    return tables.data["customers"]


def test_a_forward_to_the_same_partition_applies_in_process(domain: Domain) -> None:
    anon, customer = _keys(same=True)
    tables = MemoryTables(domain.encode_state)
    tables.data["identity"][f"a:{anon}"] = customer.encode()
    proc = CustomerProcessor(domain, TopicNames("p-"), EventClock(), tables, partitions=PARTS)
    record = _story(anon, customer)[1]  # the anonymous cart add, after the alias is known
    effects = proc.process([record])
    assert not [o for o in effects.outputs if o.topic == "p-internal.rekeyed"]
    assert effects.done == [record]
    (write,) = [w for w in effects.writes if w.space == "customers"]
    assert write.key == customer and write.source.partition == record.partition
    tables.apply(effects.writes)
    state = domain.decode_state(tables.data["customers"][customer])
    # applied under its original reference (input topic, partition, offset)
    ((source, offset),) = state.watermarks.items()
    assert source.startswith(f"events.cart:{record.partition}") and offset == 0


def test_internal_records_for_another_partition_go_through_the_topic(domain: Domain) -> None:
    anon, customer = _keys(same=False)
    tables = MemoryTables(domain.encode_state)
    tables.data["identity"][f"a:{anon}"] = customer.encode()
    proc = CustomerProcessor(domain, TopicNames("p-"), EventClock(), tables, partitions=PARTS)
    (out,) = proc.process([_story(anon, customer)[1]]).outputs
    assert out.topic == "p-internal.rekeyed" and out.key == customer.encode()

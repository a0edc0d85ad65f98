"""Dead-letter re-publish against the real broker: a bad event is dead-lettered the way the
workers do it (decode error -> ``schemas.deadletter`` record on dlq.events), inspected, fixed
and re-published; a consumer group of the original topic then reads it exactly once, and a
second re-publish is refused.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from confluent_kafka import Consumer, Producer

from personaflow import dlq
from personaflow.kafka import consumer_config, producer_config
from schemas.codec import decode_event, encode_event, encode_json
from schemas.deadletter import dead_letter_for, dead_letter_record
from schemas.errors import DecodeError
from schemas.models import Product, ProductAdded, ProductViewed

AT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _produce(producer: Producer, topic: str, value: bytes, key: bytes | None, headers=None):
    """Produce one record and wait until the broker has it."""
    errors = []
    producer.produce(topic, value=value, key=key, headers=headers or [],
                     on_delivery=lambda err, _msg: errors.append(err))  # fmt: skip
    assert producer.flush(10) == 0 and errors == [None]


def _consume(consumer: Consumer, want: int, timeout: float = 20.0, settle: float = 1.0):
    """Poll until ``want`` records came, then keep polling ``settle`` s to catch extras."""
    got, deadline, settle_end = [], time.monotonic() + timeout, None
    while time.monotonic() < (settle_end or deadline):
        message = consumer.poll(0.2)
        if message is not None and message.error() is None:
            got.append(message)
        if len(got) >= want and settle_end is None:
            settle_end = time.monotonic() + settle
    consumer.commit(asynchronous=False) if got else None
    return got


def _group_consumer(bootstrap: str, group: str, topic: str) -> Consumer:
    consumer = Consumer(consumer_config(bootstrap, group, **{"session.timeout.ms": 3000}))
    consumer.subscribe([topic])
    return consumer


def _dead_letter_like_a_worker(producer: Producer, message, dlq_topic: str) -> DecodeError:
    try:
        decode_event(message.value())
    except DecodeError as exc:
        value, headers = dead_letter_for(
            exc, message.topic(), message.partition(), message.offset(), message.key()
        )
        _produce(producer, dlq_topic, value, message.key(), headers)
        return exc
    raise AssertionError("the bad event decoded")


def _added(customer: str) -> ProductAdded:
    return ProductAdded(
        event_id=f"e-{customer}",
        occurred_at=AT,
        customer_id=customer,
        cart_id="cart-1",
        product=Product(product_id="p-1", price=10.0),
    )


@pytest.fixture
def topics(make_topics, unique):
    return make_topics(unique)


@pytest.fixture(scope="module")
def producer(kafka_bootstrap):
    """One producer for the module (creating one costs about half a second)."""
    producer = Producer(producer_config(kafka_bootstrap))
    yield producer
    producer.flush(5)


def test_bad_event_fixed_and_republished_is_read_once(kafka_bootstrap, producer, topics, unique):
    cart, dlq_events = topics["events.cart"], topics["dlq.events"]
    good = _added("cust-7")
    bad_json = encode_json(good).replace(b'"cart_id":"cart-1"', b'"cart_id":7')
    _produce(producer, cart, b"\x00\x00\x00\x00\x01garbage", b"cust-7")
    consumer = _group_consumer(kafka_bootstrap, f"{unique}worker", cart)
    try:
        [bad] = _consume(consumer, 1)
        error = _dead_letter_like_a_worker(producer, bad, dlq_events)

        snapshot = dlq.read_dlq(kafka_bootstrap, dlq_events)
        [letter] = snapshot.letters
        assert letter.reason == error.reason and letter.error_type == type(error).__name__
        assert (letter.original_topic, letter.original_partition, letter.original_offset) == (
            cart, bad.partition(), bad.offset())  # fmt: skip
        assert letter.payload == bad.value() and letter.key == b"cust-7"
        assert not snapshot.is_republished(letter)

        with pytest.raises(dlq.InvalidFix):  # a fix must pass the contract
            dlq.republish(kafka_bootstrap, dlq_events, ref=str(letter.ref), fix_json=bad_json)
        report = dlq.republish(
            kafka_bootstrap, dlq_events, ref=str(letter.ref), fix_json=encode_json(good)
        )
        assert [target for _, target in report.republished] == [cart] and report.fixed

        [again] = _consume(consumer, 1)
        assert decode_event(again.value()) == good
        assert again.key() == b"cust-7" and again.partition() == bad.partition()
        assert dict(again.headers())[dlq.HEADER_REPUBLISHED_FROM] == letter.source_id.encode()

        with pytest.raises(dlq.AlreadyRepublished):
            dlq.republish(kafka_bootstrap, dlq_events, ref=str(letter.ref))
        bulk = dlq.republish(kafka_bootstrap, dlq_events)
        assert bulk.republished == [] and [why for _, why in bulk.skipped] == [
            "already re-published"
        ]
        assert _consume(consumer, 0, timeout=0, settle=1.5) == []
        assert dlq.read_dlq(kafka_bootstrap, dlq_events).is_republished(letter)
    finally:
        consumer.close()


def test_bulk_republish_by_reason_keeps_same_partition_and_bytes(
    kafka_bootstrap, producer, topics, unique
):
    site, dlq_events = topics["events.site"], topics["dlq.events"]
    customers = [f"cust-{n}" for n in range(6)]
    originals = {}
    for n, customer in enumerate(customers):
        event = ProductViewed(event_id=f"v{n}", occurred_at=AT, customer_id=customer,
                              product=Product(product_id=f"p{n}"))  # fmt: skip
        _produce(producer, site, encode_event(event), customer.encode())
        originals[customer.encode()] = event
    consumer = _group_consumer(kafka_bootstrap, f"{unique}worker", site)
    try:
        first = _consume(consumer, len(customers))
        assert len(first) == len(customers)
        for n, message in enumerate(first):  # processing failed: half transient, half not
            reason = "state store unavailable" if n % 2 else "rule evaluation failed"
            value, headers = dead_letter_record(
                message.value(), reason, "ProcessingError", message.topic(),
                message.partition(), message.offset(), message.key())  # fmt: skip
            _produce(producer, dlq_events, value, message.key(), headers)
        where = {m.key(): m.partition() for m in first}

        dry = dlq.republish(kafka_bootstrap, dlq_events, where_reason="STORE", dry_run=True)
        assert len(dry.republished) == 3 and dry.dry_run
        report = dlq.republish(kafka_bootstrap, dlq_events, where_reason="STORE")
        assert len(report.republished) == 3
        assert all(letter.reason == "state store unavailable" for letter, _ in report.republished)

        again = _consume(consumer, 3)
        assert len(again) == 3
        for message in again:
            assert message.partition() == where[message.key()]  # same key -> same partition
            assert decode_event(message.value()) == originals[message.key()]
        assert len(dlq.republish(kafka_bootstrap, dlq_events, where_reason="store").skipped) == 3
    finally:
        consumer.close()


def test_truncated_and_originless_letters_are_not_republished(kafka_bootstrap, producer, topics):
    dlq_events = topics["dlq.events"]
    value, headers = dead_letter_record(b"x" * 300, "too large", "PayloadTooLarge",
                                        topics["events.site"], 0, 1, b"k",
                                        max_payload_bytes=100)  # fmt: skip
    _produce(producer, dlq_events, value, b"k", headers)
    value, headers = dead_letter_record(b"{}", "no origin", "InvalidJson")
    _produce(producer, dlq_events, value, None, headers)
    snapshot = dlq.read_dlq(kafka_bootstrap, dlq_events)
    truncated = next(letter for letter in snapshot.letters if letter.truncated)
    assert truncated.size == 100
    with pytest.raises(dlq.NotRepublishable):
        dlq.republish(kafka_bootstrap, dlq_events, ref=str(truncated.ref))
    report = dlq.republish(kafka_bootstrap, dlq_events)
    assert report.republished == [] and len(report.skipped) == 2


def _contract_breaking_avro(event) -> bytes:
    """Valid Avro (wire format) of ``event`` with an empty cart id: Avro accepts it, the
    contract does not (what a buggy producer without our models would write)."""
    import io

    from fastavro import schemaless_writer

    from schemas.codec import decode_raw
    from schemas.registry import current_schema

    header = encode_event(event)[:5]
    _name, record = decode_raw(encode_event(event))
    body = io.BytesIO()
    schemaless_writer(body, current_schema(event.type), {**record, "cart_id": ""})
    return header + body.getvalue()


def test_payload_text_gives_editable_json_or_safe_text():
    from schemas.codec import decode_json

    good = _added("cust-3")
    assert decode_json(dlq.payload_text(encode_event(good))) == good
    broken = dlq.payload_text(_contract_breaking_avro(good))
    with pytest.raises(DecodeError, match="cart_id"):
        decode_json(broken)  # the JSON shows the field to fix...
    fixed = broken.replace('"cart_id":""', '"cart_id":"cart-1"')
    assert decode_json(fixed) == good  # ...and is the event once fixed
    assert dlq.payload_text(b'{"a": 1}') == '{"a": 1}'
    assert dlq.payload_text(b"\xff\x00") == "0xff00"


def test_concurrent_republishers_write_once(kafka_bootstrap, producer, topics, unique):
    """Two operators re-publish the same dead letter at the same time: the later run fences
    the earlier one (same transactional id), so the event reaches its topic once."""
    site, dlq_events = topics["events.site"], topics["dlq.events"]
    raw = encode_event(_added("cust-8"))
    value, headers = dead_letter_record(raw, "state store unavailable", "ProcessingError",
                                        site, 0, 3, b"cust-8")  # fmt: skip
    _produce(producer, dlq_events, value, b"cust-8", headers)
    tid = f"{unique}republish"
    first = dlq.Republisher(kafka_bootstrap, transactional_id=tid)
    first.open()
    plan_first = dlq.plan_republish(dlq.read_dlq(kafka_bootstrap, dlq_events))
    second = dlq.Republisher(kafka_bootstrap, transactional_id=tid)
    second.open()  # fences `first`
    plan_second = dlq.plan_republish(dlq.read_dlq(kafka_bootstrap, dlq_events))
    assert len(plan_first.todo) == len(plan_second.todo) == 1  # both think it is pending
    assert len(second.write(plan_second, None)) == 1
    with pytest.raises(dlq.DlqKafkaError):
        first.write(plan_first, None)
    first.close()
    second.close()
    consumer = _group_consumer(kafka_bootstrap, f"{unique}reader", site)
    try:
        assert [m.value() for m in _consume(consumer, 1)] == [raw]
    finally:
        consumer.close()
    assert dlq.plan_republish(dlq.read_dlq(kafka_bootstrap, dlq_events)).todo == []

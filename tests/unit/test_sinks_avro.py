"""The sink's generated Avro code (sinks.avro, sinks.codec): the same records and bytes as
fastavro / schemas.codec, and every bad input reported by the validating path as before."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from fastavro import schemaless_reader, schemaless_writer
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codec import decode_event, decode_raw, encode_event
from schemas.errors import DecodeError
from schemas.models import EVENT_TYPES, Product, SendOutcome, SendResult, Trigger
from schemas.registry import current_schema
from schemas.samples import sample_events
from sinks.avro import compile_reader, compile_writer
from sinks.codec import decode_trigger, decode_trigger_fast, encode_fast, trigger_from_record
from sinks.processor import _now_millis, _send_result

NAMES = sorted(EVENT_TYPES)


@pytest.mark.parametrize("event_type", NAMES)
def test_generated_code_covers_every_contract(event_type: str) -> None:
    schema = current_schema(event_type)
    assert compile_reader(schema) is not None and compile_writer(schema) is not None


@pytest.mark.parametrize("event_type", sorted(sample_events()))
def test_generated_code_reads_and_writes_what_fastavro_does(event_type: str) -> None:
    event = sample_events()[event_type]
    schema = current_schema(event_type)
    body = io.BytesIO()
    schemaless_writer(body, schema, event.model_dump())
    expected = body.getvalue()
    write, read = compile_writer(schema), compile_reader(schema)
    assert write is not None and read is not None
    assert write(event) == expected
    assert write(event.model_dump()) == expected
    record, end = read(expected, 0)
    assert end == len(expected)
    fast = schemaless_reader(io.BytesIO(expected), schema, None)
    assert record == fast and list(record) == list(fast)
    assert encode_fast(event) == encode_event(event)


_text = st.text(max_size=30)
_opt = st.none() | _text
_times = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)
_products = st.lists(
    st.builds(
        Product,
        product_id=st.text(min_size=1, max_size=12),
        sku=_opt,
        name=_text,
        brand=_opt,
        price=st.floats(min_value=0, allow_nan=False, allow_infinity=False, width=64),
        quantity=st.integers(min_value=0, max_value=2**63 - 1),
        url=_opt,
    ),
    max_size=300,  # past one varint byte of item count
)


@st.composite
def triggers(draw: st.DrawFn) -> Trigger:
    created = draw(_times)
    return Trigger(
        trigger_id=draw(st.text(min_size=1, max_size=80)),
        customer_id=draw(st.text(min_size=1, max_size=20)),
        trigger_type=draw(st.sampled_from(["cart_abandonment", "welcome", "x" * 70])),
        rule_id="r",
        step=draw(st.integers(min_value=-(2**63), max_value=2**63 - 1)),
        created_at=created,
        not_before=draw(st.none() | _times),
        expires_at=created + timedelta(days=1),
        recipient=draw(_opt),
        persona=draw(_opt),
        tokens=draw(st.dictionaries(_text, st.text(max_size=200), max_size=70)),
        products=draw(_products),
        marketing=draw(st.booleans()),
        holdout=draw(st.booleans()),
    )


@settings(max_examples=150, deadline=None)
@given(trigger=triggers())
def test_any_trigger_round_trips_like_the_validating_decoder(trigger: Trigger) -> None:
    raw = encode_event(trigger)
    assert encode_fast(trigger) == raw
    assert decode_trigger_fast(raw) == decode_event(raw) == trigger


def _fastavro_path(raw: bytes) -> Trigger:
    """The sink's fast decode as it was before the generated reader (fastavro's dict)."""
    return trigger_from_record(raw, *decode_raw(raw))


def _outcome(decode: Callable[[bytes], Trigger], raw: bytes) -> object:
    try:
        return decode(raw)
    except DecodeError as exc:
        return type(exc), exc.reason


def _error(raw: bytes) -> tuple[type, str]:
    with pytest.raises(DecodeError) as info:
        decode_trigger(raw)
    return type(info.value), info.value.reason


@settings(max_examples=200, deadline=None)
@given(trigger=triggers(), cut=st.integers(min_value=0), flip=st.integers(min_value=0),
       extra=st.binary(min_size=1, max_size=4))
def test_damaged_bytes_give_what_the_fastavro_path_gives(
    trigger: Trigger, cut: int, flip: int, extra: bytes
) -> None:
    raw = encode_event(trigger)
    truncated = raw[: cut % len(raw)]
    flipped = bytearray(raw)
    flipped[flip % len(raw)] ^= 0xFF
    for bad in (truncated, raw + extra, bytes(flipped)):
        assert _outcome(decode_trigger_fast, bad) == _outcome(_fastavro_path, bad)


def test_invalid_utf8_and_unknown_schema_ids_are_reported_as_before() -> None:
    trigger = sample_events()["Trigger"]
    assert isinstance(trigger, Trigger)
    raw = bytearray(encode_event(trigger))
    raw[raw.index(trigger.trigger_id.encode())] = 0xFF  # not UTF-8
    with pytest.raises(DecodeError) as info:
        decode_trigger_fast(bytes(raw))
    assert (type(info.value), info.value.reason) == _error(bytes(raw))
    unknown = b"\x00\x00\x00\xff\xff" + bytes(raw[5:])
    with pytest.raises(DecodeError) as info:
        decode_trigger_fast(unknown)
    assert (type(info.value), info.value.reason) == _error(unknown)


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydantic on serialising the bad values
def test_a_value_fastavro_refuses_falls_back_to_its_error() -> None:
    result = sample_events()["Send Result"]
    broken = result.model_copy(update={"outcome": "not-an-outcome", "attempts": "three"})
    with pytest.raises(Exception) as slow:
        encode_event(broken)
    with pytest.raises(type(slow.value)):
        encode_fast(broken)


@pytest.mark.parametrize("outcome", list(SendOutcome))
def test_send_results_built_without_validation_equal_validated_ones(outcome: SendOutcome) -> None:
    values = {
        "type": "Send Result", "trigger_id": "t-1", "customer_id": "c-1",
        "trigger_type": "welcome", "outcome": outcome, "reason": None, "esp": "http",
        "esp_message_id": "m.1", "persona": "loyal", "variant": None, "attempts": 2,
        "at": _now_millis(), "schema_version": 1,
    }
    fast, validated = _send_result(dict(values)), SendResult(**values)
    assert fast == validated and fast.model_fields_set == validated.model_fields_set
    assert encode_fast(fast) == encode_event(validated)
    assert _now_millis().microsecond % 1000 == 0
    with pytest.raises(ValueError):
        _send_result({**values, "trigger_id": ""})

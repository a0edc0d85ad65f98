"""The generated Avro code (schemas/avrocode.py) reads and writes exactly as fastavro does.

Properties, over every contract: on valid bytes the generated reader returns fastavro's value
(same types); on damaged bytes the codec's answer (value or typed error) is the one fastavro
alone would give; the generated writer gives fastavro's bytes, and the codec falls back to
fastavro for a value the writer does not take.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.avrocode import _EPOCH as EPOCH
from schemas.avrocode import Reader, Writer, _read_varint, compile_reader, compile_writer
from schemas.avrocode import _as_datetime as timestamp_millis
from schemas.codec import HEADER_SIZE, Codec, _read_body
from schemas.errors import DecodeError, EncodeError
from schemas.models import EVENT_TYPES
from schemas.registry import FileRegistry, current_schema
from tests.unit.decoding import damage, same
from tests.unit.strategies import model_strategy

CODEC = Codec(FileRegistry())
TYPES = sorted(EVENT_TYPES)
_SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large]


def _fastavro(raw: bytes, schema: Any) -> Any:
    return schemaless_reader(io.BytesIO(raw[HEADER_SIZE:]), schema, None)


def _plan(raw: bytes) -> Any:
    schema_id = int.from_bytes(raw[1:HEADER_SIZE], "big")
    return CODEC._plans.get(schema_id) or CODEC._plan(schema_id, raw)


@pytest.mark.parametrize("event_type", TYPES)
def test_every_contract_compiles(event_type: str) -> None:
    assert compile_reader(current_schema(event_type)) is not None


@pytest.mark.parametrize("event_type", TYPES)
@settings(max_examples=20, deadline=None, suppress_health_check=_SLOW)
@given(data=st.data())
def test_compiled_reader_returns_what_fastavro_returns(event_type: str, data: Any) -> None:
    raw = CODEC.encode(data.draw(model_strategy(EVENT_TYPES[event_type])))
    value, end = _compiled(event_type)[0](raw, HEADER_SIZE)
    assert end == len(raw)
    assert same(value, _fastavro(raw, current_schema(event_type)))


@cache
def _compiled(event_type: str) -> tuple[Reader, Writer]:
    """The generated reader and writer of a contract, compiled once (not per example;
    test_every_contract_compiles checks each contract compiles)."""
    schema = current_schema(event_type)
    reader, writer = compile_reader(schema), compile_writer(schema)
    assert reader is not None and writer is not None
    return reader, writer


@pytest.mark.parametrize("event_type", TYPES)
@settings(max_examples=30, deadline=None, suppress_health_check=_SLOW)
@given(data=st.data())
def test_damaged_bytes_are_never_read_differently(event_type: str, data: Any) -> None:
    """Flip, cut or insert bytes: the codec answers exactly as fastavro alone would (the same
    record, or a DecodeError of the same type and reason)."""
    raw = CODEC.encode(data.draw(model_strategy(EVENT_TYPES[event_type])))
    damaged = damage(raw, data)
    plan = _plan(damaged)
    reference = plan.__class__(plan.event_type, plan.writer, plan.reader)
    reference.fast = None  # fastavro only
    assert _outcome(lambda: _read_body(damaged, plan)) == _outcome(
        lambda: _read_body(damaged, reference)
    )


@pytest.mark.parametrize("event_type", TYPES)
@settings(max_examples=20, deadline=None, suppress_health_check=_SLOW)
@given(data=st.data())
def test_generated_writer_writes_fastavros_bytes(event_type: str, data: Any) -> None:
    event = data.draw(model_strategy(EVENT_TYPES[event_type]))
    schema = current_schema(event_type)
    expected = io.BytesIO()
    schemaless_writer(expected, schema, event.model_dump())
    assert _compiled(event_type)[1](event) == expected.getvalue()
    assert CODEC.encode(event)[HEADER_SIZE:] == expected.getvalue()


def test_a_value_the_writer_refuses_is_left_to_fastavro() -> None:
    """A model built without validation can hold what Avro cannot take: the codec's answer is
    fastavro's (an EncodeError naming the event type), never a wrong body."""
    from schemas.samples import sample_events

    event = sample_events()["Products Searched"].model_copy(update={"schema_version": 2**70})
    with pytest.raises(EncodeError, match="Products Searched"):
        CODEC.encode(event)
    int_for_double = sample_events()["Order Completed"].model_copy(update={"revenue": 12})
    assert CODEC.decode(CODEC.encode(int_for_double)).revenue == 12.0  # type: ignore[attr-defined]


def _outcome(read: Any) -> Any:
    try:
        return ("ok", read())
    except DecodeError as exc:
        return ("error", type(exc).__name__, str(exc))


def test_a_schema_with_an_uncompiled_construct_is_left_to_fastavro() -> None:
    schema = parse_schema({
        "type": "record", "name": "Money", "fields": [
            {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal",
                                        "precision": 10, "scale": 2}},
        ],
    })  # fmt: skip
    assert compile_reader(schema) is None
    fixed = parse_schema({
        "type": "record", "name": "Hash", "fields": [
            {"name": "digest", "type": {"type": "fixed", "name": "md5", "size": 16}}],
    })  # fmt: skip
    assert compile_reader(fixed) is None


def test_records_maps_arrays_enums_and_named_references() -> None:
    schema = parse_schema({
        "type": "record", "name": "Outer", "fields": [
            {"name": "inner", "type": {"type": "record", "name": "Inner", "fields": [
                {"name": "flag", "type": "boolean"}, {"name": "ratio", "type": "float"}]}},
            {"name": "again", "type": ["null", "Inner"]},
            {"name": "tags", "type": {"type": "map", "values": "long"}},
            {"name": "kinds", "type": {"type": "array",
                                       "items": {"type": "enum", "name": "K",
                                                 "symbols": ["a", "b"]}}},
            {"name": "blob", "type": "bytes"},
            {"name": "either", "type": ["null", "long", "string"]},
        ],
    })  # fmt: skip
    out = io.BytesIO()
    out.write(b"\0\0\0\0\0")
    record = {"inner": {"flag": True, "ratio": 0.5}, "again": {"flag": False, "ratio": 2.0},
              "tags": {"x": -3, "y": 2**40}, "kinds": ["b", "a", "b"], "blob": b"\x00\xff",
              "either": "s"}  # fmt: skip
    schemaless_writer(out, schema, record)
    raw = out.getvalue()
    value, end = compile_reader(schema)(raw, HEADER_SIZE)  # type: ignore[misc]
    assert end == len(raw)
    assert same(value, _fastavro(raw, schema))
    assert value["tags"] == {"x": -3, "y": 2**40} and value["kinds"] == ["b", "a", "b"]
    assert compile_writer(schema) is None  # a union of three types: left to fastavro
    del schema["fields"][-1], record["either"]
    out = io.BytesIO()
    schemaless_writer(out, schema, record)
    writer = compile_writer(schema)
    assert writer is not None and writer(record) == out.getvalue()


@given(st.integers(min_value=-(2**45), max_value=2**45))
def test_timestamps_equal_fastavros_arithmetic(ms: int) -> None:
    assert timestamp_millis(ms) == EPOCH + timedelta(milliseconds=ms)
    assert timestamp_millis(ms).tzinfo is UTC


def test_timestamp_fast_range_ends_where_microseconds_stay_exact() -> None:
    last = 2**32 * 1000 - 1
    assert timestamp_millis(last) == datetime(2106, 2, 7, 6, 28, 15, 999000, tzinfo=UTC)


def test_a_huge_block_count_is_refused_without_looping_over_it() -> None:
    """An array whose block claims 2**40 items in a 30-byte payload: a typed error at once."""
    from fastavro import schemaless_writer as write

    schema = parse_schema({"type": "record", "name": "L", "fields": [
        {"name": "items", "type": {"type": "array", "items": "string"}}]})  # fmt: skip
    out = io.BytesIO()
    write(out, schema, {"items": ["a"]})
    count = (2**40) << 1  # zig-zag
    varint = bytearray()
    while count >= 0x80:
        varint.append((count & 0x7F) | 0x80)
        count >>= 7
    varint.append(count)
    damaged = b"\0\0\0\0\0" + bytes(varint) + out.getvalue()[1:]
    with pytest.raises(ValueError, match="block count"):
        compile_reader(schema)(damaged, HEADER_SIZE)  # type: ignore[misc]


def test_a_varint_beyond_64_bits_is_left_to_fastavro() -> None:
    """fastavro wraps a 10-byte varint whose value passes 64 bits; the generated reader
    refuses it, so the codec's fallback (fastavro) reads the record and both answer alike
    (found by the damaged-bytes property test: a Send Result's ``attempts``)."""
    with pytest.raises(ValueError, match="beyond 64 bits"):
        _read_varint(bytes([0xFF] * 9 + [0x7F]), 0)
    assert _read_varint(bytes([0xFF] * 9 + [0x01]), 0) == (-(2**63), 10)  # the 64-bit edge

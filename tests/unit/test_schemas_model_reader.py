"""The generated reader that builds event models while reading (Codec.decode_fast's fast path).

Properties, over every contract: on valid bytes it returns exactly what the dict path returns
(``model_from_raw`` over fastavro's dict: the same models, enums, nested models, field order,
fields set); on damaged bytes ``decode_fast`` answers exactly as that path does over fastavro
alone (the same model, or a DecodeError of the same type and reason).
"""

from __future__ import annotations

import io
from functools import cache
from typing import Any

import pytest
from fastavro import schemaless_reader
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from schemas.avrocode import Reader, compile_reader
from schemas.codec import HEADER_SIZE, Codec
from schemas.construct import event_models, model_from_raw
from schemas.errors import DecodeError
from schemas.models import EVENT_TYPES
from schemas.registry import FileRegistry, current_schema
from tests.unit.decoding import damage, planned_codec, same
from tests.unit.strategies import model_strategy

TYPES = sorted(EVENT_TYPES)
_SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large]


def _codec() -> Codec:
    return Codec(FileRegistry())


def _by_dict(raw: bytes, event_type: str) -> BaseModel:
    """The reference: fastavro's dict, then model_from_raw."""
    record = schemaless_reader(io.BytesIO(raw[HEADER_SIZE:]), current_schema(event_type), None)
    return model_from_raw(event_type, record)  # type: ignore[arg-type]


@pytest.mark.parametrize("event_type", TYPES)
def test_every_contract_compiles_a_model_reader(event_type: str) -> None:
    reader = compile_reader(current_schema(event_type), event_models(event_type))
    assert reader is not None


@pytest.mark.parametrize("event_type", TYPES)
@settings(max_examples=25, deadline=None, suppress_health_check=_SLOW)
@given(data=st.data())
def test_model_reader_builds_what_the_dict_path_builds(event_type: str, data: Any) -> None:
    codec = planned_codec(event_type)  # the plan's model reader reads below
    raw = codec.encode(data.draw(model_strategy(EVENT_TYPES[event_type])))
    event, end = _model_reader(event_type)(raw, HEADER_SIZE)
    assert end == len(raw)
    reference = _by_dict(raw, event_type)
    assert same(event, reference)
    assert same(codec.decode_fast(raw), reference)
    assert same(planned_codec(event_type, ("fast",)).decode_fast(raw), reference)  # dict path


@cache
def _model_reader(event_type: str) -> Reader:
    """Compiled once per contract (checked by test_every_contract_compiles_a_model_reader)."""
    reader = compile_reader(current_schema(event_type), event_models(event_type))
    assert reader is not None
    return reader


def _outcome(read: Any) -> Any:
    try:
        event = read()
    except DecodeError as exc:
        return ("error", type(exc).__name__, str(exc))
    return ("ok", type(event).__name__, event.model_dump())


@pytest.mark.parametrize("event_type", TYPES)
@settings(max_examples=30, deadline=None, suppress_health_check=_SLOW)
@given(data=st.data())
def test_damaged_bytes_decode_as_fastavro_alone_decodes_them(event_type: str, data: Any) -> None:
    """Flip, cut or insert bytes: ``decode_fast`` gives the model or the typed error that
    the dict path gives with fastavro alone reading the body."""
    fast = planned_codec(event_type)  # the model reader is used below
    raw = fast.encode(data.draw(model_strategy(EVENT_TYPES[event_type])))
    damaged = damage(raw, data)
    slow = planned_codec(event_type, ())  # no generated reader: fastavro alone
    assert _outcome(lambda: fast.decode_fast(damaged)) == _outcome(
        lambda: slow.decode_fast(damaged)
    )


def test_decode_fast_takes_the_model_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    """A clean record never goes through the dict, the first of its schema id included."""
    from schemas.samples import sample_events

    codec = _codec()
    event = sample_events()["Order Completed"]
    raw = codec.encode(event)

    def no_dict(data: Any) -> Any:
        raise AssertionError("decode_raw called")

    monkeypatch.setattr(codec, "decode_raw", no_dict)
    first = codec.decode_fast(raw)
    again = codec.decode_fast(raw)
    assert again == first == event
    assert type(again.products[0]) is type(event.products[0])  # type: ignore[attr-defined]


def test_a_record_without_identity_is_refused_on_the_model_path() -> None:
    from schemas.errors import MissingIdentity
    from schemas.samples import sample_events

    codec = _codec()
    event = sample_events()["Product Viewed"]
    codec.decode_fast(codec.encode(event))  # plan made
    nobody = event.model_copy(update={"customer_id": None, "anonymous_id": None})
    with pytest.raises(MissingIdentity):
        codec.decode_fast(codec.encode(nobody))


def test_long_strings_and_non_canonical_varints_read_as_fastavro_reads_them() -> None:
    """The generated reader reads one-byte lengths and union indexes inline; a string of 64
    bytes or more (two-byte length) and a union index written in two bytes (valid Avro,
    never written by our encoders) take the general path, with fastavro's result."""
    from fastavro import parse_schema

    schema = parse_schema({"type": "record", "name": "R", "fields": [
        {"name": "s", "type": "string"},
        {"name": "o", "type": ["null", "string"]},
    ]})  # fmt: skip
    reader = compile_reader(schema)
    assert reader is not None
    long_text = "x" * 200
    canonical = io.BytesIO()
    from fastavro import schemaless_writer

    schemaless_writer(canonical, schema, {"s": long_text, "o": "yes"})
    body = canonical.getvalue()
    head = len(body) - 5  # the union index byte (0x02), then "yes"'s length and 3 bytes
    assert body[head] == 2
    variants = [body, body[:head] + b"\x82\x00" + body[head + 1 :]]
    for raw in variants:
        expected = schemaless_reader(io.BytesIO(raw), schema, None)
        assert reader(raw, 0) == (expected, len(raw))
        assert expected == {"s": long_text, "o": "yes"}


def test_a_worker_decoding_plain_records_builds_only_the_plain_reader() -> None:
    """A stream worker decodes plain records only: of a schema's three generated readers
    (dict, model, plain) it builds the plain one alone, on the schema id's first record (the
    other two took ~340 of the ~390 ms a worker's first batches spent building readers for 20
    event types). Another path builds its reader on its own first use, and reads the same."""
    from schemas.samples import sample_events

    codec = _codec()
    event = sample_events()["Order Completed"]
    raw = codec.encode(event)
    plain = codec.decode_plain(raw)
    plan = codec._plans[int.from_bytes(raw[1:HEADER_SIZE], "big")]
    assert {"fast", "model", "plain"} & set(vars(plan)) == {"plain"}
    assert codec.decode_fast(raw) == event
    assert codec.decode_raw(raw)[1]["order_id"] == plain.order_id  # type: ignore[attr-defined]
    assert {"fast", "model", "plain"} <= set(vars(plan))


def test_an_unknown_schema_id_is_looked_up_once_and_named() -> None:
    """A record of a schema id the registry does not know: one lookup, and the same typed
    error from every decode path (the plan is made on the first record, not twice)."""
    from schemas.errors import DecodeError

    codec = _codec()
    lookups: list[int] = []
    writer = codec.registry.writer

    def counted(schema_id: int) -> Any:
        lookups.append(schema_id)
        return writer(schema_id)

    codec.registry.writer = counted  # type: ignore[method-assign]
    raw = bytes([0]) + (987_654).to_bytes(4, "big") + b"\x02x"
    errors = []
    for decode in (codec.decode_plain, codec.decode_fast, codec.decode_raw):
        with pytest.raises(DecodeError) as caught:
            decode(raw)
        errors.append((type(caught.value), str(caught.value)))
        assert lookups.count(987_654) == len(errors)  # one lookup per decode
    assert len(set(errors)) == 1

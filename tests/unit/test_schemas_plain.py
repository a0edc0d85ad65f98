"""Plain, read-only event records (schemas/plain.py) and the codec's decode_plain.

Properties, over every contract: on valid bytes ``decode_plain`` gives, field by field with
the same types, the model ``decode_fast`` gives (on the plain reader, and on the dict path a
record takes when its schema has no generated reader); on damaged bytes it gives the same
typed error (or the same values); a plain record encodes to the model's bytes.
"""

from __future__ import annotations

import typing
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from schemas.avrocode import compile_reader
from schemas.codec import Codec
from schemas.errors import DecodeError, MissingIdentity
from schemas.models import EVENT_TYPES, Envelope, ProductViewed
from schemas.plain import (
    PlainEvent,
    PlainRecord,
    linked_anonymous_id,
    plain_class,
    plain_models,
    to_plain,
)
from schemas.registry import FileRegistry, current_schema
from schemas.samples import sample_events
from tests.unit.decoding import damage, planned_codec, same, same_plain
from tests.unit.strategies import model_strategy

TYPES = sorted(EVENT_TYPES)
_SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large]


def _codec() -> Codec:
    return Codec(FileRegistry())


@pytest.mark.parametrize("event_type", TYPES)
def test_every_contract_compiles_a_plain_reader(event_type: str) -> None:
    assert compile_reader(current_schema(event_type), plain_models(event_type)) is not None


@pytest.mark.parametrize("event_type", TYPES)
@settings(max_examples=25, deadline=None, suppress_health_check=_SLOW)
@given(data=st.data())
def test_decode_plain_holds_what_decode_fast_builds(event_type: str, data: Any) -> None:
    codec = planned_codec(event_type)
    model = data.draw(model_strategy(EVENT_TYPES[event_type]))
    raw = codec.encode(model)
    # the dict path (a plan without the plain reader: a schema with no generated reader)
    first = planned_codec(event_type, ("fast",)).decode_plain(raw)
    again = codec.decode_plain(raw)  # then the plain reader
    reference = codec.decode_fast(raw)
    assert same_plain(first, reference)
    assert same_plain(again, reference)
    assert first == again
    assert isinstance(again, PlainEvent) == issubclass(EVENT_TYPES[event_type], Envelope)
    assert codec.encode(again) == raw  # the same bytes as the model's
    assert same(again.as_dict(), reference.model_dump())
    assert same_plain(to_plain(model), model)


def _outcome(read: Any) -> Any:
    try:
        event = read()
    except DecodeError as exc:
        return ("error", type(exc).__name__, str(exc))
    values = event.as_dict() if isinstance(event, PlainRecord) else event.model_dump()
    return ("ok", event.type, values)


@pytest.mark.parametrize("event_type", TYPES)
@settings(max_examples=30, deadline=None, suppress_health_check=_SLOW)
@given(data=st.data())
def test_damaged_bytes_give_what_decode_fast_gives(event_type: str, data: Any) -> None:
    codec = planned_codec(event_type)  # plan made: the plain and model readers are used below
    raw = codec.encode(data.draw(model_strategy(EVENT_TYPES[event_type])))
    damaged = damage(raw, data)
    assert _outcome(lambda: codec.decode_plain(damaged)) == _outcome(
        lambda: codec.decode_fast(damaged)
    )


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_give_what_decode_fast_gives(data: bytes) -> None:
    codec = _codec()
    assert _outcome(lambda: codec.decode_plain(data)) == _outcome(lambda: codec.decode_fast(data))


def test_decode_plain_takes_the_plain_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    codec = _codec()
    event = sample_events()["Order Completed"]
    raw = codec.encode(event)
    first = codec.decode_plain(raw)

    def no_dict(data: Any) -> Any:
        raise AssertionError("decode_raw called")

    monkeypatch.setattr(codec, "decode_raw", no_dict)
    again: Any = codec.decode_plain(raw)
    assert again == first
    assert same_plain(again, event)
    assert type(again.products[0]) is plain_class(type(event.products[0]))


def test_a_record_without_identity_is_refused() -> None:
    codec = _codec()
    event = sample_events()["Product Viewed"]
    codec.decode_plain(codec.encode(event))  # plan made
    nobody = event.model_copy(update={"customer_id": None, "anonymous_id": ""})
    raw = codec.encode(nobody)
    with pytest.raises(MissingIdentity) as info:
        codec.decode_plain(raw)
    assert info.value.raw == raw


def _view() -> PlainRecord:
    event = ProductViewed.model_validate({
        "event_id": "e1", "occurred_at": datetime(2026, 1, 2, tzinfo=UTC),
        "received_at": datetime(2026, 1, 2, tzinfo=UTC),  # else "now": two calls could differ
        "anonymous_id": "a1", "product": {"product_id": "p1", "category": "shoes"},
    })  # fmt: skip
    return to_plain(event)


def test_plain_records_are_read_only_compared_by_value_and_readable() -> None:
    view: Any = _view()
    with pytest.raises(AttributeError):
        view.event_id = "e2"
    with pytest.raises(AttributeError):
        del view.source
    with pytest.raises(AttributeError):
        view.product.category = "hats"
    with pytest.raises(AttributeError):
        view.extra = 1
    assert view == _view() and hash(view) == hash(_view())
    assert view != to_plain(ProductViewed.model_validate({**view.as_dict(), "event_id": "e2"}))
    assert view != view.product and view.product == _view().product
    assert repr(view).startswith("PlainProductViewed(event_id='e1', occurred_at=")
    assert "product=PlainProduct(product_id='p1'" in repr(view)
    assert view.key == "a1" and view.type == "Product Viewed"
    assert isinstance(view, PlainEvent) and view.model is ProductViewed


def test_plain_event_annotations_are_envelope_fields_of_the_same_types() -> None:
    """PlainEvent declares (for typing) only fields every input model has, with the model's
    types; a new envelope field needs no declaration there."""
    hints = typing.get_type_hints(PlainEvent)
    assert hints["occurred_ts"] is float  # derived (occurred_at in epoch seconds), not a field
    declared = {k: v for k, v in hints.items() if k not in ("model", "fields", "occurred_ts")}
    envelope = {name: info.annotation for name, info in Envelope.model_fields.items()}
    for name, hint in declared.items():
        if name == "type":
            for cls in EVENT_TYPES.values():
                if issubclass(cls, Envelope):
                    args = typing.get_args(cls.model_fields["type"].annotation)
                    assert all(isinstance(a, str) for a in args)
            continue
        assert envelope[name] == hint, name


def test_every_model_field_is_a_slot_of_its_plain_class() -> None:
    for model in [*EVENT_TYPES.values(), *_nested()]:
        cls = plain_class(model)
        assert cls.fields == tuple(model.model_fields)
        assert cls.__slots__ == cls.fields  # type: ignore[attr-defined]
        assert not hasattr(cls.__new__(cls), "__dict__")  # slots only


def _nested() -> list[type[BaseModel]]:
    from schemas.models import Product, Traits

    return [Product, Traits]


def test_linked_anonymous_id_of_identify_and_alias_only() -> None:
    samples = sample_events()
    identify = to_plain(samples["Identify"].model_copy(update={"anonymous_id": "anon-1"}))
    alias = to_plain(samples["Alias"])
    assert isinstance(identify, PlainEvent) and isinstance(alias, PlainEvent)
    assert linked_anonymous_id(identify) == "anon-1"
    assert linked_anonymous_id(alias) == samples["Alias"].previous_id  # type: ignore[attr-defined]
    view = _view()
    assert isinstance(view, PlainEvent) and linked_anonymous_id(view) is None

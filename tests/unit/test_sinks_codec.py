"""The sink's unvalidated fast paths: triggers decoded without pydantic equal validated ones,
Send Results built without validation equal validated ones (and encode to the same bytes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codec import decode_event, encode_event
from schemas.models import Product, SendOutcome, SendResult, Trigger
from sinks.codec import decode_trigger_fast
from sinks.processor import _now_millis, _send_result

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
    assert decode_trigger_fast(raw) == decode_event(raw) == trigger


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
    assert encode_event(fast) == encode_event(validated)
    assert _now_millis().microsecond % 1000 == 0
    with pytest.raises(ValueError):
        _send_result({**values, "trigger_id": ""})

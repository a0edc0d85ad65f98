"""Trigger (de)serialisation for the sink, on top of :mod:`schemas.codec`.

Triggers arrive in the Confluent Avro wire format; a JSON object (first byte ``{``) is
accepted too, validated the same way. Anything that is not a valid Trigger raises a
:class:`schemas.errors.DecodeError` (not retriable) and goes to dlq.sends.

:func:`decode_trigger_fast` is the sink's hot path: the Avro read
(:func:`schemas.codec.decode_raw`, the contracts' generated reader) already checked every
type, so the model is built without pydantic (:func:`schemas.construct.model_from_raw`, as the
stream workers do); the rules Avro cannot express that the sink relies on (non-empty ids of at most
512 characters) are checked here, and a record that breaks one is decoded again the slow,
validating way, which raises the same :class:`DecodeError` as before.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from schemas.codec import decode_event, decode_json, decode_raw, encode_event
from schemas.construct import model_from_raw
from schemas.errors import DecodeError, ValidationFailed
from schemas.models import Trigger


def decode_trigger(raw: bytes | None) -> Trigger:
    """The Trigger in ``raw`` (Avro wire format or JSON)."""
    event = decode_json(raw) if raw and raw[:1] == b"{" else decode_event(raw)
    if not isinstance(event, Trigger):
        raise ValidationFailed(f"expected a Trigger, got {type(event).__name__}", raw or b"")
    return event


_IDS = ("trigger_id", "customer_id", "trigger_type", "rule_id")
"""Trigger fields that must be non-empty strings of at most 512 characters."""


def decode_trigger_fast(raw: bytes | None) -> Trigger:
    """:func:`decode_trigger` without re-validating what Avro checked (see the module docs)."""
    if not raw or raw[:1] == b"{":
        return decode_trigger(raw)
    return trigger_from_record(raw, *decode_raw(raw))


def trigger_from_record(raw: bytes, event_type: str, record: dict[str, Any]) -> Trigger:
    """The Trigger of an Avro-decoded ``record`` (of ``raw``), unvalidated but for the ids."""
    if event_type != "Trigger" or not all(
        isinstance(v := record.get(name), str) and 0 < len(v) <= 512 for name in _IDS
    ):
        return decode_trigger(raw)  # raises the validating decoder's error
    trigger = model_from_raw(event_type, record)
    assert isinstance(trigger, Trigger)
    return trigger


def encode_trigger(trigger: Trigger) -> bytes:
    """Avro wire-format bytes of ``trigger``."""
    return encode_event(trigger)


def with_not_before(trigger: Trigger, due: float) -> Trigger:
    """A copy of ``trigger`` to be sent no earlier than ``due`` (epoch seconds)."""
    when = datetime.fromtimestamp(due, UTC)
    when = when.replace(microsecond=(when.microsecond // 1000) * 1000)
    return trigger.model_copy(update={"not_before": when})


__all__ = [
    "DecodeError", "decode_trigger", "decode_trigger_fast", "encode_trigger",
    "trigger_from_record", "with_not_before",
]

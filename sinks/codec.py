"""Trigger (de)serialisation for the sink, on top of :mod:`schemas.codec`.

Triggers arrive in the Confluent Avro wire format; a JSON object (first byte ``{``) is
accepted too, validated the same way. Anything that is not a valid Trigger raises a
:class:`schemas.errors.DecodeError` (not retriable) and goes to dlq.sends.
"""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.codec import decode_event, decode_json, encode_event
from schemas.errors import DecodeError, ValidationFailed
from schemas.models import Trigger


def decode_trigger(raw: bytes | None) -> Trigger:
    """The Trigger in ``raw`` (Avro wire format or JSON)."""
    event = decode_json(raw) if raw and raw[:1] == b"{" else decode_event(raw)
    if not isinstance(event, Trigger):
        raise ValidationFailed(f"expected a Trigger, got {type(event).__name__}", raw or b"")
    return event


def encode_trigger(trigger: Trigger) -> bytes:
    """Avro wire-format bytes of ``trigger``."""
    return encode_event(trigger)


def with_not_before(trigger: Trigger, due: float) -> Trigger:
    """A copy of ``trigger`` to be sent no earlier than ``due`` (epoch seconds)."""
    when = datetime.fromtimestamp(due, UTC)
    when = when.replace(microsecond=(when.microsecond // 1000) * 1000)
    return trigger.model_copy(update={"not_before": when})


__all__ = ["DecodeError", "decode_trigger", "encode_trigger", "with_not_before"]

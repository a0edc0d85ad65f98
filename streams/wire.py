"""Bytes in and out of the workers: decoding inputs, encoding outputs, dead-letter records.

A thin adapter over :mod:`schemas.codec` (Avro in the Confluent wire format, JSON accepted at
the edges) and :mod:`schemas.deadletter`. Input payloads starting with ``{`` are read as JSON,
everything else as wire-format Avro through the codec's fast path; either way the worker gets
the event's plain record (:mod:`schemas.plain`).
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel

from schemas import codec
from schemas.deadletter import dead_letter_record
from schemas.errors import DecodeError, ValidationFailed
from schemas.plain import PlainEvent, PlainRecord, to_plain

Headers = list[tuple[str, bytes]]


def decode_input(data: bytes | None) -> PlainEvent:
    """The input event in ``data`` as a plain, read-only record (:mod:`schemas.plain`: the
    engine reads it as it reads the model, without pydantic's attribute hook); raises
    :class:`schemas.errors.DecodeError` (typed reason)."""
    raw = data or b""
    event: PlainRecord
    if raw[:1] == b"{":
        event = to_plain(codec.decode_json(raw))  # validated at the edge, then plain
    else:
        event = codec.default_codec().decode_plain(raw)
    if not isinstance(event, PlainEvent):
        kind = getattr(event, "type", type(event).__name__)
        raise ValidationFailed(f"type: {kind} is not an input event", raw)
    return event


def encode_output(event: BaseModel) -> bytes:
    """Wire-format bytes of an output event (Persona Transition, Trigger)."""
    return codec.encode_event(event)


def dead_letter(
    raw: bytes,
    reason: str,
    error_type: str,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
) -> tuple[bytes, Headers]:
    """Value and headers of a dead-letter record: the shared codec
    (:func:`schemas.deadletter.dead_letter_record`, Avro ``DeadLetter`` plus ``x-dlq-*`` and
    ``x-original-*`` headers), so ``personaflow dlq list/republish`` reads the worker's."""
    return dead_letter_record(raw, reason, error_type, topic, partition, offset, key)


def dumps(obj: Any) -> bytes:
    """Compact JSON of an internal record (ticks, alias requests)."""
    return orjson.dumps(obj)


def loads(data: bytes | None) -> Any:
    """Parse an internal JSON record; raises :class:`DecodeError` when it is not JSON."""
    try:
        return orjson.loads(data or b"")
    except orjson.JSONDecodeError as exc:
        raise DecodeError("internal record is not JSON", data or b"") from exc

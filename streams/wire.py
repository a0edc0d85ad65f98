"""Bytes in and out of the workers: decoding inputs, encoding outputs, dead-letter records.

A thin adapter over :mod:`schemas.codec` (Avro in the Confluent wire format, JSON accepted at
the edges) and :mod:`schemas.deadletter`. Input payloads starting with ``{`` are read as JSON,
everything else as wire-format Avro through the codec's fast path.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel

from schemas import codec
from schemas.deadletter import dead_letter_record
from schemas.errors import DecodeError, ValidationFailed
from schemas.models import Envelope

Headers = list[tuple[str, bytes]]


def decode_input(data: bytes | None) -> Envelope:
    """The input event in ``data``; raises :class:`schemas.errors.DecodeError` (typed reason)."""
    raw = data or b""
    event = codec.decode_json(raw) if raw[:1] == b"{" else codec.default_codec().decode_fast(raw)
    if not isinstance(event, Envelope):
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

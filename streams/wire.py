"""Bytes in and out of the workers: decoding inputs, encoding outputs, dead-letter records.

A thin adapter over :mod:`schemas.codec` (Avro in the Confluent wire format, JSON accepted at
the edges) and :mod:`schemas.deadletter`. Input payloads starting with ``{`` are read as JSON,
everything else as wire-format Avro through the codec's fast path.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel

from schemas import codec
from schemas.errors import DecodeError, ValidationFailed
from schemas.models import DeadLetter, Envelope

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
    """Value and headers of a dead-letter record (``schemas.deadletter`` when available)."""
    try:
        from schemas.deadletter import dead_letter_record
    except ImportError:  # the schemas area may not ship it yet: same fields, JSON body
        return _fallback_dead_letter(raw, reason, error_type, topic, partition, offset, key)
    value, headers = dead_letter_record(raw, reason, error_type, topic, partition, offset, key)
    return value, [(str(k), bytes(v)) for k, v in headers]


def _fallback_dead_letter(
    raw: bytes,
    reason: str,
    error_type: str,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
) -> tuple[bytes, Headers]:
    letter = DeadLetter(
        reason=reason or "unknown",
        error_type=error_type or "Error",
        original_topic=topic,
        original_partition=partition,
        original_offset=offset,
        original_key=key,
        payload=raw,
        at=datetime.now(UTC),
    )
    headers: Headers = [
        ("x-dlq-reason", reason.encode()),
        ("x-dlq-error-type", error_type.encode()),
        ("x-dlq-topic", topic.encode()),
        ("x-dlq-partition", str(partition).encode()),
        ("x-dlq-offset", str(offset).encode()),
    ]
    return letter.model_dump_json().encode(), headers


def dumps(obj: Any) -> bytes:
    """Compact JSON of an internal record (ticks, alias requests)."""
    return orjson.dumps(obj)


def loads(data: bytes | None) -> Any:
    """Parse an internal JSON record; raises :class:`DecodeError` when it is not JSON."""
    try:
        return orjson.loads(data or b"")
    except orjson.JSONDecodeError as exc:
        raise DecodeError("internal record is not JSON", data or b"") from exc

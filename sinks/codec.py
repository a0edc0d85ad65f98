"""Trigger (de)serialisation for the sink, on top of :mod:`schemas.codec`.

Triggers arrive in the Confluent Avro wire format; a JSON object (first byte ``{``) is
accepted too, validated the same way. Anything that is not a valid Trigger raises a
:class:`schemas.errors.DecodeError` (not retriable) and goes to dlq.sends.

:func:`decode_trigger_fast` is the sink's hot path: fastavro already checked every type, so
the model is built without pydantic (:func:`schemas.construct.model_from_raw`, as the stream
workers do); the rules Avro cannot express that the sink relies on (non-empty ids of at most
512 characters) are checked here, and a record that breaks one is decoded again the slow,
validating way, which raises the same :class:`DecodeError` as before. The Avro body itself is
read by code generated for the Trigger schema (:mod:`sinks.avro`, 2-3x fastavro's speed) when
the record's writer schema is the current one; anything it does not read cleanly (bad bytes,
another schema version) takes the fastavro path above.

:func:`encode_fast` writes events (Send Results, deferred triggers) with generated code too:
the same bytes as :func:`schemas.codec.encode_event`, which it falls back to on anything odd.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastavro.schema import to_parsing_canonical_form
from pydantic import BaseModel

from schemas.codec import (
    HEADER_SIZE,
    MAGIC_BYTE,
    Codec,
    decode_event,
    decode_json,
    decode_raw,
    default_codec,
    encode_event,
)
from schemas.construct import model_from_raw
from schemas.errors import DecodeError, ValidationFailed
from schemas.models import Trigger
from schemas.registry import current_schema
from sinks.avro import Reader, Writer, compile_reader, compile_writer


def decode_trigger(raw: bytes | None) -> Trigger:
    """The Trigger in ``raw`` (Avro wire format or JSON)."""
    event = decode_json(raw) if raw and raw[:1] == b"{" else decode_event(raw)
    if not isinstance(event, Trigger):
        raise ValidationFailed(f"expected a Trigger, got {type(event).__name__}", raw or b"")
    return event


_IDS = ("trigger_id", "customer_id", "trigger_type", "rule_id")
"""Trigger fields that must be non-empty strings of at most 512 characters."""


class _Generated:
    """Generated readers (per schema id) and writers (per event type) for one codec (the
    process-wide one: its registry gives the schema ids)."""

    def __init__(self, codec: Codec) -> None:
        self.codec = codec
        self.readers: dict[int, tuple[str, Reader] | None] = {}
        self.writers: dict[str, tuple[bytes, Writer] | None] = {}

    def reader(self, schema_id: int) -> tuple[str, Reader] | None:
        if schema_id in self.readers:
            return self.readers[schema_id]
        writer = self.codec.registry.writer(schema_id)  # unknown ids raise: not cached
        found = None
        same = to_parsing_canonical_form(writer.parsed) == to_parsing_canonical_form(
            current_schema(writer.event_type)
        )
        if same and (read := compile_reader(writer.parsed)) is not None:
            found = (writer.event_type, read)
        self.readers[schema_id] = found
        return found

    def writer(self, event_type: str) -> tuple[bytes, Writer] | None:
        if event_type in self.writers:
            return self.writers[event_type]
        found = None
        write = compile_writer(current_schema(event_type))
        if write is not None:
            schema_id = self.codec.registry.id_for(event_type)
            found = (bytes([MAGIC_BYTE]) + schema_id.to_bytes(4, "big"), write)
        self.writers[event_type] = found
        return found


_generated: _Generated | None = None


def _current() -> _Generated:
    """The generated code for the process-wide codec (rebuilt when it is replaced)."""
    global _generated
    codec = default_codec()
    if _generated is None or _generated.codec is not codec:
        _generated = _Generated(codec)
    return _generated


def _read_fast(raw: bytes) -> tuple[str, dict[str, Any]] | None:
    """``(event name, record)`` read by generated code, or ``None``: use fastavro."""
    try:
        generated = _current()
        if (
            type(raw) is not bytes
            or len(raw) > generated.codec.max_payload_bytes
            or len(raw) < HEADER_SIZE
            or raw[0] != MAGIC_BYTE
        ):
            return None
        found = generated.reader(int.from_bytes(raw[1:HEADER_SIZE], "big"))
        if found is None:
            return None
        record, end = found[1](raw, HEADER_SIZE)
    except Exception:  # noqa: BLE001 - anything odd is the fastavro path's to report
        return None
    return (found[0], record) if end == len(raw) else None


def encode_fast(event: BaseModel) -> bytes:
    """The bytes of :func:`schemas.codec.encode_event`, written by generated code."""
    try:
        found = _current().writer(str(getattr(event, "type", "")))
        if found is not None:
            return found[0] + found[1](event)
    except Exception:  # noqa: BLE001 - encode_event raises the proper EncodeError
        pass
    return encode_event(event)


def decode_trigger_fast(raw: bytes | None) -> Trigger:
    """:func:`decode_trigger` without re-validating what Avro checked (see the module docs)."""
    if not raw or raw[:1] == b"{":
        return decode_trigger(raw)
    fast = _read_fast(raw)
    return trigger_from_record(raw, *(fast if fast is not None else decode_raw(raw)))


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
    return encode_fast(trigger)


def with_not_before(trigger: Trigger, due: float) -> Trigger:
    """A copy of ``trigger`` to be sent no earlier than ``due`` (epoch seconds)."""
    when = datetime.fromtimestamp(due, UTC)
    when = when.replace(microsecond=(when.microsecond // 1000) * 1000)
    return trigger.model_copy(update={"not_before": when})


__all__ = [
    "DecodeError", "decode_trigger", "decode_trigger_fast", "encode_fast", "encode_trigger",
    "with_not_before",
]

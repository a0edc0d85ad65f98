"""Dead-letter records: the bytes we could not process, the reason, and where they came from.

A dead-letter record's value is a :class:`schemas.models.DeadLetter` event (Avro, wire format)
holding the original payload; the same facts travel as Kafka headers so tools can filter
without decoding:

==========================  =====================================================
``x-dlq-reason``            human reason (names the field or problem, no values)
``x-dlq-error-type``        error class, e.g. ``ValidationFailed``
``x-original-topic``        topic the record was read from
``x-original-partition``    partition, decimal ASCII
``x-original-offset``       offset, decimal ASCII
``x-dlq-payload-truncated`` only when the payload was cut: its original length
==========================  =====================================================

Payloads larger than ``max_payload_bytes`` (default 900 KiB, under Kafka's default 1 MB
message limit) are cut, and the cut is recorded in a header, never silent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from schemas.codec import Codec, default_codec
from schemas.errors import DecodeError, ValidationFailed
from schemas.models import DeadLetter, utc_now

H_REASON = "x-dlq-reason"
H_ERROR_TYPE = "x-dlq-error-type"
H_TOPIC = "x-original-topic"
H_PARTITION = "x-original-partition"
H_OFFSET = "x-original-offset"
H_TRUNCATED = "x-dlq-payload-truncated"
DEFAULT_MAX_DLQ_PAYLOAD = 900 * 1024

Headers = list[tuple[str, bytes]]
HeaderValue = str | bytes | None
HeadersIn = Iterable[tuple[str, HeaderValue]] | Mapping[str, HeaderValue] | None


def dead_letter_record(
    raw: bytes,
    reason: str,
    error_type: str,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    key: bytes | None = None,
    *,
    at: datetime | None = None,
    max_payload_bytes: int = DEFAULT_MAX_DLQ_PAYLOAD,
    codec: Codec | None = None,
) -> tuple[bytes, Headers]:
    """``(value, headers)`` of the dead-letter record for ``raw`` (produce both to a dlq topic)."""
    payload = raw[:max_payload_bytes]
    event = DeadLetter(
        reason=reason or "unknown",
        error_type=error_type or "unknown",
        original_topic=topic,
        original_partition=partition,
        original_offset=offset,
        original_key=key,
        payload=payload,
        at=at or utc_now(),
    )
    value = (codec or default_codec()).encode(event)
    headers: Headers = [(H_REASON, event.reason.encode()), (H_ERROR_TYPE, error_type.encode())]
    optional = ((H_TOPIC, topic), (H_PARTITION, partition), (H_OFFSET, offset))
    headers += [(name, str(v).encode()) for name, v in optional if v is not None]
    if len(payload) < len(raw):
        headers.append((H_TRUNCATED, str(len(raw)).encode()))
    return value, headers


def dead_letter_for(
    error: DecodeError,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    key: bytes | None = None,
) -> tuple[bytes, Headers]:
    """``(value, headers)`` of the dead-letter record for a decode error."""
    return dead_letter_record(
        error.raw, error.reason, error.error_type, topic, partition, offset, key
    )


@dataclass(frozen=True)
class DeadLetterView:
    """A dead-letter record read back: the event plus its headers."""

    event: DeadLetter
    headers: dict[str, str]

    @property
    def truncated_from(self) -> int | None:
        """Original payload length when the stored payload was cut, else None."""
        value = self.headers.get(H_TRUNCATED)
        return int(value) if value else None


def parse_headers(headers: HeadersIn) -> dict[str, str]:
    """Kafka headers (list of pairs or mapping, as clients give them) -> ``{name: text}``."""
    if headers is None:
        return {}
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return {name: _text(value) for name, value in pairs}


def _text(value: HeaderValue) -> str:
    if isinstance(value, str):
        return value
    return (value or b"").decode("utf-8", "replace")


def parse_dead_letter(
    value: bytes | None, headers: HeadersIn = None, codec: Codec | None = None
) -> DeadLetterView:
    """Decode a dead-letter record; raises ValidationFailed if it is another event type."""
    event = (codec or default_codec()).decode(value)
    if not isinstance(event, DeadLetter):
        kind = type(event).__name__
        raise ValidationFailed(f"type: expected Dead Letter, got {kind}", value or b"")
    return DeadLetterView(event, parse_headers(headers))

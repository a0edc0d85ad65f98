"""Dead-letter records: the DeadLetter event as value, reason and origin in headers, read back."""

from __future__ import annotations

import pytest

from schemas.codec import Codec
from schemas.deadletter import (
    H_ERROR_TYPE,
    H_OFFSET,
    H_PARTITION,
    H_REASON,
    H_TOPIC,
    H_TRUNCATED,
    dead_letter_for,
    dead_letter_record,
    parse_dead_letter,
    parse_headers,
)
from schemas.errors import BadMagicByte, DecodeError, ValidationFailed
from schemas.models import DeadLetter
from schemas.registry import FileRegistry
from schemas.samples import T0, sample_events

CODEC = Codec(FileRegistry())


def test_record_carries_payload_reason_and_origin() -> None:
    raw = b"\x07not avro"
    value, headers = dead_letter_record(
        raw, "first byte is 7, expected magic byte 0", "BadMagicByte",
        "events.site", 3, 1234, b"cust-1", at=T0,
    )
    assert dict(headers) == {
        H_REASON: b"first byte is 7, expected magic byte 0",
        H_ERROR_TYPE: b"BadMagicByte",
        H_TOPIC: b"events.site",
        H_PARTITION: b"3",
        H_OFFSET: b"1234",
    }
    assert all(isinstance(v, bytes) for _, v in headers)
    view = parse_dead_letter(value, headers)
    assert view.event == DeadLetter(
        reason="first byte is 7, expected magic byte 0", error_type="BadMagicByte",
        original_topic="events.site", original_partition=3, original_offset=1234,
        original_key=b"cust-1", payload=raw, at=T0,
    )
    assert view.headers[H_OFFSET] == "1234"
    assert view.truncated_from is None


def test_record_from_a_decode_error() -> None:
    garbage = b"\x01\x02\x03\x04\x05\x06"
    with pytest.raises(DecodeError) as info:
        CODEC.decode(garbage)
    assert isinstance(info.value, BadMagicByte)
    value, headers = dead_letter_for(info.value, "events.cart", 0, 7, None)
    view = parse_dead_letter(value, headers)
    assert view.event.payload == garbage
    assert view.event.error_type == "BadMagicByte"
    assert view.event.reason == info.value.reason
    assert view.event.original_key is None


def test_oversized_payload_is_cut_and_the_cut_recorded() -> None:
    raw = bytes(range(256)) * 8
    value, headers = dead_letter_record(raw, "too big", "PayloadTooLarge", "events.site", 0, 1,
                                        None, max_payload_bytes=1000)
    assert dict(headers)[H_TRUNCATED] == str(len(raw)).encode()
    view = parse_dead_letter(value, headers)
    assert view.event.payload == raw[:1000]
    assert view.truncated_from == len(raw)
    assert len(value) < 1200


def test_headers_are_optional_when_origin_unknown() -> None:
    _, headers = dead_letter_record(b"x", "reason", "InvalidJson")
    assert [name for name, _ in headers] == [H_REASON, H_ERROR_TYPE]


def test_parse_headers_accepts_client_shapes() -> None:
    assert parse_headers(None) == {}
    assert parse_headers([("a", b"1"), ("b", None)]) == {"a": "1", "b": ""}
    assert parse_headers({"a": b"\xff"}) == {"a": "\ufffd"}


def test_parse_refuses_other_events() -> None:
    value = CODEC.encode(sample_events()["Trigger"])
    with pytest.raises(ValidationFailed, match="expected Dead Letter"):
        parse_dead_letter(value, [])

"""Decoding garbage returns a typed error with a reason and the raw bytes (issue 2, Bad input)."""

from __future__ import annotations

from typing import cast

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codec import DEFAULT_MAX_PAYLOAD_BYTES, Codec, decode_batch, encode_json
from schemas.errors import (
    BadMagicByte,
    CorruptPayload,
    DecodeError,
    EncodeError,
    InvalidJson,
    InvalidUtf8,
    MissingIdentity,
    PayloadTooLarge,
    TruncatedPayload,
    UnknownSchemaId,
    ValidationFailed,
)
from schemas.models import Product, ProductViewed
from schemas.registry import FileRegistry
from schemas.samples import sample_events

CODEC = Codec(FileRegistry())
VIEW = cast(ProductViewed, sample_events()["Product Viewed"])
GOOD = CODEC.encode(VIEW)


def _expect(error_type: type[DecodeError], data: bytes, *, json: bool = False) -> DecodeError:
    with pytest.raises(error_type) as info:
        (CODEC.decode_json if json else CODEC.decode)(data)
    error = info.value
    assert error.raw == data
    assert error.reason
    assert error.retriable is False
    return error


@pytest.mark.parametrize("cut", [0, 3, 5, 6, 20, len(GOOD) - 1])
def test_truncated_avro(cut: int) -> None:
    error = _expect(TruncatedPayload, GOOD[:cut])
    assert ("header" in error.reason) == (cut < 5)


def test_wrong_magic_byte() -> None:
    error = _expect(BadMagicByte, b"\x01" + GOOD[1:])
    assert "magic byte" in error.reason


def test_unknown_schema_id() -> None:
    error = _expect(UnknownSchemaId, b"\x00\x00\x00\x7f\xff" + GOOD[5:])
    assert str(0x7FFF) in error.reason


def test_trailing_bytes_are_corrupt() -> None:
    error = _expect(CorruptPayload, GOOD + b"\x00\x00")
    assert "2 bytes after" in error.reason


def test_valid_json_failing_validation_names_the_field_not_the_value() -> None:
    obj = orjson.loads(encode_json(VIEW))
    obj["currency"] = "euro-secret"
    obj["product"]["price"] = -1
    error = _expect(ValidationFailed, orjson.dumps(obj), json=True)
    assert "currency" in error.reason
    assert "product.price" in error.reason
    assert "euro-secret" not in error.reason


def test_json_with_unknown_type() -> None:
    error = _expect(ValidationFailed, b'{"type": "Nope", "customer_id": "c"}', json=True)
    assert error.reason.startswith("type:")


@pytest.mark.parametrize("data", [b"{not json", b"[1, 2]", b""])
def test_not_a_json_object(data: bytes) -> None:
    _expect(InvalidJson, data, json=True)


def test_invalid_utf8_json() -> None:
    _expect(InvalidUtf8, b'{"type": "Identify", "customer_id": "\xff\xfe"}', json=True)


def test_invalid_utf8_inside_avro_string() -> None:
    bad = bytearray(GOOD)
    event_id_len = len(VIEW.event_id)
    assert bad[5] == event_id_len * 2  # zigzag varint length prefix of event_id
    bad[6] = 0xFF
    _expect(InvalidUtf8, bytes(bad))


@pytest.mark.parametrize("json", [False, True])
def test_five_megabyte_payload(json: bool) -> None:
    big = (b"{" if json else GOOD[:5]) + b" " * (5 * 1024 * 1024)
    error = _expect(PayloadTooLarge, big, json=json)
    assert str(DEFAULT_MAX_PAYLOAD_BYTES) in error.reason


def test_size_limit_is_configurable() -> None:
    with pytest.raises(PayloadTooLarge):
        Codec(FileRegistry(), max_payload_bytes=len(GOOD) - 1).decode(GOOD)
    assert Codec(FileRegistry(), max_payload_bytes=len(GOOD)).decode(GOOD) == VIEW


def test_missing_both_ids_avro_and_json() -> None:
    # an Avro producer that skipped validation: build the record without pydantic
    anonymous = ProductViewed.model_construct(**{**dict(VIEW), "customer_id": None,
                                                 "anonymous_id": ""})
    data = CODEC.encode(anonymous)
    for decode in (CODEC.decode, CODEC.decode_raw, CODEC.decode_fast):
        with pytest.raises(MissingIdentity) as info:
            decode(data)
        assert info.value.raw == data
        assert "customer_id" in info.value.reason
    obj = orjson.loads(encode_json(VIEW))
    del obj["customer_id"], obj["anonymous_id"]
    error = _expect(MissingIdentity, orjson.dumps(obj), json=True)
    assert isinstance(error, ValidationFailed)


def test_avro_record_breaking_a_constraint_fails_full_validation() -> None:
    empty_id = VIEW.model_copy(update={"product": Product.model_construct(
        **{**dict(VIEW.product), "product_id": ""})})
    error = _expect(ValidationFailed, CODEC.encode(empty_id))
    assert "product.product_id" in error.reason


def test_encode_out_of_range_value_is_typed() -> None:
    huge = VIEW.model_copy(update={"schema_version": 2**70})
    with pytest.raises(EncodeError):
        CODEC.encode(huge)


def test_decode_batch_keeps_good_records_and_collects_bad_ones() -> None:
    records = [GOOD, b"\x01junk", None, GOOD[:7], GOOD]
    oks, errs = decode_batch(records)
    assert oks == [VIEW, VIEW]
    assert [type(e) for e in errs] == [BadMagicByte, TruncatedPayload, TruncatedPayload]
    assert errs[0].raw == b"\x01junk"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_escape_as_untyped_errors(data: bytes) -> None:
    for decode in (CODEC.decode, CODEC.decode_json, CODEC.decode_fast):
        try:
            decode(data)
        except DecodeError as exc:
            assert exc.raw == data
            assert exc.reason


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=5, max_value=len(GOOD) - 1), st.integers(0, 255))
def test_flipped_bytes_never_escape_as_untyped_errors(pos: int, value: int) -> None:
    data = bytearray(GOOD)
    data[pos] = value
    try:
        CODEC.decode(bytes(data))
    except DecodeError as exc:
        assert exc.raw == bytes(data)

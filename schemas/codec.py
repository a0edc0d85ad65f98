"""Encode and decode events: Avro in the Confluent wire format, and JSON at the edges.

Wire format: byte 0 is the magic byte ``0``, bytes 1-4 the schema id (big-endian), then the
Avro binary body (no container header). Ids come from a :class:`schemas.registry.Registry`
(the committed file registry unless a Schema Registry URL is set).

Two ways to decode:

- :func:`decode_event` -> a validated pydantic model (every contract rule checked); what
  tools, the sink and tests use.
- :func:`decode_raw` -> ``(event name, dict)`` as fastavro returns it (read by the generated
  reader of :mod:`schemas.avrocode` when the writer schema is the current one), and
  :func:`model_from_raw` to build the model without re-validation (:meth:`Codec.decode_fast`
  does both in one pass); :meth:`Codec.decode_plain` gives the same values as a plain,
  read-only record (:mod:`schemas.plain`): the fast path of the stream workers. Avro already
  checked every type; only the identity rule (customer or anonymous id) is re-checked.
  Constraints Avro cannot express (non-empty ids, currency codes) are enforced where events
  are produced (:func:`encode_event` only takes validated models).

Every failure is a typed :class:`schemas.errors.DecodeError` with reason and raw bytes.
"""

from __future__ import annotations

import io
import struct
import threading
from collections.abc import Iterable
from functools import cached_property
from typing import Any, cast

import orjson
from fastavro import schemaless_reader, schemaless_writer
from fastavro.schema import to_parsing_canonical_form
from pydantic import BaseModel, ValidationError

from schemas.avrocode import (
    Reader,
    ReaderSource,
    Writer,
    compile_reader,
    compile_writer,
    compiled_module,
    compiled_writer,
    is_compiled,
    native_enabled,
    reader_source,
    writer_source,
)
from schemas.construct import event_models, model_from_raw
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
    ValidationFailed,
)
from schemas.models import EVENT_TYPES, Envelope
from schemas.plain import PlainRecord, plain_from_raw, plain_models
from schemas.registry import Registry, current_schema, registry_from_env

MAGIC_BYTE = 0
HEADER_SIZE = 5
DEFAULT_MAX_PAYLOAD_BYTES = 1 << 20
"""Payloads above this size (1 MiB) are refused with PayloadTooLarge."""

MAX_REPORTED_ERRORS = 5
"""How many pydantic errors a ValidationFailed reason lists."""

_PAD = bytes(4096)
_IDENTIFIED = frozenset(name for name, cls in EVENT_TYPES.items() if issubclass(cls, Envelope))
_JSON_VIA_PYDANTIC = frozenset({"Dead Letter"})  # bytes fields arrive base64 in JSON

Raw = bytes | bytearray | memoryview
_FAST_FAILURES = (IndexError, ValueError, struct.error, OverflowError, OSError, RecursionError)
"""What the generated reader raises on bad bytes (then fastavro decides the error)."""
_WRITE_FAILURES = (ValueError, TypeError, KeyError, AttributeError, OverflowError, struct.error)
"""What the generated writer raises on a value it does not take (then fastavro decides)."""


class _ReadPlan:
    """How to read one schema id: writer schema, and reader schema when they differ.

    Each generated reader (:mod:`schemas.avrocode`) exists only when writer and reader are the
    same schema, and is built on its first use: a stream worker reads plain records only, and
    building all three for each of 20 event types took ~390 ms of its first batches. Whether
    compiled readers may serve them is decided when the plan is made (``PERSONAFLOW_NATIVE``)."""

    def __init__(self, event_type: str, writer: Any, reader: Any | None) -> None:
        self.event_type = event_type
        self.writer = writer
        self.reader = reader
        self.native = native_enabled()

    @cached_property
    def fast(self) -> Reader | None:
        """The generated reader of the plain dict."""
        if self.reader is not None:
            return None
        return compile_reader(self.writer, native=self.native)

    @cached_property
    def model(self) -> Reader | None:
        """The one that builds the event model while reading (:meth:`Codec.decode_fast`)."""
        if self.reader is not None:
            return None
        return compile_reader(self.writer, event_models(self.event_type), native=self.native)

    @cached_property
    def plain(self) -> Reader | None:
        """The one that builds the plain record while reading (:meth:`Codec.decode_plain`)."""
        if self.reader is not None:
            return None
        return compile_reader(self.writer, plain_models(self.event_type), native=self.native)


class Codec:
    """Encoder/decoder bound to a registry and a payload size limit; caches schemas by id."""

    def __init__(
        self, registry: Registry | None = None, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    ) -> None:
        self.registry = registry if registry is not None else registry_from_env()
        self.max_payload_bytes = max_payload_bytes
        self._plans: dict[int, _ReadPlan] = {}
        self._headers: dict[str, bytes] = {}
        self._writers: dict[str, Writer | None] = {}

    # ------------------------------------------------------------------ encode

    def encode(self, event: BaseModel | PlainRecord) -> bytes:
        """Avro wire-format bytes of a (validated) event model, or of its plain record
        (:mod:`schemas.plain`; the same bytes)."""
        event_type = str(getattr(event, "type", ""))
        if event_type not in EVENT_TYPES:
            raise EncodeError(f"type: {event_type!r} is not a known event type")
        header = self._headers.get(event_type) or self._header(event_type)
        if event_type in self._writers:
            write = self._writers[event_type]
        else:
            write = self._writers[event_type] = compile_writer(current_schema(event_type))
        values = event.as_dict() if isinstance(event, PlainRecord) else None
        if write is not None:
            try:
                return header + write(event if values is None else values)
            except _WRITE_FAILURES:
                pass  # fastavro writes it below, or names why it cannot
        out = io.BytesIO()
        out.write(header)
        if values is None:
            values = event.model_dump()  # type: ignore[union-attr]  # not a PlainRecord
        try:
            schemaless_writer(out, current_schema(event_type), values)
        except (ValueError, TypeError, OverflowError, KeyError) as exc:
            raise EncodeError(f"{event_type}: not encodable as Avro: {exc}") from exc
        return out.getvalue()

    @property
    def native_readers(self) -> int:
        """How many of the schema ids read so far decode with a compiled plain reader
        (``make native``; :func:`native_readers_status`)."""
        return sum(1 for plan in self._plans.values() if is_compiled(plan.plain))

    @property
    def native_writers(self) -> int:
        """How many of the event types encoded so far write with a compiled writer
        (``make native``: the writers of the current schemas)."""
        return sum(1 for write in self._writers.values() if is_compiled(write))

    def _header(self, event_type: str) -> bytes:
        header = bytes([MAGIC_BYTE]) + self.registry.id_for(event_type).to_bytes(4, "big")
        self._headers[event_type] = header
        return header

    # ------------------------------------------------------------------ decode

    def decode_raw(self, data: Raw | None) -> tuple[str, dict[str, Any]]:
        """``(event name, record dict)`` of wire-format bytes, without pydantic (fast path)."""
        raw = _as_bytes(data)
        self._check_size(raw)
        if len(raw) < HEADER_SIZE:
            raise TruncatedPayload(f"{len(raw)} bytes, shorter than the 5-byte header", raw)
        if raw[0] != MAGIC_BYTE:
            raise BadMagicByte(f"first byte is {raw[0]}, expected magic byte 0", raw)
        schema_id = int.from_bytes(raw[1:HEADER_SIZE], "big")
        plan = self._plans.get(schema_id) or self._plan(schema_id, raw)
        record = _read_body(raw, plan)
        if plan.event_type in _IDENTIFIED:
            _check_identity(record, raw)
        return plan.event_type, record

    def decode(self, data: Raw | None) -> BaseModel:
        """Validated model of wire-format bytes; every contract rule is checked."""
        event_type, record = self.decode_raw(data)
        return _validate(event_type, record, _as_bytes(data))

    def decode_fast(self, data: Raw | None) -> BaseModel:
        """Model of wire-format bytes built without re-validation (see module docs).

        Read by the generated reader that builds the model directly when there is one
        (:func:`schemas.construct.event_models`); anything it does not read cleanly (or a
        schema it does not cover) goes through :meth:`decode_raw` and
        :func:`model_from_raw`, which decide the result or the error as before."""
        raw = _as_bytes(data)
        event = self._generated(raw, plain=False)
        if event is not None:
            return cast(BaseModel, event)
        event_type, record = self.decode_raw(raw)
        return model_from_raw(event_type, record)

    def decode_plain(self, data: Raw | None) -> PlainRecord:
        """The plain, read-only record (:mod:`schemas.plain`) of wire-format bytes: what
        :meth:`decode_fast` decodes, with the same values or the same error, without a
        pydantic instance (the stream workers' hot path reads it)."""
        raw = _as_bytes(data)
        event = self._generated(raw, plain=True)
        if event is not None:
            return cast(PlainRecord, event)
        event_type, record = self.decode_raw(raw)
        return plain_from_raw(event_type, record)

    def _generated(self, raw: bytes, *, plain: bool) -> Any:
        """What the generated reader of ``raw``'s schema builds (the plain record, or the
        model), or None: the schema id is unknown or has no generated reader, or the reader
        does not read ``raw`` cleanly (then the dict path decides the result or the error).
        A schema id's first record makes its read plan here, so a worker reading plain
        records never builds the dict and model readers (:class:`_ReadPlan`)."""
        if not HEADER_SIZE <= len(raw) <= self.max_payload_bytes or raw[0] != MAGIC_BYTE:
            return None
        schema_id = int.from_bytes(raw[1:HEADER_SIZE], "big")
        plan = self._plans.get(schema_id)
        if plan is None:  # a schema id's first record: its plan is made here (an unknown id
            plan = self._plan(schema_id, raw)  # raises what the dict path would, one lookup)
        reader = plan.plain if plain else plan.model
        if reader is None:
            return None
        event: Any  # a model or a plain record, by ``plain``
        try:
            event, end = reader(raw, HEADER_SIZE)
        except _FAST_FAILURES:
            return None
        if end != len(raw):
            return None
        if plan.event_type in _IDENTIFIED and not event.customer_id:
            _check_identity({"anonymous_id": event.anonymous_id}, raw)
        return event

    def decode_json(self, data: Raw | str) -> BaseModel:
        """Validated model of a JSON object (the same rules as Avro input)."""
        raw = data.encode() if isinstance(data, str) else _as_bytes(data)
        self._check_size(raw)
        obj = _load_json(raw)
        event_type = obj.get("type")
        if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
            raise ValidationFailed("type: missing or not a known event type", raw)
        if event_type in _IDENTIFIED:
            _check_identity(obj, raw)
        if event_type in _JSON_VIA_PYDANTIC:
            return _validate_json(event_type, raw)
        return _validate(event_type, obj, raw)

    def _check_size(self, raw: bytes) -> None:
        if len(raw) > self.max_payload_bytes:
            raise PayloadTooLarge(
                f"{len(raw)} bytes, over the {self.max_payload_bytes}-byte limit", raw
            )

    def _plan(self, schema_id: int, raw: bytes) -> _ReadPlan:
        try:
            writer = self.registry.writer(schema_id)
        except DecodeError as exc:
            exc.raw = raw
            raise
        reader = current_schema(writer.event_type)
        same = to_parsing_canonical_form(writer.parsed) == to_parsing_canonical_form(reader)
        plan = _ReadPlan(writer.event_type, writer.parsed, None if same else reader)
        self._plans[schema_id] = plan
        return plan


def plain_reader_source(event_type: str) -> ReaderSource | None:
    """The generated plain reader of ``event_type``'s current schema: what
    :meth:`Codec.decode_plain` runs, and what ``make native`` compiles."""
    return reader_source(current_schema(event_type), plain_models(event_type))


def native_readers_status() -> str:
    """Whether the plain readers of the current schemas run compiled: ``"compiled: N of M
    event types"`` (the others: out of date, the source executed) or ``"interpreted: <why>"``."""
    if not native_enabled():
        return "interpreted: PERSONAFLOW_NATIVE=0"
    sources = [plain_reader_source(event_type) for event_type in sorted(EVENT_TYPES)]
    compiled = sum(1 for s in sources if s is not None and compiled_module(s) is not None)
    return _native_status("reader", compiled, len(sources))


def native_writers_status() -> str:
    """Whether the writers of the current schemas run compiled, as
    :func:`native_readers_status` says it of the readers."""
    if not native_enabled():
        return "interpreted: PERSONAFLOW_NATIVE=0"
    sources = [writer_source(current_schema(event_type)) for event_type in sorted(EVENT_TYPES)]
    compiled = sum(1 for s in sources if s is not None and compiled_writer(s) is not None)
    return _native_status("writer", compiled, len(sources))


def _native_status(kind: str, compiled: int, total: int) -> str:
    if not compiled:
        return f"interpreted: no compiled {kind} matches the current sources (make native)"
    stale = "" if compiled == total else " (the others out of date: make native)"
    return f"compiled: {compiled} of {total} event types{stale}"


def encode_json(event: BaseModel) -> bytes:
    """JSON bytes of an event (ISO-8601 timestamps; bytes fields base64)."""
    return orjson.dumps(event.model_dump(mode="json"))


def _as_bytes(data: Raw | None) -> bytes:
    if data is None:
        return b""
    return data if isinstance(data, bytes) else bytes(data)


def _read_body(raw: bytes, plan: _ReadPlan) -> dict[str, Any]:
    if plan.fast is not None:
        try:
            fields, end = plan.fast(raw, HEADER_SIZE)
        except _FAST_FAILURES:
            pass  # fastavro reads it again below and names the error
        else:
            if end == len(raw):
                return fields
    body = io.BytesIO(raw)
    body.seek(HEADER_SIZE)
    try:
        record = schemaless_reader(body, plan.writer, plan.reader)
    except UnicodeDecodeError as exc:
        raise InvalidUtf8(f"{plan.event_type}: a string is not valid UTF-8", raw) from exc
    except Exception as exc:  # fastavro raises many exception types on bad bytes
        raise _body_error(raw, plan, exc) from exc
    if body.tell() != len(raw):
        extra = len(raw) - body.tell()
        raise CorruptPayload(f"{plan.event_type}: {extra} bytes after the Avro body", raw)
    return record  # type: ignore[return-value]  # a record schema always reads to a dict


def _body_error(raw: bytes, plan: _ReadPlan, exc: Exception) -> DecodeError:
    """Truncated if padding the body makes it decode, else corrupt."""
    try:
        schemaless_reader(io.BytesIO(raw[HEADER_SIZE:] + _PAD), plan.writer, plan.reader)
    except Exception:  # noqa: BLE001
        return CorruptPayload(
            f"{plan.event_type}: Avro body does not decode ({type(exc).__name__})", raw
        )
    return TruncatedPayload(f"{plan.event_type}: Avro body ends early", raw)


def _check_identity(record: dict[str, Any], raw: bytes) -> None:
    if not record.get("customer_id") and not record.get("anonymous_id"):
        raise MissingIdentity("customer_id, anonymous_id: both are missing", raw)


def _load_json(raw: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidUtf8("payload is not valid UTF-8", raw) from exc
        raise InvalidJson(f"not JSON: {exc}", raw) from exc
    if not isinstance(obj, dict):
        raise InvalidJson(f"expected a JSON object, got {type(obj).__name__}", raw)
    return obj


def _validate(event_type: str, record: dict[str, Any], raw: bytes) -> BaseModel:
    try:
        return EVENT_TYPES[event_type].model_validate(record)
    except ValidationError as exc:
        raise ValidationFailed(summarise(event_type, exc), raw) from exc


def _validate_json(event_type: str, raw: bytes) -> BaseModel:
    try:
        return EVENT_TYPES[event_type].model_validate_json(raw)
    except ValidationError as exc:
        raise ValidationFailed(summarise(event_type, exc), raw) from exc


def summarise(event_type: str, exc: ValidationError) -> str:
    """``"<event>: field.path: message; ..."`` without the offending values (no PII)."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False)[:MAX_REPORTED_ERRORS]:
        loc = ".".join(str(p) for p in error["loc"]) or "(event)"
        parts.append(f"{loc}: {error['msg']}")
    more = exc.error_count() - MAX_REPORTED_ERRORS
    suffix = f"; and {more} more" if more > 0 else ""
    return f"{event_type}: " + "; ".join(parts) + suffix


# ---------------------------------------------------------------------- module-level API

_default: Codec | None = None
_default_lock = threading.Lock()


def default_codec() -> Codec:
    """The process-wide codec (registry from the environment), created on first use."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Codec()
    return _default


def set_default_codec(codec: Codec | None) -> None:
    """Replace the process-wide codec (``None``: recreate from the environment on next use)."""
    global _default
    _default = codec


def encode_event(event: BaseModel) -> bytes:
    """Avro wire-format bytes of an event, with the default codec."""
    return default_codec().encode(event)


def decode_event(data: Raw | None) -> BaseModel:
    """Validated event model of wire-format bytes, with the default codec."""
    return default_codec().decode(data)


def decode_raw(data: Raw | None) -> tuple[str, dict[str, Any]]:
    """``(event name, record dict)`` of wire-format bytes, without pydantic (fast path)."""
    return default_codec().decode_raw(data)


def decode_json(data: Raw | str) -> BaseModel:
    """Validated event model of a JSON object, with the default codec."""
    return default_codec().decode_json(data)


def decode_batch(
    records: Iterable[Raw | None], *, validate: bool = True
) -> tuple[list[BaseModel], list[DecodeError]]:
    """Decode many payloads: ``(events, errors)``; one bad record never stops the batch.

    Retriable errors (registry unreachable) are raised, not collected: the batch should be
    retried, not dead-lettered. ``validate=False`` uses the fast path (:meth:`Codec.decode_fast`).
    """
    codec = default_codec()
    decode = codec.decode if validate else codec.decode_fast
    oks: list[BaseModel] = []
    errs: list[DecodeError] = []
    for data in records:
        try:
            oks.append(decode(data))
        except DecodeError as exc:
            if exc.retriable:
                raise
            errs.append(exc)
    return oks, errs


__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "Codec",
    "decode_batch",
    "decode_event",
    "decode_json",
    "decode_raw",
    "default_codec",
    "encode_event",
    "encode_json",
    "model_from_raw",
    "native_readers_status",
    "native_writers_status",
    "plain_reader_source",
    "set_default_codec",
    "summarise",
]

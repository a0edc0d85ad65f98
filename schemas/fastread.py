"""Compiled Avro readers: one closure per schema, about twice as fast as fastavro here.

fastavro's ``schemaless_reader`` interprets the schema on every call: per field it dispatches on
the type, and it converts ``timestamp-millis`` through a generic logical-type table. On this
project's small records (10-20 fields, two timestamps) that interpretation is most of the cost
(~17-25 us per event on the reference machine, the largest single item of the stream worker).
:func:`compile_reader` turns a fastavro-parsed schema into nested closures once; a record's
fields are read in one loop with the common kinds (string, optional string, long, double,
timestamp) inlined, everything else by a call.

The output is exactly what fastavro returns for the same bytes (dicts, lists, ``None``,
aware UTC datetimes): ``tests/unit/test_schemas_fastread.py`` checks it with hypothesis over
every contract, and that corrupt input is rejected. The codec uses it only when writer and
reader schemas are the same and falls back to fastavro for every failure, so error messages
and their classification (truncated vs corrupt) are fastavro's. A schema using a construct
this module does not compile (fixed, decimal, other logical types) returns None from
:func:`compile_reader`, and the codec keeps using fastavro for it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from struct import Struct
from typing import Any

Reader = Callable[[bytes, int], tuple[Any, int]]
"""Reads one value at a position of the payload: ``(value, next position)``."""

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EXACT_MS = 2**32 * 1000
_fromtimestamp = datetime.fromtimestamp
_DOUBLE = Struct("<d").unpack_from
_FLOAT = Struct("<f").unpack_from

# field kinds inlined in the record loop (anything else: CALL); strings first (``<= OPT_STRING``)
STRING, OPT_STRING, LONG, DOUBLE, TIMESTAMP, CALL = range(6)


class Unsupported(Exception):
    """The schema uses a construct this module does not compile."""


class BadData(ValueError):
    """The payload is not valid for the schema (the codec then asks fastavro for the error)."""


def _long_tail(b: bytes, p: int, x: int) -> tuple[int, int]:
    """A zig-zag varint whose first byte ``x`` (already read) had the continuation bit."""
    n = x & 0x7F
    shift = 7
    while True:
        x = b[p]
        p += 1
        n |= (x & 0x7F) << shift
        if x < 0x80:
            return (n >> 1) ^ -(n & 1), p
        shift += 7
        if shift > 63:
            raise BadData("varint longer than 10 bytes")


def read_long(b: bytes, p: int) -> tuple[int, int]:
    x = b[p]
    if x < 0x80:
        return (x >> 1) ^ -(x & 1), p + 1
    return _long_tail(b, p + 1, x)


def read_string(b: bytes, p: int) -> tuple[str, int]:
    n, p = read_long(b, p)
    end = p + n
    if n < 0 or end > len(b):
        raise BadData("string runs past the end")
    return b[p:end].decode(), end


def read_bytes(b: bytes, p: int) -> tuple[bytes, int]:
    n, p = read_long(b, p)
    end = p + n
    if n < 0 or end > len(b):
        raise BadData("bytes run past the end")
    return b[p:end], end


def read_double(b: bytes, p: int) -> tuple[float, int]:
    return _DOUBLE(b, p)[0], p + 8


def read_float(b: bytes, p: int) -> tuple[float, int]:
    return _FLOAT(b, p)[0], p + 4


def read_boolean(b: bytes, p: int) -> tuple[bool, int]:
    x = b[p]
    if x > 1:
        raise BadData("boolean byte is not 0 or 1")
    return x == 1, p + 1


def read_null(b: bytes, p: int) -> tuple[None, int]:
    return None, p


def timestamp_millis(n: int) -> datetime:
    """Epoch milliseconds as fastavro returns them (an aware UTC datetime).

    ``fromtimestamp(n / 1000)`` is 2x faster than ``EPOCH + timedelta(milliseconds=n)`` and
    equal to it while ``n / 1000`` is within half a microsecond of the true value: true below
    2**32 seconds (the year 2106), where a double's spacing is under a microsecond."""
    if 0 <= n < _EXACT_MS:
        return _fromtimestamp(n / 1000, UTC)
    return EPOCH + timedelta(milliseconds=n)


def read_timestamp_millis(b: bytes, p: int) -> tuple[datetime, int]:
    n, p = read_long(b, p)
    return timestamp_millis(n), p


_PRIMITIVES: dict[str, Reader] = {
    "string": read_string,
    "long": read_long,
    "int": read_long,
    "double": read_double,
    "float": read_float,
    "boolean": read_boolean,
    "bytes": read_bytes,
    "null": read_null,
}


_INLINED: dict[Reader, int] = {
    read_string: STRING, read_long: LONG, read_double: DOUBLE, read_timestamp_millis: TIMESTAMP,
}
"""Readers the record loop inlines, by field kind."""


def compile_reader(schema: Any) -> Reader | None:
    """A reader of ``schema`` (fastavro-parsed), or None when it uses a construct this module
    does not compile (the caller keeps fastavro for it)."""
    named = schema.get("__named_schemas", {}) if isinstance(schema, dict) else {}
    try:
        return _Compiler(named).reader(schema)
    except Unsupported:
        return None


class _Compiler:
    def __init__(self, named: dict[str, Any]) -> None:
        self.named = named
        self.records: dict[str, Reader] = {}

    def reader(self, schema: Any) -> Reader:
        if isinstance(schema, str):
            return self._named(schema)
        if isinstance(schema, list):
            return self._union(schema)
        kind = schema.get("type")
        logical = schema.get("logicalType")
        if logical is not None:
            if logical == "timestamp-millis" and kind == "long":
                return read_timestamp_millis
            raise Unsupported(logical)
        if kind == "record":
            return self._record(schema)
        if kind == "array":
            return self._array(self.reader(schema["items"]))
        if kind == "map":
            return self._map(self.reader(schema["values"]))
        if kind == "enum":
            return self._enum(tuple(schema["symbols"]))
        if isinstance(kind, str | list | dict) and kind not in ("fixed", "error"):
            return self.reader(kind)
        raise Unsupported(str(kind))

    def _named(self, name: str) -> Reader:
        primitive = _PRIMITIVES.get(name)
        if primitive is not None:
            return primitive
        if name in self.records:
            return self.records[name]
        if name not in self.named:
            raise Unsupported(name)
        return self.reader(self.named[name])

    def _record(self, schema: dict[str, Any]) -> Reader:
        fields: list[tuple[str, int, Reader]] = []

        def read_record(b: bytes, p: int) -> tuple[dict[str, Any], int]:
            out: dict[str, Any] = {}
            for name, kind, read in fields:
                if kind <= OPT_STRING:  # STRING or OPT_STRING
                    if kind == OPT_STRING:
                        x = b[p]
                        p += 1
                        if x == 0:  # branch 0: null
                            out[name] = None
                            continue
                        if x != 2:  # zig-zag 1: branch 1, the string
                            raise BadData("union branch out of range")
                    x = b[p]  # the string's length, a varint (read_long inlined)
                    if x < 0x80:
                        n = (x >> 1) ^ -(x & 1)
                        p += 1
                    else:
                        n, p = _long_tail(b, p + 1, x)
                    end = p + n
                    if n < 0 or end > len(b):
                        raise BadData("string runs past the end")
                    out[name] = b[p:end].decode()
                    p = end
                elif kind == LONG:
                    x = b[p]
                    if x < 0x80:
                        out[name] = (x >> 1) ^ -(x & 1)
                        p += 1
                    else:
                        out[name], p = _long_tail(b, p + 1, x)
                elif kind == TIMESTAMP:
                    x = b[p]
                    if x < 0x80:
                        n = (x >> 1) ^ -(x & 1)
                        p += 1
                    else:
                        n, p = _long_tail(b, p + 1, x)
                    out[name] = (_fromtimestamp(n / 1000, UTC) if 0 <= n < _EXACT_MS
                                 else EPOCH + timedelta(milliseconds=n))
                elif kind == DOUBLE:
                    out[name] = _DOUBLE(b, p)[0]
                    p += 8
                else:
                    out[name], p = read(b, p)
            return out, p

        self.records[schema["name"]] = read_record  # before the fields: recursive types
        fields.extend((f["name"], *self._field(f["type"])) for f in schema["fields"])
        return read_record

    def _field(self, schema: Any) -> tuple[int, Reader]:
        read = self.reader(schema)
        kind = _INLINED.get(read, CALL)
        if kind == CALL and isinstance(schema, list) and schema in (["null", "string"],):
            kind = OPT_STRING
        return kind, read

    def _union(self, branches: list[Any]) -> Reader:
        readers = tuple(self.reader(b) for b in branches)
        count = len(readers)

        def read_union(b: bytes, p: int) -> tuple[Any, int]:
            index, p = read_long(b, p)
            if index < 0 or index >= count:
                raise BadData("union branch out of range")
            return readers[index](b, p)

        return read_union

    @staticmethod
    def _array(item: Reader) -> Reader:
        def read_array(b: bytes, p: int) -> tuple[list[Any], int]:
            out: list[Any] = []
            while True:
                count, p = read_long(b, p)
                if count == 0:
                    return out, p
                if count < 0:  # a block with its size in bytes
                    count = -count
                    _, p = read_long(b, p)
                if count > len(b):
                    raise BadData("array block longer than the payload")
                for _ in range(count):
                    value, p = item(b, p)
                    out.append(value)

        return read_array

    @staticmethod
    def _map(value: Reader) -> Reader:
        def read_map(b: bytes, p: int) -> tuple[dict[str, Any], int]:
            out: dict[str, Any] = {}
            while True:
                count, p = read_long(b, p)
                if count == 0:
                    return out, p
                if count < 0:
                    count = -count
                    _, p = read_long(b, p)
                if count > len(b):
                    raise BadData("map block longer than the payload")
                for _ in range(count):
                    key, p = read_string(b, p)
                    out[key], p = value(b, p)

        return read_map

    @staticmethod
    def _enum(symbols: tuple[str, ...]) -> Reader:
        def read_enum(b: bytes, p: int) -> tuple[str, int]:
            index, p = read_long(b, p)
            if index < 0 or index >= len(symbols):
                raise BadData("enum index out of range")
            return symbols[index], p

        return read_enum

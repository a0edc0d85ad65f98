"""Avro bodies read and written by Python code generated once per schema: the codecs' hot path.

fastavro interprets the schema on every call (per field a type dispatch, logical types through a
generic table, named-schema set-up): 17-25 us to read one of our events and about 20 us (with
``model_dump``) to write one on the reference machine, the largest single cost of the stream
worker and of the sink. :func:`compile_reader` and :func:`compile_writer` turn a
fastavro-parsed schema into straight Python code for that one schema (a few us per record),
with the same results:

- the reader returns the dict fastavro returns (fields in schema order, ``timestamp-millis``
  as an aware UTC ``datetime``, enums as their symbol) and the position after the body;
- the writer takes the field values (a model's ``__dict__`` or a dict) and returns the bytes
  fastavro writes.

Both cover the types our contracts use (records, strings, bytes, longs/ints, booleans,
doubles/floats, enums, maps, arrays, unions, ``timestamp-millis``; the writer: unions of
``null`` and one other type); for anything else the compilers return ``None`` and callers keep
using fastavro. They never decide about bad data: any surprise (truncated or trailing bytes, a
wrong type, a value out of range) raises, and :mod:`schemas.codec` falls back to fastavro,
which reports the error exactly as before. Only for schemas whose writer and reader forms are
the same (no schema resolution).

The generated source holds only names the generator makes up, field names (and in writers
enum symbols) as Python literals (``repr``) and references to constants passed in a scope
dict: no text of a schema or a payload is ever executed. It is compiled once per schema id
(reader) or event type (writer), from the committed contracts (a writer schema is only
compiled when it equals the current one).

``make native`` also compiles the plain readers and the writers of the current schemas with
mypyc (:meth:`ReaderSource.typed_module`, :meth:`WriterSource.typed_module`, docs/native.md):
:func:`compile_reader` and :func:`compile_writer` take a compiled one only for the very source
it was built from (:attr:`ReaderSource.digest`, :attr:`WriterSource.digest`), else they
execute the source.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import inspect
import os
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import FunctionType
from typing import Any

Reader = Callable[[bytes, int], tuple[dict[str, Any], int]]
Writer = Callable[[Any], bytes]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_LONG, _MAX_LONG = -(1 << 63), (1 << 63) - 1


class Unsupported(Exception):
    """The schema uses something the generated code does not cover."""


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """A zigzag varint (any length) at ``pos``: ``(value, next position)``."""
    shift = 0
    acc = 0
    while True:
        byte = buf[pos]
        pos += 1
        acc |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")
    if acc >> 64:  # damaged: fastavro wraps such a varint to 64 bits; let it read the record
        raise ValueError("varint beyond 64 bits")
    return (acc >> 1) ^ -(acc & 1), pos


_SMALL = [bytes([n]) for n in range(128)]
_LENGTHS = [bytes([n << 1]) for n in range(64)]
"""The varint of a length below 64 (zigzag doubles it): one byte."""


def _varint(value: int) -> bytes:
    """The zigzag varint bytes of a long (raises outside the 64-bit range)."""
    if type(value) is not int or not _MIN_LONG <= value <= _MAX_LONG:
        raise ValueError("not a long")
    n = (value << 1) ^ (value >> 63)
    if n < 128:
        return _SMALL[n]
    digits: list[int] = []  # a list, not a bytearray: its append is a primitive when compiled
    while n >= 0x80:
        digits.append((n & 0x7F) | 0x80)
        n >>= 7
    digits.append(n)
    return bytes(digits)


def _millis(value: datetime) -> int:
    """``timestamp-millis`` of an aware datetime, as fastavro computes it."""
    if type(value) is not datetime or value.tzinfo is None:
        raise ValueError("not an aware datetime")
    delta = value - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000


_EXACT_MS = 2**32 * 1000
_fromtimestamp = datetime.fromtimestamp


def _as_datetime(millis: int) -> datetime:
    """Epoch milliseconds as fastavro returns them (an aware UTC datetime).

    ``fromtimestamp(millis / 1000)`` is 2x faster than ``EPOCH + timedelta(...)`` and equal to
    it while ``millis / 1000`` is within half a microsecond of the true value: true below
    2**32 seconds (the year 2106), where a double's spacing is under a microsecond."""
    if 0 <= millis < _EXACT_MS:
        return _fromtimestamp(millis / 1000, UTC)
    return _EPOCH + timedelta(milliseconds=millis)


_PRIMITIVES = frozenset({"string", "bytes", "long", "int", "boolean", "double", "float", "null"})


@dataclass
class _Function:
    """One generated record function: ``def {name}(buf, pos, size):`` and its body."""

    name: str
    body: list[str]
    values: list[str] = dataclasses.field(default_factory=list)
    """Variables holding read values (None, str, a record...): ``Any`` in the typed form."""


class _Gen:
    """Generates the source of one reader or writer (shared name bookkeeping)."""

    def __init__(self, models: Models | None = None) -> None:
        self.lines: list[str] = []
        self.names = 0
        self.consts: dict[str, Any] = {}
        self.named: dict[str, Any] = {}
        self.record_fns: dict[str, str] = {}
        self.models = models
        self.notes: list[str] = []
        """What each constant stands for (comment lines of a reader's source)."""
        self.functions: list[_Function] = []
        """The reader's record functions, in the order of the source."""
        self.values: list[list[str]] = []
        """Per record function being generated: its value variables (typed ``Any``)."""
        self.open_records: set[str] = set()
        self.recursive = False

    def var(self, stem: str = "v") -> str:
        self.names += 1
        return f"{stem}{self.names}"

    def const(self, value: Any, stem: str = "c", note: str | None = None) -> str:
        name = self.var(f"_{stem}")
        self.consts[name] = value
        if note is not None:
            self.notes.append(f"# {name}: {note}")
        return name

    def resolve(self, schema: Any) -> Any:
        if isinstance(schema, str) and schema not in _PRIMITIVES:
            if schema not in self.named:
                raise Unsupported(f"unknown named type {schema}")
            return self.named[schema]
        if isinstance(schema, dict) and schema.get("type") in ("record", "enum", "fixed"):
            name = schema.get("name")
            if name:
                self.named.setdefault(name, schema)
        return schema


# ---------------------------------------------------------------------- reader


def _emit_long(g: _Gen, out: list[str], ind: str, target: str) -> None:
    out += [
        f"{ind}{target} = buf[pos]",
        f"{ind}if {target} < 128:",
        f"{ind}    pos += 1",
        f"{ind}    {target} = ({target} >> 1) ^ -({target} & 1)",
        f"{ind}else:",
        f"{ind}    {target}, pos = _read_varint(buf, pos)",
    ]


def _emit_read(g: _Gen, schema: Any, out: list[str], ind: str, target: str) -> None:
    """Lines reading one value of ``schema`` at ``pos`` into ``target``."""
    if g.values and target not in g.values[-1]:
        g.values[-1].append(target)
    schema = g.resolve(schema)
    if isinstance(schema, list):
        _emit_read_union(g, schema, out, ind, target)
        return
    kind = schema if isinstance(schema, str) else schema.get("type")
    logical = schema.get("logicalType") if isinstance(schema, dict) else None
    if logical is not None:
        if logical != "timestamp-millis" or kind != "long":
            raise Unsupported(f"logical type {logical}")
        _emit_long(g, out, ind, target)
        out += [  # _as_datetime, its common case inline
            f"{ind}if 0 <= {target} < _EXACT_MS:",
            f"{ind}    {target} = _fromtimestamp({target} / 1000, _UTC)",
            f"{ind}else:",
            f"{ind}    {target} = _as_datetime({target})",
        ]
        return
    if isinstance(kind, (dict, list)):
        _emit_read(g, kind, out, ind, target)
        return
    if kind == "null":
        out.append(f"{ind}{target} = None")
    elif kind in ("long", "int"):
        _emit_long(g, out, ind, target)
    elif kind in ("string", "bytes"):
        n = g.var("n")
        read = ".decode()" if kind == "string" else ""
        # a length below 64 is one byte (zigzag: even, under 128): read inline
        out += [
            f"{ind}{n} = buf[pos]",
            f"{ind}if {n} < 128 and not {n} & 1:",
            f"{ind}    end = pos + 1 + ({n} >> 1)",
            f"{ind}    if end > size:",
            f"{ind}        raise ValueError('truncated')",
            f"{ind}    {target} = buf[pos + 1:end]{read}",
            f"{ind}else:",
        ]
        inner = ind + "    "
        _emit_long(g, out, inner, n)
        out += [
            f"{inner}end = pos + {n}",
            f"{inner}if {n} < 0 or end > size:",
            f"{inner}    raise ValueError('truncated')",
            f"{inner}{target} = buf[pos:end]{read}",
        ]
        out.append(f"{ind}pos = end")
    elif kind == "boolean":
        out += [
            f"{ind}{target} = buf[pos]",
            f"{ind}if {target} > 1:",
            f"{ind}    raise ValueError('not a boolean')",
            f"{ind}{target} = {target} == 1",
            f"{ind}pos += 1",
        ]
    elif kind in ("double", "float"):
        fmt, width = ("<d", 8) if kind == "double" else ("<f", 4)
        unpack = g.const(struct.Struct(fmt).unpack_from, "unpack", f"struct {fmt} unpack_from")
        out += [
            f"{ind}if pos + {width} > size:",
            f"{ind}    raise ValueError('truncated')",
            f"{ind}({target},) = {unpack}(buf, pos)",
            f"{ind}pos += {width}",
        ]
    elif kind == "enum":
        symbols = g.const(_enum_values(g, schema), "symbols", _enum_note(g, schema))
        index = g.var("i")
        _emit_long(g, out, ind, index)
        out += [
            f"{ind}if {index} < 0:",
            f"{ind}    raise ValueError('enum index')",
            f"{ind}{target} = {symbols}[{index}]",
        ]
    elif kind == "record":
        fn = _record_reader(g, schema)
        out.append(f"{ind}{target}, pos = {fn}(buf, pos, size)")
    elif kind in ("array", "map"):
        _emit_read_blocks(g, schema, kind, out, ind, target)
    else:
        raise Unsupported(f"type {kind}")


def _emit_read_union(g: _Gen, branches: list[Any], out: list[str], ind: str, target: str) -> None:
    index = g.var("u")
    # a branch index below 64 is one byte, twice the index (zigzag): tested as it is
    out.append(f"{ind}{index} = buf[pos]")
    for i, branch in enumerate(branches[:64]):
        out += [f"{ind}{'if' if i == 0 else 'elif'} {index} == {2 * i}:", f"{ind}    pos += 1"]
        _emit_read(g, branch, out, ind + "    ", target)
    out.append(f"{ind}else:")  # any other encoding of the index: decoded in full
    inner = ind + "    "
    _emit_long(g, out, inner, index)
    for i, branch in enumerate(branches):
        out.append(f"{inner}{'if' if i == 0 else 'elif'} {index} == {i}:")
        _emit_read(g, branch, out, inner + "    ", target)
    out += [f"{inner}else:", f"{inner}    raise ValueError('union index')"]


def _emit_read_blocks(
    g: _Gen, schema: dict[str, Any], kind: str, out: list[str], ind: str, target: str
) -> None:
    count, item = g.var("k"), g.var("item")
    out.append(f"{ind}{target} = {'[]' if kind == 'array' else '{}'}")
    out.append(f"{ind}while True:")
    inner = ind + "    "
    _emit_long(g, out, inner, count)
    out += [f"{inner}if {count} == 0:", f"{inner}    break", f"{inner}if {count} < 0:",
            f"{inner}    {count} = -{count}"]
    _emit_long(g, out, inner + "    ", g.var("blocksize"))
    # every item of our contracts takes at least one byte: a larger count is damage (and
    # would make the loop below run for as long as it says); fastavro reports it
    out += [f"{inner}if {count} > size - pos:", f"{inner}    raise ValueError('block count')"]
    out.append(f"{inner}for _ in range({count}):")
    body = inner + "    "
    if kind == "map":
        key = g.var("key")
        _emit_read(g, "string", out, body, key)
        _emit_read(g, schema["values"], out, body, item)
        out.append(f"{body}{target}[{key}] = {item}")
    else:
        _emit_read(g, schema["items"], out, body, item)
        out.append(f"{body}{target}.append({item})")


def _record_reader(g: _Gen, schema: dict[str, Any]) -> str:
    name = schema.get("name") or g.var("anon")
    fn = g.record_fns.get(name)
    if fn is not None:
        g.recursive = g.recursive or name in g.open_records
        return fn
    fn = g.record_fns[name] = g.var("_read_record")
    function = _Function(fn, [])
    g.open_records.add(name)
    g.values.append(function.values)
    body = function.body
    targets = []
    for field in schema["fields"]:
        target = g.var("f")
        targets.append((field["name"], target))
        _emit_read(g, field["type"], body, "    ", target)
    g.values.pop()
    g.open_records.discard(name)
    items = ", ".join(f"{name!r}: {target}" for name, target in targets)
    make = _record_maker(g, schema, tuple(name for name, _ in targets))
    if make is None:
        body.append(f"    return {{{items}}}, pos")
    elif g.models is not None and g.models.positional:
        body.append(f"    return {make}({', '.join(target for _, target in targets)}), pos")
    else:
        body.append(f"    return {make}({{{items}}}), pos")
    g.functions.append(function)
    return fn


def _record_maker(g: _Gen, schema: dict[str, Any], fields: tuple[str, ...]) -> str | None:
    """The name of the constant that turns this record's dict into the caller's object
    (:class:`Models`), or None: the record stays a dict."""
    if g.models is None:
        return None
    factory = g.models.records.get(str(schema.get("name")))
    if factory is None:
        return None
    make = factory(fields)
    if make is None:
        raise Unsupported(f"record {schema.get('name')} does not match its model")
    return g.const(make, "make", f"makes record {schema.get('name')} of fields {fields!r}")


def _enum_values(g: _Gen, schema: dict[str, Any]) -> tuple[Any, ...]:
    """An enum's values by index: its symbols, or what :class:`Models` converts them to."""
    symbols = tuple(schema["symbols"])
    convert = None if g.models is None else g.models.enums.get(str(schema.get("name")))
    if convert is None:
        return symbols
    try:
        return tuple(convert(symbol) for symbol in symbols)
    except (ValueError, TypeError) as exc:
        raise Unsupported(f"enum {schema.get('name')}: {exc}") from exc


def _enum_note(g: _Gen, schema: dict[str, Any]) -> str:
    converted = g.models is not None and str(schema.get("name")) in g.models.enums
    how = " (converted by the models)" if converted else ""
    return f"enum {schema.get('name')} symbols {tuple(schema['symbols'])!r}{how}"


@dataclass(frozen=True)
class Models:
    """What a reader builds instead of plain values (:func:`compile_reader`'s ``models``).

    ``records``: Avro full record name -> factory, called once at compile time with the
    record's field names (schema order), returning ``make(fields dict) -> object`` (with
    ``positional``: ``make(*values in that order)``) or None when it cannot build that
    record (then no reader is compiled). ``enums``: Avro full enum
    name -> converter of a symbol (applied once per symbol at compile time)."""

    records: Mapping[str, Callable[[tuple[str, ...]], Callable[..., Any] | None]]
    enums: Mapping[str, Callable[[str], Any]]
    positional: bool = False
    """False: ``make`` takes the record's fields dict; True: the field values as positional
    arguments in the order the factory was given (no dict built at all)."""
    key: str = ""
    """Names what the factories and converters build (e.g. ``"plain records of Product
    Viewed"``), written into the reader's source: readers of the same source and key get
    interchangeable constants, so a compiled reader (:func:`reader_source`) may serve them.
    Empty: unnamed, never served by a compiled reader."""


_BASE_SCOPE: dict[str, Any] = {"_as_datetime": _as_datetime, "_EXACT_MS": _EXACT_MS,
                               "_fromtimestamp": _fromtimestamp, "_UTC": UTC}
"""Constants every generated reader may use (the generator's helpers)."""

_HELPERS = inspect.getsource(_read_varint)
"""Helpers defined in every reader's source (not passed as constants): called for every
multi-byte varint (every timestamp), so compiled along with the reader; their text is part of
the source, and so of its digest."""

NATIVE_PACKAGE = "schemas._readers"
"""Where ``make native`` puts the compiled readers: one module per reader source,
``r_<SHA-256 of the source>``, generated by :meth:`ReaderSource.typed_module` (gitignored)."""


@dataclass(frozen=True)
class ReaderSource:
    """One generated reader: the source :func:`compile_reader` executes, the constants it
    runs with, and the same code as a typed module that mypyc compiles (``make native``).

    The source is deterministic (the same schema and models give the same text) and names
    what each constant stands for in its first comment lines, so its SHA-256 (:attr:`digest`)
    identifies a compiled reader: one is used only for the very source it was built from."""

    name: str
    source: str
    scope: dict[str, Any]
    functions: tuple[_Function, ...]
    entry: str
    """The record function of the schema itself (``read`` calls it)."""
    compilable: bool
    """Whether a compiled form may serve this reader: its constants are all named in the
    source (no models, or models with a ``key``) and no record contains itself (a compiled
    function does not check the recursion depth)."""

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()

    @property
    def module(self) -> str:
        """The compiled module's name (in :data:`NATIVE_PACKAGE`)."""
        return f"r_{self.digest}"

    def compile(self) -> Reader:
        """The reader, executed from :attr:`source` (the interpreted path)."""
        scope = dict(self.scope)
        exec(compile(self.source, f"<avro reader {self.name}>", "exec"), scope)
        reader: Reader = scope["read"]
        return reader

    def typed_module(self) -> str:
        """:attr:`source` as a module mypyc compiles: the same functions with typed
        signatures (every variable holding a read value declared ``Any``, or mypyc would
        insert checks of the type it infers from the first assignment), the constants as
        module globals that ``install(scope)`` sets before use, and ``SOURCE_SHA256``."""
        names = list(self.scope)
        out = [f'"""Compiled Avro reader of {self.name} (generated by schemas.avrocode at build',
               'time from the reader source of the digest below: do not edit)."""', "",
               "from typing import Any", "", f"SOURCE_SHA256 = {self.digest!r}",
               *(line for line in self.source.splitlines() if line.startswith("# ")), ""]
        out += [f"{name}: Any = None" for name in names]
        out += ["", "", _HELPERS.rstrip("\n")]
        for fn in self.functions:
            out += ["", "", f"def {fn.name}(buf: bytes, pos: int, size: int) -> tuple[Any, int]:",
                    *(f"    {value}: Any" for value in fn.values), *fn.body]
        out += ["", "", "def read(buf: bytes, pos: int) -> tuple[Any, int]:",
                f"    return {self.entry}(buf, pos, len(buf))", "", "",
                "def install(scope: dict[str, Any]) -> None:", f"    global {', '.join(names)}"]
        out += [f"    {name} = scope[{name!r}]" for name in names]
        return "\n".join(out) + "\n"


def reader_source(schema: Any, models: Models | None = None) -> ReaderSource | None:
    """The generated reader of a record schema (:func:`compile_reader`), not yet executed,
    or ``None`` when the schema uses something not covered (see the module docs)."""
    g = _Gen(models)
    try:
        schema = g.resolve(schema)
        if not isinstance(schema, dict) or schema.get("type") != "record":
            return None
        fn = _record_reader(g, schema)
    except (Unsupported, KeyError, TypeError):
        return None
    builds = "dicts" if models is None else models.key or "unnamed models"
    lines = [f"# reads {schema.get('name')}, builds {builds}", *g.notes, "", _HELPERS]
    for function in g.functions:
        lines += [f"def {function.name}(buf, pos, size):", *function.body, ""]
    source = "\n".join(lines) + f"\ndef read(buf, pos):\n    return {fn}(buf, pos, len(buf))\n"
    named = models is None or bool(models.key)
    return ReaderSource(str(schema.get("name")), source, {**_BASE_SCOPE, **g.consts},
                        tuple(g.functions), fn, named and not g.recursive)


def compile_reader(schema: Any, models: Models | None = None, *,
                   native: bool = True) -> Reader | None:
    """``read(buf, pos) -> (record dict, position after it)`` for a record schema, or
    ``None`` when the schema uses something not covered (see the module docs).

    With ``models``, records and enums named there are built as the caller's objects while
    reading (the stream workers' event models: no dict of plain values converted after).
    With ``native`` (and unless ``PERSONAFLOW_NATIVE=0``), the compiled form of exactly this
    source when ``make native`` built one (:func:`compiled_reader`), else the source executed."""
    generated = reader_source(schema, models)
    if generated is None:
        return None
    if native:
        reader = compiled_reader(generated)
        if reader is not None:
            return reader
    return generated.compile()


def native_enabled() -> bool:
    """Compiled code may be used (``PERSONAFLOW_NATIVE`` is not ``0``)."""
    return os.environ.get("PERSONAFLOW_NATIVE", "1") != "0"


def compiled_reader(generated: ReaderSource) -> Reader | None:
    """The compiled reader built from ``generated``'s exact source, its constants installed
    (the objects the executed source would get), or None: not compilable, compiled code
    turned off, not built, or only its interpreted module there."""
    module = compiled_module(generated)
    if module is None:
        return None
    module.install(generated.scope)
    reader: Reader = module.read
    return reader


def compiled_module(generated: ReaderSource) -> Any:
    """The compiled module of ``generated``'s exact source (constants not installed), or
    None (see :func:`compiled_reader`)."""
    if not generated.compilable or not native_enabled():
        return None
    try:
        module = importlib.import_module(f"{NATIVE_PACKAGE}.{generated.module}")
    except ImportError:
        return None
    if not is_compiled(getattr(module, "read", None)):
        return None  # the typed source alone (a build that did not finish), interpreted
    return module if getattr(module, "SOURCE_SHA256", None) == generated.digest else None


def is_compiled(reader: Any) -> bool:
    """Whether ``reader`` is compiled code (mypyc), not a Python function."""
    return callable(reader) and not isinstance(reader, FunctionType)


# ---------------------------------------------------------------------- writer

_WRITER_PRELUDE = "\n".join([
    "import struct",
    "from datetime import UTC, datetime",
    "from typing import Final",
    "",
    "_MIN_LONG: Final = -(1 << 63)",
    "_MAX_LONG: Final = (1 << 63) - 1",
    "_SMALL: Final = [bytes((n,)) for n in range(128)]",
    "_LENGTHS: Final = [bytes((n << 1,)) for n in range(64)]",
    "_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)",
    "", "", inspect.getsource(_varint), "", inspect.getsource(_millis),
])
"""What every writer's source starts with: the varint and ``timestamp-millis`` helpers
(called for every multi-byte long and every timestamp, so compiled along with the writer)
and the constants they use, ``Final`` (a compiled module reads them as C statics, not from
its globals dict). The writer's own constants (enum indexes, struct packers) follow as
``Final`` literals: a writer's source holds everything it runs with, so its digest
identifies it completely."""


def _emit_write(g: _Gen, schema: Any, lines: list[str], ind: str, value: str) -> None:
    """Lines appending the bytes of ``value`` (an expression) to the list ``out``."""
    schema = g.resolve(schema)
    if isinstance(schema, list):
        _emit_write_union(g, schema, lines, ind, value)
        return
    kind = schema if isinstance(schema, str) else schema.get("type")
    logical = schema.get("logicalType") if isinstance(schema, dict) else None
    if logical is not None:
        if logical != "timestamp-millis" or kind != "long":
            raise Unsupported(f"logical type {logical}")
        lines.append(f"{ind}out.append(_varint(_millis({value})))")
        return
    if isinstance(kind, (dict, list)):
        _emit_write(g, kind, lines, ind, value)
        return
    if kind == "null":
        lines += [f"{ind}if {value} is not None:", f"{ind}    raise ValueError('not null')"]
    elif kind in ("long", "int"):
        x = _declare(g, "x", "Any")
        lines += [f"{ind}{x} = {value}",  # checked here: a compiled _varint takes a bool as 1
                  f"{ind}if type({x}) is not int:",
                  f"{ind}    raise ValueError('not a long')",
                  f"{ind}if 0 <= {x} < 64:",  # one byte: the zigzag of a length below 64
                  f"{ind}    out.append(_LENGTHS[{x}])",
                  f"{ind}else:",
                  f"{ind}    out.append(_varint({x}))"]
    elif kind == "string":
        text, b, n = _declare(g, "s", "str"), _declare(g, "b", "bytes"), _declare(g, "n", "int")
        lines += [f"{ind}{text} = {value}", f"{ind}{b} = {text}.encode()", f"{ind}{n} = len({b})",
                  f"{ind}out.append(_LENGTHS[{n}] if {n} < 64 else _varint({n}))",
                  f"{ind}out.append({b})"]
    elif kind == "bytes":
        x = _declare(g, "x", "Any")
        lines += [f"{ind}{x} = {value}", f"{ind}if type({x}) is not bytes:",
                  f"{ind}    raise ValueError('not bytes')",
                  f"{ind}out.append(_varint(len({x})))", f"{ind}out.append({x})"]
    elif kind == "boolean":
        x = _declare(g, "x", "Any")
        lines += [f"{ind}{x} = {value}", f"{ind}if {x} is True:", f"{ind}    out.append(b'\\x01')",
                  f"{ind}elif {x} is False:", f"{ind}    out.append(b'\\x00')",
                  f"{ind}else:", f"{ind}    raise ValueError('not a boolean')"]
    elif kind in ("double", "float"):
        fmt = "<d" if kind == "double" else "<f"
        pack = _constant(g, "pack", f"struct.Struct({fmt!r}).pack")
        lines.append(f"{ind}out.append({pack}({value}))")
    elif kind == "enum":
        indexes = {str(s): _varint(i) for i, s in enumerate(schema["symbols"])}
        lines.append(f"{ind}out.append({_constant(g, 'symbols', repr(indexes))}[{value}])")
    elif kind == "record":
        lines.append(f"{ind}{_record_writer(g, schema)}({value}, out)")
    elif kind in ("array", "map"):
        _emit_write_blocks(g, schema, kind, lines, ind, value)
    else:
        raise Unsupported(f"type {kind}")


def _constant(g: _Gen, stem: str, expression: str) -> str:
    """A module constant of the writer's source (``Final``), once per distinct expression."""
    name = g.consts.get(expression)
    if name is None:
        name = g.consts[expression] = g.var(f"_{stem}")
        g.lines.append(f"{name}: Final = {expression}")
    return str(name)


def _declare(g: _Gen, stem: str, annotation: str) -> str:
    """A new variable of the record function being generated, declared with ``annotation``
    in the typed module (mypyc checks it where it is assigned)."""
    name = g.var(stem)
    g.values[-1].append(f"{name}: {annotation}")
    return name


def _emit_write_blocks(
    g: _Gen, schema: dict[str, Any], kind: str, lines: list[str], ind: str, value: str
) -> None:
    """An array or map: one block of all its items (if any), then the empty block."""
    items, inner = _declare(g, "a", "Any"), ind + "        "
    lines += [f"{ind}{items} = {value}", f"{ind}if {items}:",
              f"{ind}    out.append(_varint(len({items})))"]
    if kind == "map":
        key, item = _declare(g, "key", "Any"), _declare(g, "item", "Any")
        lines.append(f"{ind}    for {key}, {item} in {items}.items():")
        _emit_write(g, "string", lines, inner, key)
        _emit_write(g, schema["values"], lines, inner, item)
    else:
        item = _declare(g, "item", "Any")
        lines.append(f"{ind}    for {item} in {items}:")
        _emit_write(g, schema["items"], lines, inner, item)
    lines.append(f"{ind}out.append(b'\\x00')")


def _emit_write_union(g: _Gen, branches: list[Any], lines: list[str], ind: str,
                      value: str) -> None:
    """Unions of ``null`` and one other type (what our contracts use)."""
    kinds = [b if isinstance(b, str) else b.get("type") for b in branches]
    if len(branches) != 2 or "null" not in kinds or kinds[0] == kinds[1]:
        raise Unsupported("union other than null + one type")
    null_at = kinds.index("null")
    other = branches[1 - null_at]
    v = _declare(g, "x", "Any")
    lines += [f"{ind}{v} = {value}", f"{ind}if {v} is None:",
              f"{ind}    out.append(b'\\x{null_at * 2:02x}')",
              f"{ind}else:", f"{ind}    out.append(b'\\x{(1 - null_at) * 2:02x}')"]
    _emit_write(g, other, lines, ind + "    ", v)


def _record_writer(g: _Gen, schema: dict[str, Any]) -> str:
    name = schema.get("name") or g.var("anon")
    fn = g.record_fns.get(name)
    if fn is not None:
        g.recursive = g.recursive or name in g.open_records
        return fn
    fn = g.record_fns[name] = g.var("_write_record")
    function = _Function(fn, ["    d = obj if type(obj) is dict else obj.__dict__"])
    g.open_records.add(name)
    g.values.append(function.values)
    for field in schema["fields"]:
        _emit_write(g, field["type"], function.body, "    ", f"d[{field['name']!r}]")
    g.values.pop()
    g.open_records.discard(name)
    g.functions.append(function)
    return fn


WRITERS_PACKAGE = "schemas._writers"
"""Where ``make native`` puts the compiled writers: one module per writer source,
``w_<SHA-256 of the source>``, generated by :meth:`WriterSource.typed_module` (gitignored)."""


@dataclass(frozen=True)
class WriterSource:
    """One generated writer: the source :func:`compile_writer` executes, the constants it runs
    with, and the same code as a typed module that mypyc compiles (``make native``); as
    :class:`ReaderSource`, a compiled writer is used only for the very source (:attr:`digest`)
    it was built from."""

    name: str
    source: str
    module_lines: tuple[str, ...]
    """The source's module level: imports, helpers, constants."""
    functions: tuple[_Function, ...]
    entry: str
    """The record function of the schema itself (``write`` calls it)."""
    compilable: bool
    """No record contains itself (a compiled function does not check the recursion depth)."""

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()

    @property
    def module(self) -> str:
        """The compiled module's name (in :data:`WRITERS_PACKAGE`)."""
        return f"w_{self.digest}"

    def compile(self) -> Writer:
        """The writer, executed from :attr:`source` (the interpreted path)."""
        scope: dict[str, Any] = {}
        exec(compile(self.source, f"<avro writer {self.name}>", "exec"), scope)
        writer: Writer = scope["write"]
        return writer

    def typed_module(self) -> str:
        """:attr:`source` as a module mypyc compiles: the same functions with typed signatures
        and variables (``out: list[bytes]``, each record's ``d: dict[str, Any]``, strings
        ``str``, their encodings ``bytes`` and lengths ``int``, other values ``Any``; mypyc
        checks each where it is assigned), and ``SOURCE_SHA256``."""
        out = [f'"""Compiled Avro writer of {self.name} (generated by schemas.avrocode at build',
               'time from the writer source of the digest below: do not edit)."""', "",
               "from typing import Any", "", f"SOURCE_SHA256 = {self.digest!r}", "",
               *self.module_lines]
        for fn in self.functions:
            out += ["", "", f"def {fn.name}(obj: Any, out: list[bytes]) -> None:",
                    "    d: dict[str, Any]", *(f"    {decl}" for decl in fn.values), *fn.body]
        out += ["", "", "def write(obj: Any) -> bytes:", "    out: list[bytes] = []",
                f"    {self.entry}(obj, out)", "    return b''.join(out)"]
        return "\n".join(out) + "\n"


def writer_source(schema: Any) -> WriterSource | None:
    """The generated writer of a record schema (:func:`compile_writer`), not yet executed, or
    ``None`` when the schema uses something not covered (see the module docs)."""
    g = _Gen()
    try:
        schema = g.resolve(schema)
        if not isinstance(schema, dict) or schema.get("type") != "record":
            return None
        fn = _record_writer(g, schema)
    except (Unsupported, KeyError, TypeError):
        return None
    module = (f"# writes {schema.get('name')}", *_WRITER_PRELUDE.rstrip("\n").splitlines(),
              "", *g.lines)
    lines = list(module)
    for function in g.functions:
        lines += ["", "", f"def {function.name}(obj, out):", *function.body]
    source = "\n".join(lines) + (
        f"\n\n\ndef write(obj):\n    out = []\n    {fn}(obj, out)\n    return b''.join(out)\n"
    )
    return WriterSource(str(schema.get("name")), source, module, tuple(g.functions), fn,
                        not g.recursive)


def compile_writer(schema: Any, *, native: bool = True) -> Writer | None:
    """``write(values) -> bytes`` (a model or a dict of the record's fields) for a record
    schema, or ``None`` when the schema uses something not covered (see the module docs).
    With ``native`` (and unless ``PERSONAFLOW_NATIVE=0``), the compiled form of exactly this
    source when ``make native`` built one (:func:`compiled_writer`), else the source executed."""
    generated = writer_source(schema)
    if generated is None:
        return None
    if native:
        writer = compiled_writer(generated)
        if writer is not None:
            return writer
    return generated.compile()


def compiled_writer(generated: WriterSource) -> Writer | None:
    """The compiled writer built from ``generated``'s exact source, or None: not compilable,
    compiled code turned off, not built, or only its interpreted module there."""
    if not generated.compilable or not native_enabled():
        return None
    try:
        module = importlib.import_module(f"{WRITERS_PACKAGE}.{generated.module}")
    except ImportError:
        return None
    write = getattr(module, "write", None)
    if not is_compiled(write) or getattr(module, "SOURCE_SHA256", None) != generated.digest:
        return None
    writer: Writer = module.write
    return writer

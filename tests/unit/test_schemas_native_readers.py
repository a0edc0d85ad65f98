"""Compiled Avro readers (``make native``: the plain readers of the current schemas, compiled
with mypyc from the typed form of the source the generator executes).

Properties, over every contract: the compiled reader gives the record the executed source
gives (the same classes and value types all the way down), and on damaged bytes the same
exception type, so the codec's fallback decides the same error; a reader whose generated
source differs (another schema, other models, a changed generator) is never taken from the
build, and with ``PERSONAFLOW_NATIVE=0`` none is. The typed module itself is checked without
a build: executed as Python, it reads what the source reads.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import schemas
from schemas.avrocode import (
    Models,
    Reader,
    compile_reader,
    compiled_reader,
    is_compiled,
    reader_source,
)
from schemas.codec import (
    _FAST_FAILURES,
    HEADER_SIZE,
    Codec,
    native_readers_status,
    plain_reader_source,
)
from schemas.errors import DecodeError
from schemas.models import EVENT_TYPES
from schemas.plain import PlainEvent, PlainRecord, plain_models
from schemas.registry import FileRegistry, current_schema
from tests.unit.decoding import damage, native_setting, same
from tests.unit.strategies import model_strategy

TYPES = sorted(EVENT_TYPES)
_SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large]
PACKAGE = Path(schemas.__file__).parent
BUILT = any((PACKAGE / "_readers").glob("r_*.so"))
needs_build = pytest.mark.skipif(not BUILT, reason="Avro readers not compiled: run `make native`")


@cache
def _readers(event_type: str) -> tuple[Reader, Reader]:
    """(compiled when built, executed) plain readers of ``event_type``'s current schema."""
    schema, models = current_schema(event_type), plain_models(event_type)
    with native_setting("1"):
        native = compile_reader(schema, models)
    executed = compile_reader(schema, models, native=False)
    assert native is not None and executed is not None
    return native, executed


@cache
def _codecs(event_type: str) -> tuple[Codec, Codec]:
    """Two codecs with ``event_type``'s read plan made: compiled readers allowed, and not."""
    out = []
    for value in ("1", "0"):
        codec = Codec(FileRegistry())
        with native_setting(value):
            codec._plan(codec.registry.id_for(event_type), b"")
        out.append(codec)
    return out[0], out[1]


def same_record(a: Any, b: Any) -> bool:
    """Plain records of the same class with the same values of the same types, recursively
    (and an input event's precomputed event time)."""
    if isinstance(a, PlainRecord):
        return (
            type(a) is type(b)
            and all(same_record(getattr(a, n), getattr(b, n)) for n in a.fields)
            and (not isinstance(a, PlainEvent) or same(a.occurred_ts, b.occurred_ts))  # type: ignore[attr-defined]
        )
    if isinstance(a, list):
        return (type(b) is list and len(a) == len(b)
                and all(same_record(x, y) for x, y in zip(a, b, strict=True)))  # fmt: skip
    return same(a, b)


def _read(reader: Reader, raw: bytes) -> tuple[Any, ...]:
    """What ``reader`` does with ``raw``: ("read", end, record) or ("raised", type)."""
    try:
        record, end = reader(raw, HEADER_SIZE)
    except Exception as exc:  # compared below: the same type, one the codec falls back on
        return ("raised", type(exc))
    return ("read", end, record)


def _same_read(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    if a[0] == "raised" or b[0] == "raised":
        return a == b and issubclass(a[1], _FAST_FAILURES)
    return a[1] == b[1] and same_record(a[2], b[2])


def _outcome(decode: Callable[[bytes], Any], raw: bytes) -> tuple[Any, ...]:
    try:
        event = decode(raw)
    except DecodeError as exc:
        return ("error", type(exc).__name__, str(exc))
    return ("ok", event)


def _same_outcome(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    if a[0] == "error" or b[0] == "error":
        return a == b
    return same_record(a[1], b[1])


# ---------------------------------------------------------------- built: compiled readers


@needs_build
@pytest.mark.parametrize("event_type", TYPES)
def test_every_current_plain_reader_runs_compiled(event_type: str) -> None:
    native, executed = _readers(event_type)
    assert is_compiled(native) and not is_compiled(executed)
    compiled, interpreted = _codecs(event_type)
    assert compiled.native_readers == 1 and interpreted.native_readers == 0


@needs_build
def test_status_names_how_many_event_types_run_compiled() -> None:
    with native_setting("1"):
        assert native_readers_status() == f"compiled: {len(TYPES)} of {len(TYPES)} event types"
    with native_setting("0"):
        assert native_readers_status() == "interpreted: PERSONAFLOW_NATIVE=0"


@needs_build
@pytest.mark.parametrize("event_type", TYPES)
@settings(max_examples=25, deadline=None, suppress_health_check=_SLOW)
@given(data=st.data())
def test_compiled_and_executed_readers_read_the_same(event_type: str, data: Any) -> None:
    native, executed = _readers(event_type)
    codec = _codecs(event_type)[1]
    raw = codec.encode(data.draw(model_strategy(EVENT_TYPES[event_type])))
    read = _read(native, raw)
    assert read[0] == "read" and read[1] == len(raw)
    assert _same_read(read, _read(executed, raw))


@needs_build
@pytest.mark.parametrize("event_type", TYPES)
@settings(max_examples=30, deadline=None, suppress_health_check=_SLOW)
@given(data=st.data())
def test_damaged_bytes_fail_or_read_the_same(event_type: str, data: Any) -> None:
    native, executed = _readers(event_type)
    compiled, interpreted = _codecs(event_type)
    damaged = damage(interpreted.encode(data.draw(model_strategy(EVENT_TYPES[event_type]))), data)
    assert _same_read(_read(native, damaged), _read(executed, damaged))
    assert _same_outcome(_outcome(compiled.decode_plain, damaged),
                         _outcome(interpreted.decode_plain, damaged))  # fmt: skip


@needs_build
@settings(max_examples=200, deadline=None)
@given(event_type=st.sampled_from(TYPES), body=st.binary(max_size=120))
def test_random_bodies_fail_or_read_the_same(event_type: str, body: bytes) -> None:
    native, executed = _readers(event_type)
    compiled, _ = _codecs(event_type)
    raw = bytes([0]) + compiled.registry.id_for(event_type).to_bytes(4, "big") + body
    assert _same_read(_read(native, raw), _read(executed, raw))


@needs_build
def test_a_reader_of_another_source_is_not_taken_from_the_build() -> None:
    event_type = "Product Viewed"
    schema = current_schema(event_type)
    generated = plain_reader_source(event_type)
    assert generated is not None and compiled_reader(generated) is not None
    # the generator changed: the same reader's source with one more line
    changed = dataclasses.replace(generated, source=generated.source + "# changed\n")
    assert compiled_reader(changed) is None
    # other models (the dicts of decode_raw; unnamed models) and another schema
    assert not is_compiled(compile_reader(schema))
    unnamed = dataclasses.replace(plain_models(event_type), key="")
    assert not is_compiled(compile_reader(schema, unnamed))
    other = {**schema, "fields": [f for f in schema["fields"] if f["name"] != "currency"]}
    dicts = reader_source(other)
    assert dicts is not None and compiled_reader(dicts) is None


@needs_build
def test_turned_off_no_reader_is_compiled() -> None:
    with native_setting("0"):
        for event_type in TYPES:
            schema, models = current_schema(event_type), plain_models(event_type)
            assert not is_compiled(compile_reader(schema, models))
    assert _codecs("Order Completed")[1].native_readers == 0


_PROBE = ("from schemas.codec import native_readers_status as s; print(s())")


def _status_in_copy(tmp_path: Path, edit: Callable[[Path], None]) -> str:
    """native_readers_status() in a fresh interpreter importing a copy of schemas/ (with its
    compiled readers) that ``edit`` changed."""
    copy = tmp_path / "schemas"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    edit(copy)
    env = {**os.environ, "PERSONAFLOW_NATIVE": "1", "PYTHONPATH": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", _PROBE], cwd=tmp_path, env=env,
                         capture_output=True, text=True, check=True, timeout=120)  # fmt: skip
    return out.stdout.strip().splitlines()[-1]


@needs_build
def test_a_changed_generator_runs_its_source(tmp_path: Path) -> None:
    def edit(copy: Path) -> None:
        code = copy / "avrocode.py"
        text = code.read_text()
        assert "raise ValueError('truncated')" in text
        code.write_text(text.replace("raise ValueError('truncated')", "raise ValueError('cut')"))

    assert _status_in_copy(tmp_path, lambda copy: None).startswith("compiled: ")
    assert _status_in_copy(tmp_path / "edited", edit) == (
        "interpreted: no compiled reader matches the current sources (make native)"
    )


# ---------------------------------------------------------------- no build needed


@pytest.mark.parametrize("event_type", TYPES)
@settings(max_examples=10, deadline=None, suppress_health_check=_SLOW)
@given(data=st.data())
def test_the_typed_module_reads_what_the_source_reads(event_type: str, data: Any) -> None:
    """The module mypyc compiles, run as Python: the same reader as the executed source."""
    typed = _typed_reader(event_type)
    executed = _readers(event_type)[1]
    raw = _codecs(event_type)[1].encode(data.draw(model_strategy(EVENT_TYPES[event_type])))
    assert _same_read(_read(typed, raw), _read(executed, raw))
    damaged = damage(raw, data)
    assert _same_read(_read(typed, damaged), _read(executed, damaged))


@cache
def _typed_reader(event_type: str) -> Reader:
    generated = plain_reader_source(event_type)
    assert generated is not None and generated.compilable
    namespace: dict[str, Any] = {}
    exec(compile(generated.typed_module(), f"<typed {event_type}>", "exec"), namespace)
    assert namespace["SOURCE_SHA256"] == generated.digest
    namespace["install"](generated.scope)
    reader: Reader = namespace["read"]
    return reader


def test_the_source_names_its_constants_and_models() -> None:
    """What the digest covers: the constants' meaning is written in the source, so readers
    of different enums or record classes never share a compiled reader."""
    generated = plain_reader_source("Product Viewed")
    assert generated is not None
    head = generated.source.splitlines()[0]
    assert head == "# reads io.personaflow.v1.ProductViewed, builds plain records of Product Viewed"
    notes = [line for line in generated.source.splitlines() if line.startswith("# _")]
    assert len(notes) == len(generated.scope) - 4  # each constant but the four helpers
    assert any("makes record io.personaflow.v1.Product of fields" in n for n in notes)


def test_a_recursive_record_is_never_compiled() -> None:
    """A compiled function does not check the recursion depth: such readers stay executed."""
    node = {"type": "record", "name": "Node", "fields": [
        {"name": "value", "type": "long"}, {"name": "next", "type": ["null", "Node"]}]}
    generated = reader_source(node)
    assert generated is not None and not generated.compilable
    reader = compile_reader(node)
    assert reader is not None and not is_compiled(reader)
    assert reader(b"\x02\x02\x04\x00", 0) == ({"value": 1, "next": {"value": 2, "next": None}}, 4)


def test_models_without_a_key_are_not_compilable() -> None:
    models = plain_models("Cart Viewed")
    assert reader_source(current_schema("Cart Viewed"), models).compilable  # type: ignore[union-attr]
    unnamed = Models(models.records, models.enums, positional=True)
    assert not reader_source(current_schema("Cart Viewed"), unnamed).compilable  # type: ignore[union-attr]

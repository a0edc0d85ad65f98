"""Compiled Avro writers (``make native``: the writers of the current schemas, compiled with
mypyc from the typed form of the source the generator executes).

Properties, over every contract (the output events Persona Transition and Trigger among
them): the compiled writer, the executed source and fastavro's ``schemaless_writer`` write the
same bytes, from a model and from its plain dict; a value the writers refuse is refused by
both (an exception the codec falls back to fastavro on), so the codec answers the same; a
writer whose source differs is never taken from the build, nor any with
``PERSONAFLOW_NATIVE=0``. The typed module itself is checked without a build.
"""

from __future__ import annotations

import dataclasses
import io
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from fastavro import schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import schemas
from schemas.avrocode import Writer, compile_writer, compiled_writer, is_compiled, writer_source
from schemas.codec import _WRITE_FAILURES, HEADER_SIZE, Codec, native_writers_status
from schemas.errors import EncodeError
from schemas.models import EVENT_TYPES
from schemas.registry import FileRegistry, current_schema
from schemas.samples import sample_events
from tests.unit.decoding import native_setting
from tests.unit.strategies import model_strategy

TYPES = sorted(EVENT_TYPES)
OUTPUTS = ["Persona Transition", "Trigger"]
_SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large]
BUILT = any((Path(schemas.__file__).parent / "_writers").glob("w_*.so"))
needs_build = pytest.mark.skipif(not BUILT, reason="Avro writers not compiled: run `make native`")


@cache
def _writers(event_type: str) -> tuple[Writer, Writer]:
    """(compiled when built, executed) writers of ``event_type``'s current schema."""
    schema = current_schema(event_type)
    with native_setting("1"):
        native = compile_writer(schema)
    executed = compile_writer(schema, native=False)
    assert native is not None and executed is not None
    return native, executed


@cache
def _codecs() -> tuple[Codec, Codec]:
    """Two codecs with every event type's writer made: compiled writers allowed, and not."""
    sample = sample_events()
    out = []
    for value in ("1", "0"):
        codec = Codec(FileRegistry())
        with native_setting(value):
            for event_type in TYPES:
                codec.encode(sample[event_type])
        out.append(codec)
    return out[0], out[1]


def _fastavro(event_type: str, values: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    schemaless_writer(out, current_schema(event_type), values)
    return out.getvalue()


def _write(writer: Writer, value: Any) -> tuple[Any, ...]:
    """What ``writer`` does with ``value``: ("wrote", bytes) or ("refused",)."""
    try:
        return ("wrote", writer(value))
    except _WRITE_FAILURES:
        return ("refused",)


def _encode(codec: Codec, event: BaseModel) -> tuple[Any, ...]:
    try:
        return ("ok", codec.encode(event))
    except EncodeError as exc:
        return ("error", str(exc))
    except Exception as exc:  # fastavro's own (e.g. AttributeError for a str map): the same
        return ("raised", type(exc), str(exc))


# ---------------------------------------------------------------- built: compiled writers


@needs_build
@pytest.mark.parametrize("event_type", TYPES)
def test_every_current_writer_runs_compiled(event_type: str) -> None:
    native, executed = _writers(event_type)
    assert is_compiled(native) and not is_compiled(executed)
    compiled, interpreted = _codecs()
    assert compiled.native_writers == len(TYPES) and interpreted.native_writers == 0


@needs_build
@pytest.mark.parametrize("event_type", TYPES)
@settings(max_examples=25, deadline=None, suppress_health_check=_SLOW)
@given(data=st.data())
def test_compiled_executed_and_fastavro_write_the_same_bytes(event_type: str, data: Any) -> None:
    event = data.draw(model_strategy(EVENT_TYPES[event_type]))
    native, executed = _writers(event_type)
    values = event.model_dump()
    expected = _fastavro(event_type, values)
    assert native(event) == executed(event) == expected
    assert native(values) == executed(values) == expected  # plain dicts (nested ones too)
    assert _codecs()[0].encode(event)[HEADER_SIZE:] == expected


WRONG: list[Any] = [None, "", "x" * 70, 0, 63, 64, -1, -(2**63), 2**63, 2**70, 1.5, True,
                    b"\x00", [], {}, {"k": 1}, ["x"]]  # fmt: skip


@needs_build
@pytest.mark.parametrize("event_type", OUTPUTS)
def test_a_value_either_writer_refuses_is_refused_by_both(event_type: str) -> None:
    """Every field of a sample set to values of other types and ranges (what a model built
    without validation could hold): the same bytes or both refuse, and the codecs agree."""
    event = sample_events()[event_type]
    native, executed = _writers(event_type)
    compiled, interpreted = _codecs()
    for name in type(event).model_fields:
        for wrong in WRONG:
            changed = event.model_copy(update={name: wrong})
            assert _write(native, changed) == _write(executed, changed), (name, wrong)
            assert _encode(compiled, changed) == _encode(interpreted, changed), (name, wrong)


@needs_build
def test_a_writer_of_another_source_is_not_taken_from_the_build() -> None:
    schema = current_schema("Trigger")
    generated = writer_source(schema)
    assert generated is not None and compiled_writer(generated) is not None
    changed = dataclasses.replace(generated, source=generated.source + "# changed\n")
    assert compiled_writer(changed) is None
    other = {**schema, "fields": [f for f in schema["fields"] if f["name"] != "segment"]}
    assert not is_compiled(compile_writer(other))
    with native_setting("0"):
        assert not is_compiled(compile_writer(schema))
        assert compiled_writer(generated) is None


# ---------------------------------------------------------------- no build needed


@pytest.mark.parametrize("event_type", TYPES)
@settings(max_examples=10, deadline=None, suppress_health_check=_SLOW)
@given(data=st.data())
def test_the_typed_module_writes_what_the_source_writes(event_type: str, data: Any) -> None:
    """The module mypyc compiles, run as Python: the same bytes as the executed source."""
    event = data.draw(model_strategy(EVENT_TYPES[event_type]))
    expected = _fastavro(event_type, event.model_dump())
    assert _typed_writer(event_type)(event) == _writers(event_type)[1](event) == expected


@cache
def _typed_writer(event_type: str) -> Writer:
    generated = writer_source(current_schema(event_type))
    assert generated is not None and generated.compilable
    namespace: dict[str, Any] = {}
    exec(compile(generated.typed_module(), f"<typed {event_type}>", "exec"), namespace)
    assert namespace["SOURCE_SHA256"] == generated.digest
    writer: Writer = namespace["write"]
    return writer


def test_the_source_holds_its_constants() -> None:
    """What the digest covers: a writer runs with nothing but its source (enum indexes and
    struct packers are literals in it), so writers of different enums never share a
    compiled writer."""
    generated = writer_source(current_schema("Persona Transition"))
    assert generated is not None
    assert "_symbols" in generated.source
    assert "{'lifecycle': b'\\x00', 'interest': b'\\x02', 'journey': b'\\x04'}" in generated.source
    trigger = writer_source(current_schema("Trigger"))
    assert trigger is not None and "struct.Struct('<d').pack" in trigger.source


def test_a_recursive_record_is_never_compiled() -> None:
    node = {"type": "record", "name": "Node", "fields": [
        {"name": "value", "type": "long"}, {"name": "next", "type": ["null", "Node"]}]}
    generated = writer_source(node)
    assert generated is not None and not generated.compilable
    writer = compile_writer(node)
    assert writer is not None and not is_compiled(writer)
    assert writer({"value": 1, "next": {"value": 2, "next": None}}) == b"\x02\x02\x04\x00"


@needs_build
def test_status_names_how_many_event_types_write_compiled() -> None:
    with native_setting("1"):
        assert native_writers_status() == f"compiled: {len(TYPES)} of {len(TYPES)} event types"
    with native_setting("0"):
        assert native_writers_status() == "interpreted: PERSONAFLOW_NATIVE=0"

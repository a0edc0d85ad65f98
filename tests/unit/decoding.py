"""Helpers of the decode tests: strict equality (the same types all the way down: ``True == 1``
would hide a bool read as an int; models with the same fields in the same order and the same
fields set; a plain record and a model with the same values), damaged wire bytes drawn by
hypothesis, codecs whose read plans are made once for all the examples of a test, and a
``PERSONAFLOW_NATIVE`` setting for the span of a block."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from hypothesis import strategies as st
from pydantic import BaseModel

from schemas.codec import HEADER_SIZE, Codec
from schemas.plain import PlainEvent, PlainRecord
from schemas.registry import FileRegistry

GeneratedReader = Literal["fast", "model", "plain"]
_ALL: tuple[GeneratedReader, ...] = ("fast", "model", "plain")
_CODECS: dict[tuple[GeneratedReader, ...], Codec] = {}


def planned_codec(event_type: str, readers: tuple[GeneratedReader, ...] = _ALL) -> Codec:
    """A codec whose read plan for ``event_type``'s current schema id is made, with only the
    generated ``readers`` named (the others left out, as for a schema the generator does not
    cover: without "model"/"plain" a record takes the dict path, without "fast" too fastavro alone
    reads it). One codec per ``readers``, shared by the tests: a plan's readers are compiled
    once, not per hypothesis example (compiling them was most of the property tests' time;
    ``test_every_contract_compiles*`` check that each compiles)."""
    codec = _CODECS.get(readers)
    if codec is None:
        codec = _CODECS[readers] = Codec(FileRegistry())
    schema_id = codec.registry.id_for(event_type)
    if schema_id not in codec._plans:
        full = planned_codec(event_type) if readers != _ALL else codec
        plan = full._plans.get(schema_id) or full._plan(schema_id, b"")
        copy = type(plan)(plan.event_type, plan.writer, plan.reader)
        for name in _ALL:  # a plan builds its readers on first use: these are set beforehand
            setattr(copy, name, getattr(plan, name) if name in readers else None)
        codec._plans[schema_id] = copy
    return codec


def same(a: Any, b: Any) -> bool:
    """Equal values of the same types, recursively (dicts, lists, pydantic models)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, BaseModel):
        return (
            list(a.__dict__) == list(b.__dict__)
            and a.model_fields_set == b.model_fields_set
            and a.__pydantic_extra__ == b.__pydantic_extra__
            and all(same(a.__dict__[k], b.__dict__[k]) for k in a.__dict__)
        )
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def same_plain(plain: Any, model: Any) -> bool:
    """``plain`` (:mod:`schemas.plain`) holds exactly ``model``'s values: the plain class of
    the model's class, the fields in the same order, each value of the same type (nested
    plain records against nested models), recursively."""
    if isinstance(model, BaseModel):
        return (
            isinstance(plain, PlainRecord)
            and plain.model is type(model)
            and plain.fields == tuple(model.__dict__)
            and all(same_plain(getattr(plain, k), v) for k, v in model.__dict__.items())
            and (  # an input event's precomputed event time: exactly the model's
                not isinstance(plain, PlainEvent)
                or same(plain.occurred_ts, model.occurred_at.timestamp())  # type: ignore[attr-defined]
            )
        )
    if isinstance(model, list):
        return (
            type(plain) is list
            and len(plain) == len(model)
            and all(same_plain(x, y) for x, y in zip(plain, model, strict=True))
        )
    if isinstance(model, dict):
        return (
            type(plain) is dict
            and plain.keys() == model.keys()
            and all(same_plain(plain[k], model[k]) for k in model)
        )
    return same(plain, model)


def damage(raw: bytes, data: Any) -> bytes:
    """``raw`` with one byte flipped, the tail cut or 1-4 bytes inserted after the header
    (``data``: hypothesis' ``st.data()``)."""
    out = bytearray(raw)
    at = data.draw(st.integers(HEADER_SIZE, len(out) - 1))
    how = data.draw(st.sampled_from(["flip", "cut", "insert"]))
    if how == "flip":
        out[at] = data.draw(st.integers(0, 255))
    elif how == "cut":
        del out[at:]
    else:
        out[at:at] = data.draw(st.binary(min_size=1, max_size=4))
    return bytes(out)


@contextmanager
def native_setting(value: str) -> Iterator[None]:
    """``PERSONAFLOW_NATIVE=value`` inside the block, the setting before it restored after."""
    before = os.environ.get("PERSONAFLOW_NATIVE")
    os.environ["PERSONAFLOW_NATIVE"] = value
    try:
        yield
    finally:
        if before is None:
            del os.environ["PERSONAFLOW_NATIVE"]
        else:
            os.environ["PERSONAFLOW_NATIVE"] = before

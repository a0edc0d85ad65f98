"""Build event models from trusted Avro-decoded dicts without re-running pydantic validation.

``model_from_raw(name, record)`` converts what Avro hands back in plain form (nested records
such as ``Product`` and ``Traits`` become models, enum strings their ``StrEnum``) and fills the
model's ``__dict__`` directly, as ``model_construct`` does but without its per-field default
handling, which made ``model_construct`` slower than full validation (see
``docs/bench/codecs.md``). A record whose keys are not exactly the model's fields falls back to
``model_construct``. Only for records decoded by fastavro against our schemas (types already
checked); anything from outside goes through :func:`schemas.codec.decode_event` or
``decode_json``.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from enum import Enum
from functools import cache
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel

from schemas.models import EVENT_TYPES

Convert = Callable[[Any], Any]


def model_from_raw(event_type: str, record: dict[str, Any]) -> BaseModel:
    """The model of ``event_type`` holding ``record`` (a fastavro-decoded dict), unvalidated."""
    return _builder(EVENT_TYPES[event_type])(record)


@cache
def _builder(cls: type[BaseModel]) -> Callable[[dict[str, Any]], BaseModel]:
    converters = [
        (name, conv)
        for name, info in cls.model_fields.items()
        if (conv := _converter(info.annotation)) is not None
    ]
    names = frozenset(cls.model_fields)
    new = cls.__new__
    setattr_ = object.__setattr__

    def build(record: dict[str, Any]) -> BaseModel:
        if record.keys() != names:  # not a record of the current schema: take the slow road
            return cls.model_construct(**_convert(record, converters))
        values = _convert(record, converters) if converters else dict(record)
        obj = new(cls)
        setattr_(obj, "__dict__", values)
        setattr_(obj, "__pydantic_fields_set__", set(names))
        setattr_(obj, "__pydantic_extra__", None)
        setattr_(obj, "__pydantic_private__", None)
        return obj

    return build


def _convert(record: dict[str, Any], converters: list[tuple[str, Convert]]) -> dict[str, Any]:
    values = dict(record)
    for name, conv in converters:
        value = values.get(name)
        if value is not None:
            values[name] = conv(value)
    return values


def _converter(annotation: Any) -> Convert | None:
    """How to turn a plain Avro value into the field's Python type; None: as it is."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        inner = [a for a in get_args(annotation) if a is not type(None)]
        return _converter(inner[0]) if len(inner) == 1 else None
    if origin is list:
        item = _converter(get_args(annotation)[0])
        return None if item is None else (lambda values: [item(v) for v in values])
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        sub = _builder(annotation)
        return lambda value: sub(value)
    return None

"""Derive the Avro contract of each pydantic model, and write or check ``schemas/avro/*.avsc``.

The ``.avsc`` files are the committed contracts; this module exists so that they and the
models in :mod:`schemas.models` cannot drift apart silently. Mapping rules:

- ``str`` -> ``string``, ``int`` -> ``long``, ``float`` -> ``double``, ``bool`` -> ``boolean``,
  ``bytes`` -> ``bytes``, ``datetime`` -> ``long``/``timestamp-millis``;
- ``T | None`` -> ``["null", T]`` with default ``null``;
- ``StrEnum`` and ``Literal`` -> Avro ``enum`` (no reader fallback symbol: a new symbol is a
  new schema version);
  the ``type`` discriminator stays a ``string`` with the event name as default;
- nested models -> named records (``Product``, ``Traits``), ``list[T]`` -> ``array``,
  ``dict[str, str]`` -> ``map``; every field with a model default carries an Avro default.

Usage: ``python -m schemas.avrogen --check`` (exit 1 on drift) or ``--write``.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from schemas.models import EVENT_TYPES

NAMESPACE = "io.personaflow.v1"
AVRO_DIR = Path(__file__).parent / "avro"

_PRIMITIVES: dict[type, str] = {
    str: "string",
    int: "long",
    float: "double",
    bool: "boolean",
    bytes: "bytes",
}

JsonObj = dict[str, Any]


def record_name(event_type: str) -> str:
    """Avro record name of an event name: ``"Product Viewed"`` -> ``"ProductViewed"``."""
    return "".join(part[:1].upper() + part[1:] for part in event_type.split())


def full_name(event_type: str) -> str:
    """Fully qualified Avro name (also the registry subject) of an event name."""
    return f"{NAMESPACE}.{record_name(event_type)}"


class _Builder:
    """Builds one top-level schema; named types are defined once, then referenced by name."""

    def __init__(self) -> None:
        self.defined: set[str] = set()

    def record(self, cls: type[BaseModel], name: str, doc: str | None) -> JsonObj:
        fields = [self.field(fname, info) for fname, info in cls.model_fields.items()]
        out: JsonObj = {"type": "record", "name": name, "namespace": NAMESPACE}
        if doc:
            out["doc"] = " ".join(doc.split())
        out["fields"] = fields
        self.defined.add(name)
        return out

    def field(self, name: str, info: FieldInfo) -> JsonObj:
        avro_type = self.type_of(info.annotation, name)
        out: JsonObj = {"name": name, "type": avro_type}
        has_default, default = _default_of(info)
        if isinstance(avro_type, list):  # optional: null first, default null
            out["default"] = None
        elif has_default:
            out["default"] = _avro_default(default)
        return out

    def type_of(self, annotation: Any, field_name: str) -> Any:
        origin = get_origin(annotation)
        args = get_args(annotation)
        if origin in (Union, types.UnionType):
            inner = [a for a in args if a is not type(None)]
            if len(inner) != 1 or len(args) != 2:
                raise TypeError(f"{field_name}: only Optional[T] unions are supported")
            return ["null", self.type_of(inner[0], field_name)]
        if origin is list:
            return {"type": "array", "items": self.type_of(args[0], field_name)}
        if origin is dict:
            return {"type": "map", "values": self.type_of(args[1], field_name)}
        if origin is Literal:
            return _literal_type(field_name, args)
        if annotation is datetime:
            return {"type": "long", "logicalType": "timestamp-millis"}
        if isinstance(annotation, type) and issubclass(annotation, Enum):
            return self.enum(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            name = annotation.__name__
            if name in self.defined:
                return f"{NAMESPACE}.{name}"
            return self.record(annotation, name, annotation.__doc__)
        if hasattr(annotation, "__metadata__"):  # Annotated[T, ...]
            return self.type_of(get_args(annotation)[0], field_name)
        if annotation in _PRIMITIVES:
            return _PRIMITIVES[annotation]
        raise TypeError(f"{field_name}: no Avro mapping for {annotation!r}")

    def enum(self, enum_cls: type[Enum]) -> Any:
        name = enum_cls.__name__
        if name in self.defined:
            return f"{NAMESPACE}.{name}"
        self.defined.add(name)
        symbols = [str(m.value) for m in enum_cls]
        return {"type": "enum", "name": name, "namespace": NAMESPACE, "symbols": symbols}


def _literal_type(field_name: str, values: tuple[Any, ...]) -> Any:
    if field_name == "type":
        return "string"
    symbols = [str(v) for v in values]
    name = "".join(p.capitalize() for p in field_name.split("_"))
    return {"type": "enum", "name": name, "namespace": NAMESPACE, "symbols": symbols}


def _default_of(info: FieldInfo) -> tuple[bool, Any]:
    if info.default is not PydanticUndefined:
        return True, info.default
    factory = info.default_factory
    if factory in (list, dict):
        return True, factory()  # type: ignore[call-arg]
    return False, None


def _avro_default(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value


def schema_for(event_type: str) -> JsonObj:
    """The Avro schema (as a JSON object) derived from the model of ``event_type``."""
    cls = EVENT_TYPES[event_type]
    return _Builder().record(cls, record_name(event_type), cls.__doc__)


def render(schema: JsonObj) -> str:
    """Canonical text of a schema file (stable key order, 2-space indent, trailing newline)."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def avsc_path(event_type: str) -> Path:
    """Path of the committed ``.avsc`` of an event name."""
    return AVRO_DIR / f"{record_name(event_type)}.avsc"


def drift() -> list[str]:
    """Event names whose committed ``.avsc`` differs from what the model says."""
    out = []
    for event_type in EVENT_TYPES:
        path = avsc_path(event_type)
        if not path.exists() or json.loads(path.read_text()) != schema_for(event_type):
            out.append(event_type)
    return out


def main(argv: list[str] | None = None) -> int:
    """CLI entry: ``--write`` regenerates the files, ``--check`` reports drift."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="write the .avsc files")
    mode.add_argument("--check", action="store_true", help="report drift, exit 1 (default)")
    args = parser.parse_args(argv)
    if args.write:
        for event_type in EVENT_TYPES:
            avsc_path(event_type).write_text(render(schema_for(event_type)))
        return 0
    stale = drift()
    for event_type in stale:
        print(f"drift: {avsc_path(event_type).name} does not match model {event_type!r}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())

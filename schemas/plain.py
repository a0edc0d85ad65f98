"""Plain, read-only forms of the event models: what the stream workers' hot path reads.

Every attribute read on a pydantic v2 model goes through ``BaseModel.__getattr__`` (CPython's
``slot_tp_getattr_hook``, ~300 instructions, and it keeps 3.11 from specialising the read):
~14 reads per applied Product Viewed were 8.9 % of its instructions (docs/bench/processors.md).
The classes here are generated from the models (:data:`schemas.models.EVENT_TYPES`, and the
nested models such as ``Product`` and ``Traits``), one ``__slots__`` class per model with the
same attribute names, so a field is declared once, in :mod:`schemas.models`:

- :func:`plain_class` ``(ProductViewed)`` is ``PlainProductViewed``, whose instances have the
  model's fields as slots (``type`` included, as read from the record), the ``key`` property
  of input events (:class:`PlainEvent`), equality and ``repr``; they refuse attribute writes
  (construction stores the slots through a builder subclass, then switches the class: no cost
  per read);
- :func:`plain_models` is what the generated Avro reader builds while reading
  (:meth:`schemas.codec.Codec.decode_plain`): no dict, no pydantic instance;
- :func:`to_plain` converts a model (JSON input at the edges, a record the generated reader
  does not read), :meth:`PlainRecord.as_dict` gives the field values back (nested records as dicts),
  e.g. for encoding.

Plain events are not validated: they come from bytes our Avro contracts already typed (see
``decode_fast`` in :mod:`schemas.codec`) or from validated models. The values are those of
the model the same bytes decode to (property tests over every contract,
``tests/unit/test_schemas_plain.py``).
"""

from __future__ import annotations

import keyword
from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import Any, ClassVar

from pydantic import BaseModel

from schemas.avrocode import Models
from schemas.avrogen import full_name
from schemas.construct import model_from_raw, walk_models
from schemas.models import EVENT_TYPES, Alias, Envelope, Identify

_new = object.__new__
_RESERVED = frozenset({"model", "fields", "key", "as_dict", "occurred_ts"})
"""Class attributes of plain records: a model field of that name could not be a slot."""


class PlainRecord:
    """Base of the generated plain classes: slots only, read-only, compared field by field."""

    __slots__ = ()
    model: ClassVar[type[BaseModel]]
    """The pydantic model this class mirrors."""
    fields: ClassVar[tuple[str, ...]]
    """The model's field names, in the model's order."""

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only (cannot set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only (cannot delete {name!r})")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.fields)

    def __hash__(self) -> int:
        return hash((type(self), *(getattr(self, n) for n in self.fields)))

    def __repr__(self) -> str:
        values = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.fields)
        return f"{type(self).__name__}({values})"

    def as_dict(self) -> dict[str, Any]:
        """The field values (model order), nested plain records as dicts (what the Avro writer
        and ``model_dump`` hand over)."""
        return {n: _as_value(getattr(self, n)) for n in self.fields}


class PlainEvent(PlainRecord):
    """Base of the plain input events (models derived from :class:`schemas.models.Envelope`).

    The annotations below are for static typing only (the slots are the generated
    subclass's, one per model field); a unit test checks they name envelope fields with the
    model's types, so a field added to the envelope needs no second declaration here."""

    __slots__ = ("occurred_ts",)
    occurred_ts: float
    """``occurred_at`` in epoch seconds (``occurred_at.timestamp()``, the same float), worked
    out once when the record is built: the worker and the engine read the event time several
    times per event, and ``datetime.timestamp()`` was ~5 % of an applied Product Viewed."""
    type: str
    event_id: str
    occurred_at: datetime
    received_at: datetime
    customer_id: str | None
    anonymous_id: str | None
    source: str
    schema_version: int

    @property
    def key(self) -> str:
        """Partition key: the customer id when known, else the anonymous id."""
        return self.customer_id or self.anonymous_id or ""


def _as_value(value: Any) -> Any:
    if isinstance(value, PlainRecord):
        return value.as_dict()
    if isinstance(value, list):
        return [_as_value(v) for v in value]
    return value


@cache
def plain_class(model: type[BaseModel]) -> type[PlainRecord]:
    """The plain class of ``model`` (:class:`PlainEvent` subclass for input events)."""
    names = tuple(model.model_fields)
    bad = [n for n in names if not n.isidentifier() or keyword.iskeyword(n) or n in _RESERVED]
    if bad:
        raise TypeError(f"{model.__name__}: fields {bad} cannot be plain slots")
    base = PlainEvent if issubclass(model, Envelope) else PlainRecord
    doc = f"Plain, read-only form of :class:`schemas.models.{model.__name__}`."
    namespace = {"__slots__": names, "__module__": __name__, "__doc__": doc, "model": model,
                 "fields": names, "__qualname__": f"Plain{model.__name__}"}
    return type(f"Plain{model.__name__}", (base,), namespace)


def _builder(cls: type[PlainRecord]) -> type[PlainRecord]:
    """A subclass of ``cls`` with the same layout whose attributes can be stored (plain
    ``object.__setattr__`` and ``__delattr__``, so CPython specialises the stores): instances
    are built as one, then switched to ``cls``."""
    builder = _BUILDERS.get(cls)
    if builder is None:
        namespace = {"__slots__": (), "__module__": __name__,
                     "__setattr__": object.__setattr__, "__delattr__": object.__delattr__}
        builder = _BUILDERS[cls] = type(f"_Building{cls.__name__}", (cls,), namespace)
    return builder


_BUILDERS: dict[type[PlainRecord], type[PlainRecord]] = {}
"""Plain class -> its builder."""


def positional_maker(model: type[BaseModel], order: tuple[str, ...]) -> Callable[..., Any] | None:
    """``make(*values)``: the plain record of ``model`` with the values of the fields
    ``order`` names (each field once), or None when ``order`` is not the model's fields."""
    cls = plain_class(model)
    if len(order) != len(cls.fields) or frozenset(order) != frozenset(cls.fields):
        return None
    params = ", ".join(f"a{i}" for i in range(len(order)))
    lines = [f"def make({params}):", "    o = _new(_B)"]
    lines += [f"    o.{name} = a{i}" for i, name in enumerate(order)]  # identifiers, checked
    if issubclass(cls, PlainEvent):
        lines.append("    o.occurred_ts = o.occurred_at.timestamp()")
    lines += ["    o.__class__ = _C", "    return o"]
    scope: dict[str, Any] = {"_new": _new, "_B": _builder(cls), "_C": cls}
    exec(compile("\n".join(lines), f"<plain maker {cls.__name__}>", "exec"), scope)
    make: Callable[..., Any] = scope["make"]
    return make


def plain_models(event_type: str) -> Models:
    """What the generated Avro reader of ``event_type`` builds while reading
    (:func:`schemas.avrocode.compile_reader`): the plain record of the event and of its
    nested models, enums as the models' enum members (where
    :func:`schemas.construct.event_models` builds the models)."""
    model = EVENT_TYPES[event_type]
    records: dict[str, Callable[[tuple[str, ...]], Callable[..., Any] | None]] = {}
    enums: dict[str, Callable[[str], Any]] = {}
    records[full_name(event_type)] = _factory(model)
    walk_models(model, records, enums, _factory)
    return Models(records, enums, positional=True, key=f"plain records of {event_type}")


def _factory(model: type[BaseModel]) -> Callable[[tuple[str, ...]], Callable[..., Any] | None]:
    return lambda order: positional_maker(model, order)


def to_plain(model: BaseModel) -> PlainRecord:
    """The plain record holding ``model``'s values (nested models converted too)."""
    cls = plain_class(type(model))
    obj = _new(_builder(cls))
    values = model.__dict__
    for name in cls.fields:
        setattr(obj, name, _plain_value(values[name]))
    if isinstance(obj, PlainEvent):
        obj.occurred_ts = obj.occurred_at.timestamp()
    obj.__class__ = cls
    return obj


def _plain_value(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return to_plain(value)
    if isinstance(value, list):
        return [_plain_value(v) for v in value]
    return value


def plain_from_raw(event_type: str, record: dict[str, Any]) -> PlainRecord:
    """The plain record of a fastavro-decoded dict (via :func:`model_from_raw`, which
    converts nested records and enums and fills what an older schema lacks)."""
    return to_plain(model_from_raw(event_type, record))


def linked_anonymous_id(event: PlainEvent) -> str | None:
    """The anonymous id an Identify (its ``anonymous_id``) or an Alias (its ``previous_id``)
    binds to the event's customer; None for any other event (by the event's class, as an
    ``isinstance`` on the models decides)."""
    model = event.model
    if model is Identify:
        return event.anonymous_id
    if model is Alias:
        previous: str | None = getattr(event, "previous_id", None)
        return previous
    return None

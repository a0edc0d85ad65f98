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

import ast
import types
from collections.abc import Callable
from enum import Enum
from functools import cache
from typing import Any, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel

from schemas.avrocode import Models
from schemas.avrogen import NAMESPACE, full_name
from schemas.models import EVENT_TYPES

Convert = Callable[[Any], Any]
M = TypeVar("M", bound=BaseModel)


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

    def build(record: dict[str, Any]) -> BaseModel:
        if record.keys() != names:  # not a record of the current schema: take the slow road
            return cls.model_construct(**_convert(record, converters))
        values = _convert(record, converters) if converters else dict(record)
        return _bare(cls, values, set(names))

    return build


_new = object.__new__
_SLOTS = ("__dict__", "__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__")
_set_dict, _set_fields_set, _set_extra, _set_private = (vars(BaseModel)[s].__set__ for s in _SLOTS)
"""The setters of a model's four slots (what ``object.__setattr__(obj, slot, value)`` ends in,
without its argument handling: 5,000 instead of 7,900 instructions for the four)."""


def _bare(cls: type[M], fields: dict[str, Any], fields_set: set[str]) -> M:
    """An instance of ``cls`` holding ``fields`` as they are (what ``model_construct`` makes,
    without its per-field default handling)."""
    obj = _new(cls)
    _set_dict(obj, fields)
    _set_fields_set(obj, fields_set)
    _set_extra(obj, None)
    _set_private(obj, None)
    return obj


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


def event_models(event_type: str) -> Models:
    """What the generated Avro reader of ``event_type`` builds while reading
    (:func:`schemas.avrocode.compile_reader`): the event's model and its nested models, and
    its enums, exactly where :func:`model_from_raw` would convert them afterwards (the
    same walk over the annotations), so the reader returns what ``model_from_raw`` would
    return for its dict, without the dict and the second pass over it."""
    cls = EVENT_TYPES[event_type]
    records: dict[str, Callable[[tuple[str, ...]], Make | None]] = {}
    enums: dict[str, Callable[[str], Any]] = {}
    records[full_name(event_type)] = _maker(cls)
    walk_models(cls, records, enums, _maker)
    return Models(records, enums)


def walk_models(
    cls: type[BaseModel],
    records: dict[str, Any],
    enums: dict[str, Any],
    maker: Callable[[type[BaseModel]], Any],
) -> None:
    """Add to ``records`` (Avro full name -> ``maker(model)``) every model nested in
    ``cls``'s fields, and to ``enums`` their enum classes, where :func:`model_from_raw`
    converts plain Avro values (for :func:`event_models` and :func:`schemas.plain.plain_models`)."""
    for info in cls.model_fields.values():
        target = _converted(info.annotation)
        if target is None:
            continue
        name = f"{NAMESPACE}.{target.__name__}"
        if issubclass(target, Enum):
            enums.setdefault(name, target)
        elif name not in records:
            records[name] = maker(target)
            walk_models(target, records, enums, maker)


def _converted(annotation: Any) -> Any:
    """The enum or model class a field's plain Avro values become (the classes
    :func:`_converter` converts to), or None."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        inner = [a for a in get_args(annotation) if a is not type(None)]
        return _converted(inner[0]) if len(inner) == 1 else None
    if origin is list:
        return _converted(get_args(annotation)[0])
    if isinstance(annotation, type) and issubclass(annotation, Enum | BaseModel):
        return annotation
    return None


Make = Callable[[dict[str, Any]], Any]


def _maker(cls: type[BaseModel]) -> Callable[[tuple[str, ...]], Make | None]:
    names = frozenset(cls.model_fields)

    def factory(fields: tuple[str, ...]) -> Make | None:
        if len(fields) != len(names) or frozenset(fields) != names:
            return None  # not the model's fields: model_from_raw takes the slow road

        def make(values: dict[str, Any]) -> BaseModel:  # _bare, inlined (once per record)
            obj = _new(cls)
            _set_dict(obj, values)
            _set_fields_set(obj, set(names))
            _set_extra(obj, None)
            _set_private(obj, None)
            return obj

        return make

    return factory


class TrustedValueError(ValueError):
    """A value our own code computed breaks a contract rule that trusted building still checks."""

    retriable = False


def trusted_builder(cls: type[M]) -> Callable[..., M]:
    """A constructor of ``cls`` for values our own code computed (the processors' outputs).

    It fills defaults, keeps the field order and checks the length rules of string fields
    (ids non-empty, at most 512 characters), but skips pydantic's validation, which costs
    ~10x more (Persona Transition: 10.7 -> ~2 us). Types are the caller's promise: the tests
    re-validate every output of generated event sequences (``tests/unit/test_processors_
    properties.py``), and the Avro writer falls back to fastavro, which refuses wrong types.
    Nested models must be given as models.

    The constructor is generated per class (:func:`builder_source`): the fields unrolled,
    defaults as constants, length checks only where a field has them. Any call it does not
    take as it is (an unknown or missing field, a length outside the rule) goes to the
    reference loop (:func:`_loop_builder`), which raises exactly its error.
    """
    slow = _loop_builder(cls)
    generated = builder_source(cls)
    if generated is None:
        return slow
    source, consts = generated
    scope: dict[str, Any] = {
        "_cls": cls, "_slow": slow, "_names": frozenset(cls.model_fields), "_new": _new,
        "_set_dict": _set_dict, "_set_fields_set": _set_fields_set, "_set_extra": _set_extra,
        "_set_private": _set_private, **consts,
    }
    exec(compile(source, f"<trusted builder {cls.__name__}>", "exec"), scope)
    build: Callable[..., M] = scope["build"]
    return build


def builder_source(cls: type[BaseModel]) -> tuple[str, dict[str, Any]] | None:
    """The source of ``cls``'s generated constructor and the constants it refers to (names
    the source defines), or None when a field name cannot be a Python name."""
    spec = [_field_spec(name, info) for name, info in cls.model_fields.items()]
    if not all(name.isidentifier() for name, *_ in spec):
        return None
    consts: dict[str, Any] = {}
    take, checks = [], []
    for i, (name, default, factory, lengths) in enumerate(spec):
        local, key = f"f{i}_{name}", repr(name)
        if factory is None and default is _REQUIRED:
            take.append(f"        {local} = v[{key}]")
        else:
            fill = _fill_expression(default, factory, f"_d{i}", consts)
            take.append(f"        {local} = v[{key}] if {key} in v else {fill}")
        if lengths is not None:
            low, high = lengths
            checks += [f"    if isinstance({local}, str) and not {low} <= len({local}) <= {high}:",
                       "        return _slow(**v)"]
    fields = ", ".join(f"{name!r}: f{i}_{name}" for i, (name, *_) in enumerate(spec))
    lines = ["def build(**v):",
             "    if not v.keys() <= _names:",
             "        return _slow(**v)",
             "    try:", *take,
             "    except KeyError:",  # a required field missing: the loop names it
             "        return _slow(**v)",
             *checks,
             "    obj = _new(_cls)",  # _bare, inlined
             f"    _set_dict(obj, {{{fields}}})",
             "    _set_fields_set(obj, set(v))",
             "    _set_extra(obj, None)",
             "    _set_private(obj, None)",
             "    return obj"]
    return "\n".join(lines) + "\n", consts


_LITERAL_TYPES = (str, int, float, bool, type(None))


def _fill_expression(default: Any, factory: Callable[[], Any] | None, name: str,
                     consts: dict[str, Any]) -> str:
    """The expression of a field's default in the generated constructor: a literal for an
    immutable builtin value (of exactly its type), ``{}``/``[]`` for the ``dict``/``list``
    factories, else a call of or reference to a constant ``name``."""
    if factory is dict:
        return "{}"
    if factory is list:
        return "[]"
    if factory is not None:
        consts[name] = factory
        return f"{name}()"
    literal = repr(default)
    if type(default) in _LITERAL_TYPES and default == default and _is_literal(literal, default):
        return literal
    consts[name] = default
    return name


def _is_literal(text: str, value: Any) -> bool:
    """Whether ``text`` evaluates to a value of ``value``'s type equal to it."""
    try:
        parsed = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return False
    return type(parsed) is type(value) and parsed == value


def _loop_builder(cls: type[M]) -> Callable[..., M]:
    """The reference constructor of :func:`trusted_builder`: a loop over the field spec."""
    spec = [_field_spec(name, info) for name, info in cls.model_fields.items()]
    names = frozenset(cls.model_fields)

    def build(**values: Any) -> M:
        if not names.issuperset(values):
            unknown = sorted(set(values) - names)
            raise TypeError(f"{cls.__name__}: unknown fields {unknown}")
        fields: dict[str, Any] = {}
        for name, default, factory, lengths in spec:
            if name in values:
                value = values[name]
                if lengths is not None and value is not None:
                    _check_length(cls, name, value, lengths)
            elif factory is not None:
                value = factory()
            elif default is _REQUIRED:
                raise TypeError(f"{cls.__name__}: {name} is required")
            else:
                value = default
            fields[name] = value
        return _bare(cls, fields, set(values))

    return build


_REQUIRED: Any = object()
_Spec = tuple[str, Any, Callable[[], Any] | None, tuple[int, int] | None]


def _field_spec(name: str, info: Any) -> _Spec:
    factory = info.default_factory
    default = _REQUIRED if info.is_required() else info.default
    if isinstance(default, list | dict | set):  # never share a mutable default
        factory, default = (lambda d=default: d.copy()), None  # type: ignore[misc]
    low = next((m.min_length for m in info.metadata if getattr(m, "min_length", None)), None)
    high = next((m.max_length for m in info.metadata if getattr(m, "max_length", None)), None)
    lengths = None if low is None and high is None else (low or 0, high or 2**63)
    return name, default, factory, lengths


def _check_length(cls: type, name: str, value: Any, lengths: tuple[int, int]) -> None:
    if isinstance(value, str) and not lengths[0] <= len(value) <= lengths[1]:
        raise TrustedValueError(
            f"{cls.__name__}.{name}: length {len(value)} outside {lengths[0]}..{lengths[1]}"
        )

"""Output records (PersonaTransition, Trigger, Product) built from positional values.

:func:`schemas.construct.trusted_builder` takes keyword arguments and runs interpreted: from
compiled code each record cost a keyword dict, an interpreted frame and a loop over the
model's fields. A :class:`Layout` precomputes, once per (model, the fields a caller passes),
where every field's value comes from (the caller's tuple, a default or a default factory) and
which length rule it checks, and builds the same instance: the same ``__dict__`` (same values,
same order), the same ``__pydantic_fields_set__`` (the fields passed) and the same
:class:`schemas.construct.TrustedValueError` for a string outside its length rule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from schemas.construct import _REQUIRED, _check_length, _field_spec

_new = object.__new__
_set_dict, _set_fields_set, _set_extra, _set_private = (
    vars(BaseModel)[slot].__set__
    for slot in ("__dict__", "__pydantic_fields_set__", "__pydantic_extra__",
                 "__pydantic_private__"))
"""The setters of a model's four slots: what ``object.__setattr__(obj, slot, value)`` ends
in, without its generic attribute lookup (schemas.construct builds with the same four)."""

Passed = tuple[str, int, int, int]
"""(field name, index in the caller's values, shortest and longest allowed string; -1: no
length rule)."""


class Layout:
    """Builds ``cls`` from a tuple of the values of ``names`` (in that order) as
    ``trusted_builder(cls)(**dict(zip(names, values)))`` would."""

    def __init__(self, cls: type[Any], names: tuple[str, ...]) -> None:
        fields = cls.model_fields
        unknown = sorted(set(names) - set(fields))
        if unknown:
            raise TypeError(f"{cls.__name__}: unknown fields {unknown}")
        self.cls = cls
        self.names = frozenset(names)
        # every field in the model's order, holding its default (or None until filled):
        # a copy is the instance's __dict__ with no resizing and the order kept
        self.template: dict[str, Any] = {}
        passed: list[Passed] = []
        factories: list[tuple[str, Callable[[], Any]]] = []
        for name, info in fields.items():
            _, default, factory, lengths = _field_spec(name, info)
            self.template[name] = None if default is _REQUIRED else default
            if name in names:
                low, high = lengths if lengths is not None else (0, -1)
                passed.append((name, names.index(name), low, high))
            elif factory is not None:
                factories.append((name, factory))
            elif default is _REQUIRED:
                raise TypeError(f"{cls.__name__}: {name} is required")
        self.passed = tuple(passed)
        self.factories = tuple(factories)

    def build(self, values: tuple[Any, ...]) -> Any:
        """The instance holding ``values`` (the values of ``names``) and the defaults."""
        cls = self.cls
        fields = self.template.copy()
        for name, index, low, high in self.passed:
            value = values[index]
            if high >= 0 and isinstance(value, str) and not low <= len(value) <= high:
                _check_length(cls, name, value, (low, high))  # raises
            fields[name] = value
        for name, factory in self.factories:
            fields[name] = factory()
        obj = _new(cls)
        _set_dict(obj, fields)
        _set_fields_set(obj, set(self.names))
        _set_extra(obj, None)
        _set_private(obj, None)
        return obj

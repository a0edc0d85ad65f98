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

from schemas.construct import _REQUIRED, _check_length, _field_spec

_new = object.__new__
_setattr = object.__setattr__

Slot = tuple[str, int, Any, Callable[[], Any] | None, int, int]
"""(field name, index in the caller's values or -1, default, default factory or None,
shortest and longest allowed string (0, -1: no length rule))."""


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
        slots: list[Slot] = []
        for name, info in fields.items():
            _, default, factory, lengths = _field_spec(name, info)
            index = names.index(name) if name in names else -1
            if index < 0 and factory is None and default is _REQUIRED:
                raise TypeError(f"{cls.__name__}: {name} is required")
            low, high = lengths if lengths is not None else (0, -1)
            slots.append((name, index, default, factory, low, high))
        self.slots = tuple(slots)

    def build(self, values: tuple[Any, ...]) -> Any:
        """The instance holding ``values`` (the values of ``names``) and the defaults."""
        cls = self.cls
        fields: dict[str, Any] = {}
        for name, index, default, factory, low, high in self.slots:
            if index >= 0:
                value = values[index]
                if high >= 0 and isinstance(value, str) and not low <= len(value) <= high:
                    _check_length(cls, name, value, (low, high))  # raises
            elif factory is not None:
                value = factory()
            else:
                value = default
            fields[name] = value
        obj = _new(cls)
        _setattr(obj, "__dict__", fields)
        _setattr(obj, "__pydantic_fields_set__", set(self.names))
        _setattr(obj, "__pydantic_extra__", None)
        _setattr(obj, "__pydantic_private__", None)
        return obj

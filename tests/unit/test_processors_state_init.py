"""CustomerState and Cart keep their dataclass fields but write their ``__init__`` out
(``init=False``: compiled, a native constructor instead of the generated, interpreted one).
The written constructor must build what the generated one builds: the same parameters in
the same order, the same defaults, a fresh container for every ``default_factory`` field."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import processors
from processors.state import Cart, CustomerState, Deadline, Item, View
from processors.statecodec import decode_state, encode_state

CLASSES = (CustomerState, Cart)


def _reference(cls: type[Any]) -> type[Any]:
    """The class the dataclass decorator makes from ``cls``'s fields with its generated
    ``__init__`` (the general path the written one replaces)."""
    specs = []
    for f in dataclasses.fields(cls):
        if f.default_factory is not dataclasses.MISSING:
            specs.append((f.name, Any, dataclasses.field(default_factory=f.default_factory)))
        elif f.default is not dataclasses.MISSING:
            specs.append((f.name, Any, dataclasses.field(default=f.default)))
        else:
            specs.append((f.name, Any))
    return dataclasses.make_dataclass(f"Reference{cls.__name__}", specs)


REFERENCE = {cls: _reference(cls) for cls in CLASSES}


def _values(obj: Any) -> list[tuple[str, Any, type]]:
    return [(f.name, getattr(obj, f.name), type(getattr(obj, f.name)))
            for f in dataclasses.fields(obj)]


_SOURCE = ast.parse(Path(processors.__file__).with_name("state.py").read_text())
"""processors/state.py (a compiled module's own ``__file__`` is wrong: docs/native.md)."""


def _written_init(cls: type[Any]) -> list[tuple[str, Any]]:
    """(name, default or _NONE) of the parameters of ``cls.__init__`` as written in the source
    (a compiled ``__init__`` has no signature to inspect)."""
    node = next(n for n in ast.walk(_SOURCE)
                if isinstance(n, ast.ClassDef) and n.name == cls.__name__)
    init = next(n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    args = init.args
    assert not (args.vararg or args.kwarg or args.kwonlyargs or args.posonlyargs)
    names = [a.arg for a in args.args[1:]]
    defaults = [_NONE] * (len(names) - len(args.defaults)) + [
        ast.literal_eval(d) for d in args.defaults]
    return list(zip(names, defaults, strict=True))


_NONE = object()


def test_the_written_init_takes_the_fields_in_order_with_their_defaults() -> None:
    for cls in CLASSES:
        assert not cls.__dataclass_params__.init  # type: ignore[attr-defined]
        params = _written_init(cls)
        fields = dataclasses.fields(cls)
        assert [name for name, _ in params] == [f.name for f in fields]
        for (_, default), f in zip(params, fields, strict=True):
            if f.default_factory is not dataclasses.MISSING:
                assert default is None, f.name  # None: a fresh container
            elif f.default is not dataclasses.MISSING:
                assert default == f.default and type(default) is type(f.default), f.name
            else:
                assert default is _NONE, f.name


def test_defaults_equal_the_generated_init_and_containers_are_fresh() -> None:
    for cls, args in ((CustomerState, ("c1",)), (Cart, ("cart-1",))):
        a, b = cls(*args), cls(*args)
        assert _values(a) == _values(REFERENCE[cls](*args))
        for f in dataclasses.fields(cls):
            if f.default_factory is not dataclasses.MISSING:
                assert getattr(a, f.name) == f.default_factory()
                assert getattr(a, f.name) is not getattr(b, f.name), f.name


TEXT = st.text("ab:é~", max_size=8)  # no lone surrogates (orjson), no "#" (topic aliases)
_SCALAR = {
    "str": TEXT, "str | None": st.none() | TEXT,
    "int": st.integers(-10**6, 10**12), "int | None": st.none() | st.integers(0, 10**12),
    "bool": st.booleans(), "bool | None": st.none() | st.booleans(),
    "float": st.floats(allow_nan=False, allow_infinity=False),
}
_CONTAINER = {
    "anonymous_ids": st.lists(TEXT, max_size=2),
    "views": st.lists(st.builds(View, TEXT, TEXT,
                                TEXT, st.floats(0, 99), st.integers(0, 99)),
                      max_size=2),
    "affinity": st.dictionaries(TEXT,
                                st.tuples(st.floats(0, 9), st.integers(0, 99)), max_size=2),
    "carts": st.builds(Cart, TEXT).map(lambda c: {c.cart_id: c}) | st.builds(dict),
    "deadlines": st.lists(st.builds(Deadline, st.integers(0, 99), st.just("cart"),
                                    TEXT, st.integers(0, 3), TEXT,
                                    st.integers(0, 10**12)), max_size=2),  # Avro longs
    "watermarks": st.dictionaries(TEXT, st.integers(0, 99), max_size=2),
    "items": st.dictionaries(TEXT,
                             st.builds(Item, TEXT, TEXT,
                                       TEXT, st.floats(0, 99),
                                       st.integers(1, 9)), max_size=2),
}


def _field_value(f: dataclasses.Field[Any]) -> st.SearchStrategy[Any]:
    if f.name in _CONTAINER:
        return _CONTAINER[f.name]
    if f.default_factory is not dataclasses.MISSING:  # other containers: empty ones
        return st.builds(f.default_factory)
    return _SCALAR[_annotations(f.name)]


def _annotations(name: str) -> str:
    """The annotation of field ``name`` as written (compiled, ``Field.type`` of ``int | None``
    is ``type``)."""
    return next(ast.unparse(n.annotation) for n in ast.walk(_SOURCE)
                if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
                and n.target.id == name)


def _kwargs(cls: type[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Keyword arguments for a random subset of ``cls``'s fields (the first always)."""
    fields = dataclasses.fields(cls)
    first = fields[0]
    return st.fixed_dictionaries(
        {first.name: _field_value(first)},
        optional={f.name: _field_value(f) for f in fields[1:]},
    )


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(CLASSES).flatmap(lambda cls: st.tuples(st.just(cls), _kwargs(cls))),
       st.booleans())
def test_any_arguments_build_what_the_generated_init_builds(
        case: tuple[type[Any], dict[str, Any]], positional: bool) -> None:
    cls, kwargs = case
    if positional:  # as decode_state passes them: every field, in order
        full = {**dataclasses.asdict(REFERENCE[cls](kwargs[dataclasses.fields(cls)[0].name])),
                **kwargs}
        built, ref = cls(*full.values()), REFERENCE[cls](*full.values())
    else:
        built, ref = cls(**kwargs), REFERENCE[cls](**kwargs)
    assert _values(built) == _values(ref)
    for name, value in kwargs.items():  # passed containers are kept, not copied
        if isinstance(value, list | dict):
            assert getattr(built, name) is value
    if cls is CustomerState:
        assert decode_state(encode_state(built)) == built

"""The generated trusted constructors (:func:`schemas.construct.trusted_builder`) build exactly
what the reference loop (:func:`schemas.construct._loop_builder`) builds, and fail the same way."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field

from schemas.construct import TrustedValueError, _loop_builder, builder_source, trusted_builder
from schemas.models import PersonaTransition, Product, Trigger

AT = datetime(2026, 1, 5, 12, 0, 0, 123000, tzinfo=UTC)


class Colour(Enum):
    RED = "red"


class Odd(BaseModel):
    """Defaults the generator must not write as literals: an enum, a datetime, a mutable list."""

    name: Annotated[str, Field(max_length=3)]
    colour: Colour = Colour.RED
    since: datetime = AT
    tags: list[str] = ["a"]  # pydantic copies it; the builder must too
    ratio: float = float("nan")
    code: Annotated[str | None, Field(min_length=2)] = None


REQUIRED: dict[type[BaseModel], dict[str, Any]] = {
    PersonaTransition: {"transition_id": "t1", "customer_id": "c1", "from_persona": None,
                        "to_persona": "recent_browser:shoes", "rule_id": "r", "at": AT},
    Trigger: {"trigger_id": "g1", "customer_id": "c1", "trigger_type": "cart_abandonment",
              "rule_id": "r", "created_at": AT},
    Product: {"product_id": "p1"},
    Odd: {"name": "abc"},
}
OPTIONAL: dict[str, Any] = {
    "type": "Persona Transition", "dimension": "interest", "rule_version": 2, "facts": {"a": "b"},
    "cause_event_id": "e1", "schema_version": 1, "episode": "ep", "step": 3, "priority": 40,
    "marketing": False, "not_before": AT, "recipient": "x@example.com", "tokens": {"k": "v"},
    "products": [Product(product_id="p2")], "holdout": True, "price": 9.5, "quantity": 0,
    "sku": None, "colour": Colour.RED, "tags": [], "since": AT, "code": "zz",
}


def _same(a: BaseModel, b: BaseModel) -> None:
    assert type(a) is type(b)
    assert list(a.__dict__) == list(b.__dict__)  # field order
    for name, value in a.__dict__.items():
        other = b.__dict__[name]
        assert type(value) is type(other), name
        assert value == other or (value != value and other != other), name  # nan
    assert a.model_fields_set == b.model_fields_set
    assert a.__pydantic_extra__ is None and a.__pydantic_private__ is None


def _calls(cls: type[BaseModel]) -> list[dict[str, Any]]:
    required = REQUIRED[cls]
    optional = {k: v for k, v in OPTIONAL.items() if k in cls.model_fields and k not in required}
    return [required, {**required, **optional},
            *({**required, name: value} for name, value in optional.items())]


@pytest.mark.parametrize("cls", list(REQUIRED), ids=lambda c: c.__name__)
def test_generated_builder_builds_what_the_loop_builds(cls: type[BaseModel]) -> None:
    build, loop = trusted_builder(cls), _loop_builder(cls)
    assert build.__code__.co_filename == f"<trusted builder {cls.__name__}>"  # not the loop
    for values in _calls(cls):
        _same(build(**values), loop(**values))


@pytest.mark.parametrize("cls", list(REQUIRED), ids=lambda c: c.__name__)
def test_generated_builder_never_shares_mutable_defaults(cls: type[BaseModel]) -> None:
    build = trusted_builder(cls)
    first, second = build(**REQUIRED[cls]), build(**REQUIRED[cls])
    for name, value in first.__dict__.items():
        if isinstance(value, list | dict | set):
            assert value is not second.__dict__[name], name
    assert trusted_builder(Odd)(name="a").tags == ["a"]


def test_defaults_that_are_not_plain_literals_are_bound_as_the_objects_themselves() -> None:
    source, consts = builder_source(Odd) or ("", {})
    assert Colour.RED in consts.values() and AT in consts.values()
    assert "for " not in source  # unrolled
    built = trusted_builder(Odd)(name="a")
    assert built.colour is Colour.RED and built.since is AT
    assert built.ratio != built.ratio  # nan stays nan (not a literal)


def test_only_fields_with_length_rules_are_checked() -> None:
    source, _ = builder_source(PersonaTransition) or ("", {})
    checked = {name for name in PersonaTransition.model_fields if f"len(f{_index(name)}_" in source}
    assert checked == {"transition_id", "customer_id", "to_persona", "rule_id"}


def _index(name: str) -> int:
    return list(PersonaTransition.model_fields).index(name)


BAD_CALLS: list[tuple[type[BaseModel], dict[str, Any], type[Exception], str]] = [
    (PersonaTransition, {"customer_id": ""}, TrustedValueError, "customer_id: length 0"),
    (PersonaTransition, {"rule_id": "r" * 513}, TrustedValueError, "rule_id: length 513"),
    (PersonaTransition, {"colour": "red"}, TypeError, "unknown fields"),
    (PersonaTransition, {"at": None, "colour": "red", "zeta": 1}, TypeError, "'colour', 'zeta'"),
    (Trigger, {"trigger_type": "t" * 600}, TrustedValueError, "trigger_type: length 600"),
    (Product, {"product_id": ""}, TrustedValueError, "product_id: length 0"),
    (Odd, {"name": "abcd"}, TrustedValueError, "name: length 4 outside 0..3"),
    (Odd, {"code": "z"}, TrustedValueError, "code: length 1"),
]


@pytest.mark.parametrize(("cls", "change", "error", "match"), BAD_CALLS)
def test_generated_builder_raises_the_loops_errors(
    cls: type[BaseModel], change: dict[str, Any], error: type[Exception], match: str
) -> None:
    values = {**REQUIRED[cls], **change}
    with pytest.raises(error, match=match) as generated:
        trusted_builder(cls)(**values)
    with pytest.raises(error) as reference:
        _loop_builder(cls)(**values)
    assert str(generated.value) == str(reference.value)


def test_a_missing_field_is_named_in_field_order_after_earlier_length_errors() -> None:
    build = trusted_builder(PersonaTransition)
    values = {k: v for k, v in REQUIRED[PersonaTransition].items() if k != "at"}
    with pytest.raises(TypeError, match="at is required"):
        build(**values)
    with pytest.raises(TrustedValueError, match="transition_id: length 0"):  # comes first
        build(**{**values, "transition_id": ""})
    no_customer = {k: v for k, v in values.items() if k != "customer_id"}
    with pytest.raises(TypeError, match="customer_id is required"):  # before rule_id's length
        build(**{**no_customer, "rule_id": ""})

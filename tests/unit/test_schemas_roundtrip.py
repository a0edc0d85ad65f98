"""Every pydantic model and its .avsc agree: model -> Avro bytes -> model is the identity.

Instances come from hypothesis strategies derived from each model's fields (so a new field is
covered automatically; :mod:`tests.unit.strategies`), plus the fully populated samples of
:mod:`schemas.samples`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import avrogen
from schemas.codec import Codec, decode_json, encode_json
from schemas.construct import model_from_raw
from schemas.models import EVENT_TYPES
from schemas.registry import FileRegistry
from schemas.samples import sample_events
from tests.unit.strategies import model_strategy

CODEC = Codec(FileRegistry())


def test_every_event_type_has_a_committed_schema_matching_its_model() -> None:
    assert avrogen.drift() == []
    assert sorted(p.name for p in avrogen.AVRO_DIR.glob("*.avsc")) == sorted(
        avrogen.avsc_path(t).name for t in EVENT_TYPES
    )


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_sample_round_trips_through_avro_fast_path_and_json(event_type: str) -> None:
    event = sample_events()[event_type]
    data = CODEC.encode(event)
    assert data[0] == 0
    assert CODEC.decode(data) == event
    assert CODEC.decode_fast(data) == event
    assert CODEC.decode_raw(data)[0] == event_type
    assert decode_json(encode_json(event)) == event


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_generated_instances_round_trip(event_type: str, data: st.DataObject) -> None:
    event = data.draw(model_strategy(EVENT_TYPES[event_type]))
    encoded = CODEC.encode(event)
    assert CODEC.decode(encoded) == event
    fast = CODEC.decode_fast(encoded)
    assert fast == event
    assert fast.model_dump() == event.model_dump()


def test_fast_path_builds_nested_models_and_enums() -> None:
    bounced = sample_events()["Email Bounced"]
    fast = CODEC.decode_fast(CODEC.encode(bounced))
    assert type(fast.bounce_type).__name__ == "BounceKind"  # type: ignore[attr-defined]
    order = CODEC.decode_fast(CODEC.encode(sample_events()["Order Completed"]))
    assert [type(p).__name__ for p in order.products] == ["Product", "Product"]  # type: ignore[attr-defined]
    identify = CODEC.decode_fast(CODEC.encode(sample_events()["Identify"]))
    assert identify.traits.first_name == "Ada"  # type: ignore[attr-defined]


def test_model_from_raw_falls_back_to_model_construct_for_partial_records() -> None:
    record = CODEC.decode_raw(CODEC.encode(sample_events()["Products Searched"]))[1]
    del record["source"]
    built = model_from_raw("Products Searched", record)
    assert built.source == "unknown"  # type: ignore[attr-defined]  # the model default
    assert built.query == "trail shoes"  # type: ignore[attr-defined]


def test_drift_check_fails_when_a_schema_file_disagrees_with_its_model(
    tmp_path: Any, monkeypatch: Any, capsys: Any
) -> None:
    for event_type in EVENT_TYPES:
        path = avrogen.avsc_path(event_type)
        (tmp_path / path.name).write_text(path.read_text())
    edited = avrogen.schema_for("Alias")
    edited["fields"] = edited["fields"][:-1]
    (tmp_path / "Alias.avsc").write_text(avrogen.render(edited))
    monkeypatch.setattr(avrogen, "AVRO_DIR", tmp_path)
    assert avrogen.drift() == ["Alias"]
    assert avrogen.main(["--check"]) == 1
    assert "Alias.avsc" in capsys.readouterr().out
    assert avrogen.main(["--write"]) == 0
    assert avrogen.main(["--check"]) == 0


def test_trusted_builder_equals_validated_construction_and_keeps_the_id_rules() -> None:
    from schemas.construct import TrustedValueError, trusted_builder
    from schemas.models import PersonaTransition

    at = datetime(2026, 1, 5, 12, 0, 0, 123000, tzinfo=UTC)
    values: dict[str, Any] = {"transition_id": "t1", "customer_id": "c1", "dimension": "interest",
                              "from_persona": None, "to_persona": "recent_browser:shoes",
                              "rule_id": "browses_category", "at": at}  # fmt: skip
    build = trusted_builder(PersonaTransition)
    built, validated = build(**values), PersonaTransition(**values)
    assert built.model_dump_json() == validated.model_dump_json()
    assert built.model_fields_set == validated.model_fields_set
    assert build(**values).facts is not build(**values).facts  # defaults are never shared
    with pytest.raises(TrustedValueError, match="customer_id: length 0"):
        build(**{**values, "customer_id": ""})
    with pytest.raises(TrustedValueError, match="rule_id: length 513"):
        build(**{**values, "rule_id": "r" * 513})
    with pytest.raises(TypeError, match="unknown fields"):
        build(**values, colour="red")
    with pytest.raises(TypeError, match="at is required"):
        build(**{k: v for k, v in values.items() if k != "at"})

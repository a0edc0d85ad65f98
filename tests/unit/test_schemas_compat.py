"""Backward compatibility: every released version stays readable by the current schemas.

For each history version, sample records written with it are resolved old writer -> current
reader by fastavro and by the reference ``avro`` package; the checker in ``schemas.compat``
must accept every release and catch deliberately incompatible changes.
"""

from __future__ import annotations

import copy
import io
import json
from typing import Any

import avro.io
import avro.schema
import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from schemas import avrogen, release
from schemas.codec import Codec
from schemas.compat import check_backward, is_backward_compatible
from schemas.models import EVENT_TYPES
from schemas.registry import REGISTRY_FILE, FileRegistry, fingerprint, load_json
from schemas.samples import sample_events

REGISTRY = load_json(REGISTRY_FILE)
HISTORY = [
    (subject, version)
    for subject, entry in REGISTRY["subjects"].items()
    for version in entry["versions"]
]


def _current(event_type: str) -> dict[str, Any]:
    return dict(load_json(avrogen.avsc_path(event_type)))


def _old_record(schema: Any, event_type: str) -> dict[str, Any]:
    """A sample record restricted to the fields (recursively) an old schema has."""
    record = sample_events()[event_type].model_dump()
    parsed = parse_schema(schema)
    buf = io.BytesIO()
    schemaless_writer(buf, parsed, record, strict_allow_default=True)
    return dict(schemaless_reader(io.BytesIO(buf.getvalue()), parsed, None))  # type: ignore[arg-type]


def test_registry_file_is_consistent() -> None:
    ids = [version["id"] for _, version in HISTORY]
    assert len(ids) == len(set(ids)), "schema ids must never be reused"
    for subject, version in HISTORY:
        schema = load_json(REGISTRY_FILE.parent / version["file"])
        assert version["fingerprint"] == fingerprint(schema), subject
        assert avrogen.full_name(REGISTRY["subjects"][subject]["event_type"]) == subject
    assert {s["event_type"] for s in REGISTRY["subjects"].values()} == set(EVENT_TYPES)


def test_no_unreleased_schema_changes() -> None:
    assert release.pending() == [], "run: python -m schemas.release"


@pytest.mark.parametrize(("subject", "version"), HISTORY, ids=[f"{s}.v{v['version']}"
                                                             for s, v in HISTORY])
def test_history_version_resolves_to_current_reader(subject: str, version: dict[str, Any]) -> None:
    event_type = REGISTRY["subjects"][subject]["event_type"]
    old = load_json(REGISTRY_FILE.parent / version["file"])
    new = _current(event_type)
    assert check_backward(old, new) == []
    record = _old_record(old, event_type)
    buf = io.BytesIO()
    schemaless_writer(buf, parse_schema(old), record)
    body = buf.getvalue()

    by_fastavro = schemaless_reader(io.BytesIO(body), parse_schema(old), parse_schema(new))
    reader = avro.io.DatumReader(avro.schema.parse(json.dumps(old)),
                                 avro.schema.parse(json.dumps(new)))
    by_avro = reader.read(avro.io.BinaryDecoder(io.BytesIO(body)))
    assert by_fastavro == by_avro
    assert {k: v for k, v in by_fastavro.items() if k in record} == record  # type: ignore[union-attr]

    wire = b"\x00" + version["id"].to_bytes(4, "big") + body
    decoded = Codec(FileRegistry()).decode(wire)
    assert type(decoded) is EVENT_TYPES[event_type]


# ------------------------------------------------------------------ the checker itself

BASE = _current("Product Viewed")


def _changed(edit: Any) -> dict[str, Any]:
    schema = copy.deepcopy(BASE)
    edit(schema)
    return schema


def _field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f["name"] == name)


def test_adding_a_field_without_default_is_incompatible() -> None:
    new = _changed(lambda s: s["fields"].append({"name": "store_id", "type": "string"}))
    problems = check_backward(BASE, new)
    assert problems == ["$.store_id: field added without a default"]
    with pytest.raises(Exception, match="store_id"):  # fastavro agrees
        schemaless_reader(io.BytesIO(Codec(FileRegistry()).encode(sample_events()[
            "Product Viewed"])[5:]), parse_schema(BASE), parse_schema(new))


def test_compatible_changes_pass() -> None:
    def edit(s: dict[str, Any]) -> None:
        s["fields"].append({"name": "store_id", "type": ["null", "string"], "default": None})
        s["fields"] = [f for f in s["fields"] if f["name"] != "source"]  # removing is fine
        _field(s, "currency")["type"] = ["null", "string"]  # widen to optional
        _field(s, "currency")["default"] = None

    assert check_backward(BASE, _changed(edit)) == []


def test_promotion_allowed_narrowing_refused() -> None:
    widened = _changed(lambda s: _field(_field(s, "product")["type"], "quantity").update(
        type="double"))
    assert is_backward_compatible(BASE, widened)
    assert check_backward(widened, BASE) == [
        "$.product.quantity: type changed from double to long"
    ]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda s: _field(s, "event_id").update(type="long"), "type changed from string to long"),
        (lambda s: _field(s, "customer_id").update(type="string"), "from null to string"),
        (lambda s: _field(s, "event_id").update(type=["null", "long"]), "matches no branch"),
        (lambda s: _field(s, "product")["type"].update(name="Item"), "renamed to Item"),
        (lambda s: _field(s, "occurred_at").update(type="long"), "logical type changed"),
    ],
)
def test_incompatible_changes_are_detected(edit: Any, expected: str) -> None:
    problems = check_backward(BASE, _changed(edit))
    assert len(problems) == 1
    assert expected in problems[0]


def test_enum_symbol_removal_needs_a_default() -> None:
    old = _current("Send Result")
    new = copy.deepcopy(old)
    outcome = _field(new, "outcome")["type"]
    outcome["symbols"] = [s for s in outcome["symbols"] if s != "capped"]
    assert check_backward(old, new) == ["$.outcome: enum symbols removed without a default: capped"]
    outcome["default"] = "failed"
    assert check_backward(old, new) == []
    outcome["symbols"].append("bounced")  # adding a symbol is backward compatible
    assert check_backward(old, new) == []


def test_renamed_field_with_alias_is_compatible() -> None:
    def edit(s: dict[str, Any]) -> None:
        _field(s, "event_id").update(name="id", aliases=["event_id"])

    assert check_backward(BASE, _changed(edit)) == []


def test_release_refuses_an_incompatible_change(tmp_path: Any, monkeypatch: Any) -> None:
    registry = tmp_path / "registry.json"
    registry.write_text(REGISTRY_FILE.read_text())
    (tmp_path / "history").symlink_to(REGISTRY_FILE.parent / "history")
    avsc_dir = tmp_path / "avro"
    avsc_dir.mkdir()
    for event_type in EVENT_TYPES:
        (avsc_dir / avrogen.avsc_path(event_type).name).write_text(
            avrogen.avsc_path(event_type).read_text())
    breaking = _changed(lambda s: s["fields"].append({"name": "store_id", "type": "string"}))
    (avsc_dir / "ProductViewed.avsc").write_text(avrogen.render(breaking))
    monkeypatch.setattr(release, "avsc_path", lambda t: avsc_dir / avrogen.avsc_path(t).name)

    [item] = release.pending(registry)
    assert item.event_type == "Product Viewed"
    assert item.version == 2
    assert item.problems == ("v1: $.store_id: field added without a default",)
    assert release.release(registry) == []

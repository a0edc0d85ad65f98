"""Backward-compatibility checker for Avro schemas (the rule every schema change must pass).

``check_backward(old, new)`` lists why a reader using ``new`` could NOT read data written with
``old``, following the Avro specification's schema resolution: fields added without a default,
type changes that are not promotions (int -> long -> float -> double, string <-> bytes), enum
symbols removed without a reader default, renamed records without an alias, union branches the
reader cannot take, changed logical types. An empty list means compatible.
"""

from __future__ import annotations

from typing import Any

_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
_PROMOTIONS = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}


def check_backward(old: Any, new: Any) -> list[str]:
    """Problems preventing ``new`` (reader) from reading data written with ``old`` (writer)."""
    checker = _Checker(_named_types(old), _named_types(new))
    return checker.check(old, new, "$")


def is_backward_compatible(old: Any, new: Any) -> bool:
    """True when ``new`` can read everything written with ``old``."""
    return not check_backward(old, new)


def _named_types(schema: Any, namespace: str = "", out: dict[str, Any] | None = None) -> dict[
    str, Any
]:
    """Every named type (record, enum, fixed) in ``schema``, by short and by full name."""
    found: dict[str, Any] = {} if out is None else out
    if isinstance(schema, list):
        for branch in schema:
            _named_types(branch, namespace, found)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "enum", "fixed"):
            namespace = schema.get("namespace", namespace)
            name = schema["name"]
            full = name if "." in name else f"{namespace}.{name}".lstrip(".")
            found[full] = schema
            found[full.rsplit(".", 1)[-1]] = schema
        for field in schema.get("fields", []):
            _named_types(field["type"], namespace, found)
        for key in ("items", "values"):
            if key in schema:
                _named_types(schema[key], namespace, found)
        if isinstance(kind, (dict, list)):
            _named_types(kind, namespace, found)
    return found


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        kind = schema["type"]
        return kind if isinstance(kind, str) else _kind(kind)
    return str(schema)


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


class _Checker:
    def __init__(self, old_names: dict[str, Any], new_names: dict[str, Any]) -> None:
        self.old_names = old_names
        self.new_names = new_names
        self.seen: set[tuple[str, str]] = set()

    def resolve(self, schema: Any, names: dict[str, Any]) -> Any:
        if isinstance(schema, str) and schema not in _PRIMITIVES:
            return names.get(schema, names.get(_short(schema), schema))
        if isinstance(schema, dict) and isinstance(schema["type"], (dict, list)):
            return self.resolve(schema["type"], names)
        if isinstance(schema, dict) and schema["type"] in _PRIMITIVES and len(schema) == 1:
            return schema["type"]
        return schema

    def check(self, old: Any, new: Any, path: str) -> list[str]:
        old = self.resolve(old, self.old_names)
        new = self.resolve(new, self.new_names)
        if _kind(old) == "union":
            return [p for branch in old for p in self.check(branch, new, path)]
        if _kind(new) == "union":
            if any(not self.check(old, branch, path) for branch in new):
                return []
            return [f"{path}: writer type {_kind(old)} matches no branch of the reader union"]
        return self.check_same_kind(old, new, path)

    def check_same_kind(self, old: Any, new: Any, path: str) -> list[str]:
        old_kind, new_kind = _kind(old), _kind(new)
        if old_kind != new_kind:
            if new_kind in _PROMOTIONS.get(old_kind, set()):
                return []
            return [f"{path}: type changed from {old_kind} to {new_kind}"]
        problems = _logical_problems(old, new, path)
        if old_kind == "record":
            problems += self.check_record(old, new, path)
        elif old_kind == "enum":
            problems += _check_enum(old, new, path)
        elif old_kind == "fixed" and old.get("size") != new.get("size"):
            problems.append(f"{path}: fixed size changed")
        elif old_kind == "array":
            problems += self.check(old["items"], new["items"], f"{path}[]")
        elif old_kind == "map":
            problems += self.check(old["values"], new["values"], f"{path}{{}}")
        return problems

    def check_record(self, old: dict[str, Any], new: dict[str, Any], path: str) -> list[str]:
        if not _same_name(old, new):
            return [f"{path}: record {old['name']} renamed to {new['name']} without an alias"]
        pair = (old["name"], new["name"])
        if pair in self.seen:
            return []
        self.seen.add(pair)
        written = {f["name"]: f for f in old["fields"]}
        problems = []
        for field in new["fields"]:
            names = [field["name"], *field.get("aliases", [])]
            source = next((written[n] for n in names if n in written), None)
            where = f"{path}.{field['name']}"
            if source is not None:
                problems += self.check(source["type"], field["type"], where)
            elif "default" not in field:
                problems.append(f"{where}: field added without a default")
        return problems


def _same_name(old: dict[str, Any], new: dict[str, Any]) -> bool:
    aliases = {_short(a) for a in new.get("aliases", [])}
    return _short(old["name"]) == _short(new["name"]) or _short(old["name"]) in aliases


def _check_enum(old: dict[str, Any], new: dict[str, Any], path: str) -> list[str]:
    if not _same_name(old, new):
        return [f"{path}: enum {old['name']} renamed to {new['name']} without an alias"]
    missing = [s for s in old["symbols"] if s not in new["symbols"]]
    if missing and "default" not in new:
        return [f"{path}: enum symbols removed without a default: {', '.join(missing)}"]
    return []


def _logical_problems(old: Any, new: Any, path: str) -> list[str]:
    old_logical = old.get("logicalType") if isinstance(old, dict) else None
    new_logical = new.get("logicalType") if isinstance(new, dict) else None
    if old_logical != new_logical:
        return [f"{path}: logical type changed from {old_logical} to {new_logical}"]
    return []

"""Rule-file items: transitions and trigger rules, merged by id across layers and validated."""

from __future__ import annotations

import re
from typing import Any

from processors.facts import GETTERS
from processors.rulebuilder import Builder, parse_duration
from processors.ruleset import (
    DEADLINE_KINDS,
    DIMENSIONS,
    Dimension,
    Experiment,
    Transition,
    TriggerRule,
    _placeholders,
)
from processors.yamlsrc import Path_, Source
from schemas.models import TriggerPriority

PRIORITIES = {p.name.lower(): p.value for p in TriggerPriority}
_TRANSITION = {"id", "version", "dimension", "from", "to", "events", "when", "priority",
               "enabled", "description"}
_TRIGGER = {"id", "version", "type", "source", "priority", "marketing", "expires", "when",
            "experiment", "holdout", "enabled", "description"}


def _input_event_names() -> frozenset[str]:
    from schemas.models import EVENT_TYPES, Envelope

    return frozenset(name for name, cls in EVENT_TYPES.items() if issubclass(cls, Envelope))


INPUT_EVENTS = _input_event_names()
"""Input event types a transition may name in ``events`` (plus ``tick`` and ``merge``)."""
KNOWN_EVENTS = INPUT_EVENTS | {"tick", "merge"}


def merged_items(b: Builder, section: str) -> list[tuple[dict[str, Any], Source, Path_]]:
    """Items of ``section`` merged by id across layers (override wins; order: default first)."""
    by_id: dict[str, tuple[dict[str, Any], Source, Path_]] = {}
    for src in reversed(b.layers):
        items = src.data.get(section) if isinstance(src.data, dict) else None
        if items is None:
            continue
        if not isinstance(items, list):
            b.err("expected a list", src, (section,), section)
            continue
        seen: set[str] = set()
        for i, item in enumerate(items):
            path: Path_ = (section, i)
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                b.err("each item needs a string 'id'", src, path, f"{section}[{i}]")
                continue
            if item["id"] in seen:
                b.err(f"duplicate id {item['id']!r}", src, (*path, "id"),
                      f"{section}[{item['id']}].id")
            seen.add(item["id"])
            by_id.pop(item["id"], None)  # an override moves to its own position
            by_id[item["id"]] = (item, src, path)
    return [entry for entry in by_id.values() if entry[0].get("enabled", True) is not False]


def parse_transition(b: Builder, item: dict[str, Any], src: Source, path: Path_,
                dims: dict[str, Dimension]) -> Transition | None:
    tid = item["id"]
    field = f"transitions[{tid}]"
    b.check_keys(item, _TRANSITION, src, path)
    dim = dims.get(str(item.get("dimension", "lifecycle")))
    if dim is None:
        b.err(f"unknown dimension {item.get('dimension')!r} (known: {', '.join(DIMENSIONS)})",
              src, (*path, "dimension"), f"{field}.dimension")
        return None
    sources = _from(b, item.get("from", "*"), dim, src, path, field)
    to = item.get("to")
    if not isinstance(to, str) or not to:
        b.err("needs a target state 'to'", src, path, f"{field}.to")
        return None
    _check_target(b, to, dim, src, (*path, "to"), f"{field}.to")
    events = _events(b, item.get("events"), src, (*path, "events"), f"{field}.events")
    guard = b.condition(item.get("when"), src, (*path, "when"), f"{field}.when")
    priority = _priority_int(b, item.get("priority", 0), src, (*path, "priority"), field)
    version = _version(b, item, src, path, field)
    return Transition(tid, version, dim.name, sources, to, events, guard, priority,
                      src.file, src.line(path))


def _from(b: Builder, raw: Any, dim: Dimension, src: Source, path: Path_,
          field: str) -> tuple[str, ...] | None:
    if raw == "*" or raw == ["*"]:
        return None
    items = raw if isinstance(raw, list) else [raw]
    for state in items:
        if not isinstance(state, str) or not (dim.accepts(state) or state in dim.states):
            b.err(f"unknown {dim.name} state {state!r}", src, (*path, "from"), f"{field}.from")
    return tuple(str(s) for s in items)


def _check_target(b: Builder, to: str, dim: Dimension, src: Source, path: Path_,
                  field: str) -> None:
    for name in _placeholders(to):
        if name not in GETTERS:
            b.err(f"unknown fact {name!r} in target", src, path, field)
    probe = to.split("{", 1)[0] + ("x" if "{" in to else "")
    if not dim.accepts(probe):
        b.err(f"target {to!r} is not a {dim.name} state", src, path, field)


def _events(b: Builder, raw: Any, src: Source, path: Path_,
            field: str) -> frozenset[str] | None:
    if raw is None:
        return None
    items = raw if isinstance(raw, list) else [raw]
    for name in items:
        if name not in KNOWN_EVENTS:
            b.err(f"unknown event type {name!r}", src, path, field)
    return frozenset(str(n) for n in items)


def _priority_int(b: Builder, raw: Any, src: Source, path: Path_, field: str) -> int:
    if isinstance(raw, str) and raw.lower() in PRIORITIES:
        return PRIORITIES[raw.lower()]
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    names = ", ".join(PRIORITIES)
    b.err(f"priority must be an integer or one of {names}, got {raw!r}", src, path,
          f"{field}.priority")
    return 0


def _version(b: Builder, item: dict[str, Any], src: Source, path: Path_, field: str) -> int:
    raw = item.get("version", 1)
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        b.err(f"version must be an integer >= 1, got {raw!r}", src, (*path, "version"),
              f"{field}.version")
        return 1
    return raw


def parse_trigger(b: Builder, item: dict[str, Any], src: Source, path: Path_,
             dims: dict[str, Dimension]) -> TriggerRule | None:
    rid = item["id"]
    field = f"triggers[{rid}]"
    b.check_keys(item, _TRIGGER, src, path)
    ttype = item.get("type")
    if not isinstance(ttype, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", ttype):
        b.err("needs a 'type' (lower_snake_case)", src, (*path, "type"), f"{field}.type")
        return None
    source = _trigger_source(b, item.get("source"), src, (*path, "source"), field, dims)
    if source is None:
        return None
    kind, name, dim = source
    priority = _priority_int(b, item.get("priority", "promotional"), src,
                             (*path, "priority"), field)
    expires = b_try(b, lambda: parse_duration(item.get("expires", "24h")), src,
                    (*path, "expires"), f"{field}.expires", 86_400.0)
    return TriggerRule(
        id=rid, version=_version(b, item, src, path, field), trigger_type=ttype, kind=kind,
        source=name, dimension=dim, priority=priority,
        marketing=_flag(b, item, "marketing", True, src, path, field),
        expires=expires,
        guard=b.condition(item.get("when"), src, (*path, "when"), f"{field}.when"),
        experiment=_experiment(b, item.get("experiment"), src, (*path, "experiment"), field),
        holdout=_flag(b, item, "holdout", True, src, path, field),
        file=src.file, line=src.line(path),
    )


def b_try(b: Builder, fn: Any, src: Source, path: Path_, field: str, default: Any) -> Any:
    """``fn()``, recording a ValueError as an error at ``path``."""
    try:
        return fn()
    except (ValueError, TypeError) as exc:
        b.err(str(exc), src, path, field)
        return default


def _flag(b: Builder, item: dict[str, Any], key: str, default: bool, src: Source,
          path: Path_, field: str) -> bool:
    raw = item.get(key, default)
    if not isinstance(raw, bool):
        b.err(f"expected true or false, got {raw!r}", src, (*path, key), f"{field}.{key}")
        return default
    return raw


def _trigger_source(b: Builder, raw: Any, src: Source, path: Path_, field: str,
                    dims: dict[str, Dimension]) -> tuple[str, str, str] | None:
    where = f"{field}.source"
    if not isinstance(raw, dict) or len(raw) not in (1, 2):
        b.err("source must be {deadline: KIND} or {transition: STATE[, dimension: DIM]}",
              src, path, where)
        return None
    if "deadline" in raw:
        if raw["deadline"] not in DEADLINE_KINDS:
            b.err(f"unknown deadline {raw['deadline']!r} (known: {', '.join(DEADLINE_KINDS)})",
                  src, path, where)
            return None
        return "deadline", str(raw["deadline"]), ""
    if "transition" in raw:
        dim = dims.get(str(raw.get("dimension", "lifecycle")))
        state = raw["transition"]
        if dim is None or not isinstance(state, str) or not dim.accepts(state.rstrip("*") + "x"
                                                                         if state.endswith("*")
                                                                         else state):
            b.err(f"unknown persona state {state!r}", src, path, where)
            return None
        return "transition", state, dim.name
    b.err("source must name a deadline or a transition", src, path, where)
    return None


def _experiment(b: Builder, raw: Any, src: Source, path: Path_,
                field: str) -> Experiment | None:
    if raw is None:
        return None
    where = f"{field}.experiment"
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
        b.err("experiment needs an 'id' and 'variants'", src, path, where)
        return None
    variants = raw.get("variants")
    weights = raw.get("weights")
    if not isinstance(variants, list) or not variants or \
            len({str(v) for v in variants}) != len(variants):
        b.err("variants must be a non-empty list of distinct names", src, path, where)
        return None
    if weights is not None:
        ok = isinstance(weights, list) and len(weights) == len(variants) and all(
            isinstance(w, int | float) and not isinstance(w, bool) and w >= 0 for w in weights
        ) and sum(weights) > 0
        if not ok:
            b.err("weights must be numbers >= 0, one per variant, not all 0", src, path, where)
            return None
    return Experiment(raw["id"], tuple(str(v) for v in variants),
                      tuple(float(w) for w in weights) if weights is not None else None)



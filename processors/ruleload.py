"""Validation and building of a :class:`~processors.ruleset.RuleSet` from YAML layers.

``layers`` are parsed files, highest priority first (the user's override, then the default).
Scalar settings are looked up layer by layer; transitions and triggers merge by ``id``. Every
problem is collected with its file, line and field, then raised together as ``RuleErrors``.
"""

from __future__ import annotations

import re
from typing import Any

from processors.conditions import Condition, ConditionError, compile_condition
from processors.errors import PolicyError, RuleError, RuleErrors
from processors.facts import GETTERS
from processors.policy import BudgetPolicy, QuietHours
from processors.ruleset import (
    DEADLINE_KINDS,
    DIMENSIONS,
    Deadlines,
    Dimension,
    Experiment,
    RuleSet,
    Settings,
    Transition,
    TriggerRule,
    _placeholders,
)
from processors.state import Limits
from processors.yamlsrc import Path_, Source
from schemas.models import TriggerPriority

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0, "w": 604_800.0}
PRIORITIES = {p.name.lower(): p.value for p in TriggerPriority}

_TOP = {"version", "replace", "settings", "deadlines", "dimensions", "transitions", "triggers"}
_SETTINGS = {
    "session_gap", "recent_window", "engagement_half_life", "affinity_half_life", "budget",
    "quiet_hours", "holdout", "require_consent", "max_chain", "limits",
}
_TRANSITION = {"id", "version", "dimension", "from", "to", "events", "when", "priority",
               "enabled", "description"}
_TRIGGER = {"id", "version", "type", "source", "priority", "marketing", "expires", "when",
            "experiment", "holdout", "enabled", "description"}
_DEADLINE = {"steps", "after", "min_views", "enabled"}


def _input_event_names() -> frozenset[str]:
    from schemas.models import EVENT_TYPES, Envelope

    return frozenset(name for name, cls in EVENT_TYPES.items() if issubclass(cls, Envelope))


INPUT_EVENTS = _input_event_names()
"""Input event types a transition may name in ``events`` (plus ``tick`` and ``merge``)."""
KNOWN_EVENTS = INPUT_EVENTS | {"tick", "merge"}


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string like ``90s``, ``30m``, ``48h``, ``30d``, ``2w``."""
    if isinstance(value, bool):
        raise TypeError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a duration cannot be negative: {value!r}")
        return float(value)
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"not a duration (use e.g. 30m, 48h, 30d): {value!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


class _Builder:
    """Collects errors while reading the layers."""

    def __init__(self, layers: list[Source]) -> None:
        self.layers = layers
        self.errors: list[RuleError] = []

    # ------------------------------------------------------------------ helpers
    def err(self, msg: str, src: Source, path: Path_, field: str) -> None:
        self.errors.append(RuleError(msg, file=src.file, line=src.line(path), field=field))

    def lookup(self, path: Path_) -> tuple[Any, Source, Path_] | None:
        """The value at ``path`` in the highest layer that has it."""
        for src in self.layers:
            node: Any = src.data
            for key in path:
                if not isinstance(node, dict) or key not in node:
                    break
                node = node[key]
            else:
                return node, src, path
        return None

    def value(self, path: Path_, default: Any, conv: Any) -> Any:
        """``conv(value)`` of the setting at ``path`` (errors recorded), else ``default``."""
        found = self.lookup(path)
        if found is None:
            return default
        raw, src, where = found
        try:
            return conv(raw)
        except (ValueError, TypeError) as exc:
            self.err(str(exc), src, where, ".".join(map(str, path)))
            return default

    def check_keys(self, data: Any, allowed: set[str], src: Source, path: Path_) -> None:
        name = ".".join(map(str, path)) or "(top level)"
        if not isinstance(data, dict):
            self.err("expected a mapping", src, path, name)
            return
        for key in data:
            if str(key) not in allowed:
                known = ", ".join(sorted(allowed))
                self.err(f"unknown key {key!r} (known: {known})", src, (*path, str(key)), name)

    def condition(self, text: Any, src: Source, path: Path_, field: str) -> Condition | None:
        if text is None:
            return None
        if isinstance(text, bool):
            text = "true" if text else "false"
        try:
            return compile_condition(str(text), GETTERS)
        except ConditionError as exc:
            self.err(f"bad condition: {exc}", src, path, field)
            return None


def _int_min(low: int) -> Any:
    def conv(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ValueError(f"expected an integer >= {low}, got {v!r}")
        return v

    return conv


def _boolean(v: Any) -> bool:
    if not isinstance(v, bool):
        raise TypeError(f"expected true or false, got {v!r}")
    return v


def _share(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 1:
        raise ValueError(f"expected a share between 0 and 1, got {v!r}")
    return float(v)


def _settings(b: _Builder) -> Settings:
    for src in b.layers:
        if isinstance(src.data, dict) and "settings" in src.data:
            b.check_keys(src.data["settings"], _SETTINGS, src, ("settings",))
    d = Settings()
    s = ("settings",)
    budget = BudgetPolicy(
        b.value((*s, "budget", "per_day"), d.budget.per_day, _int_min(0)),
        b.value((*s, "budget", "per_week"), d.budget.per_week, _int_min(0)),
    )
    hours = [b.value((*s, "quiet_hours", k), dflt, _hour) for k, dflt in
             (("start", d.quiet.start_hour), ("end", d.quiet.end_hour))]
    limits = Limits(*(b.value((*s, "limits", name), dflt, _int_min(1))
                      for name, dflt in zip(Limits._fields, Limits(), strict=True)))
    return Settings(
        session_gap=b.value((*s, "session_gap"), d.session_gap, parse_duration),
        recent_window=b.value((*s, "recent_window"), d.recent_window, parse_duration),
        engagement_half_life=b.value((*s, "engagement_half_life"), d.engagement_half_life,
                                     _positive_duration),
        affinity_half_life=b.value((*s, "affinity_half_life"), d.affinity_half_life,
                                   _positive_duration),
        budget=budget,
        quiet=QuietHours(*hours),
        quiet_hold=b.value((*s, "quiet_hours", "hold"), d.quiet_hold, _boolean),
        holdout_salt=str(b.value((*s, "holdout", "salt"), d.holdout_salt, str)),
        holdout_share=b.value((*s, "holdout", "share"), d.holdout_share, _share),
        require_consent=b.value((*s, "require_consent"), d.require_consent, _boolean),
        max_chain=b.value((*s, "max_chain"), d.max_chain, _int_min(1)),
        limits=limits,
    )


def _hour(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 23:
        raise ValueError(f"expected an hour 0-23, got {v!r}")
    return v


def _positive_duration(v: Any) -> float:
    seconds = parse_duration(v)
    if seconds <= 0:
        raise ValueError("a half-life must be longer than 0")
    return seconds


def _steps(v: Any) -> tuple[float, ...]:
    items = v if isinstance(v, list) else [v]
    steps = tuple(parse_duration(x) for x in items)
    if list(steps) != sorted(steps):
        raise ValueError("steps must be in increasing order")
    return steps


def _deadlines(b: _Builder) -> Deadlines:
    d = Deadlines()
    for src in b.layers:
        data = src.data.get("deadlines") if isinstance(src.data, dict) else None
        if data is None:
            continue
        b.check_keys(data, set(DEADLINE_KINDS), src, ("deadlines",))
        for kind, spec in (data.items() if isinstance(data, dict) else ()):
            b.check_keys(spec, _DEADLINE, src, ("deadlines", str(kind)))
    values: dict[str, Any] = {}
    for kind in DEADLINE_KINDS:
        path = ("deadlines", kind)
        steps = b.value((*path, "steps"), None, _steps)
        if steps is None:
            after = b.value((*path, "after"), None, parse_duration)
            steps = (after,) if after is not None else d.steps(kind)
        if b.value((*path, "enabled"), True, _boolean) is False:
            steps = ()
        values[kind] = steps
    values["browse_min_views"] = b.value(("deadlines", "browse", "min_views"),
                                         d.browse_min_views, _int_min(1))
    return Deadlines(**values)


def _dimensions(b: _Builder) -> dict[str, Dimension]:
    for src in b.layers:
        data = src.data.get("dimensions") if isinstance(src.data, dict) else None
        if data is not None:
            b.check_keys(data, set(DIMENSIONS), src, ("dimensions",))
    dims: dict[str, Dimension] = {}
    for name in DIMENSIONS:
        states = b.value(("dimensions", name, "states"), None, _state_list)
        initial = b.value(("dimensions", name, "initial"), None, _state_name)
        found = b.lookup(("dimensions", name))
        if states is None or initial is None:
            src = found[1] if found else b.layers[-1]
            b.err("needs 'states' and 'initial'", src, ("dimensions", name), f"dimensions.{name}")
            continue
        dim = Dimension(name, initial, states)
        if not dim.accepts(initial) and found:
            b.err(f"initial state {initial!r} is not among the states", found[1],
                  ("dimensions", name, "initial"), f"dimensions.{name}.initial")
        dims[name] = dim
    return dims


def _state_name(v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise ValueError(f"expected a state name, got {v!r}")
    return v


def _state_list(v: Any) -> tuple[str, ...]:
    if not isinstance(v, list) or not v:
        raise ValueError("expected a non-empty list of state names")
    return tuple(_state_name(x) for x in v)


def _merged_items(b: _Builder, section: str) -> list[tuple[dict[str, Any], Source, Path_]]:
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


def _transition(b: _Builder, item: dict[str, Any], src: Source, path: Path_,
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


def _from(b: _Builder, raw: Any, dim: Dimension, src: Source, path: Path_,
          field: str) -> tuple[str, ...] | None:
    if raw == "*" or raw == ["*"]:
        return None
    items = raw if isinstance(raw, list) else [raw]
    for state in items:
        if not isinstance(state, str) or not (dim.accepts(state) or state in dim.states):
            b.err(f"unknown {dim.name} state {state!r}", src, (*path, "from"), f"{field}.from")
    return tuple(str(s) for s in items)


def _check_target(b: _Builder, to: str, dim: Dimension, src: Source, path: Path_,
                  field: str) -> None:
    for name in _placeholders(to):
        if name not in GETTERS:
            b.err(f"unknown fact {name!r} in target", src, path, field)
    probe = to.split("{", 1)[0] + ("x" if "{" in to else "")
    if not dim.accepts(probe):
        b.err(f"target {to!r} is not a {dim.name} state", src, path, field)


def _events(b: _Builder, raw: Any, src: Source, path: Path_,
            field: str) -> frozenset[str] | None:
    if raw is None:
        return None
    items = raw if isinstance(raw, list) else [raw]
    for name in items:
        if name not in KNOWN_EVENTS:
            b.err(f"unknown event type {name!r}", src, path, field)
    return frozenset(str(n) for n in items)


def _priority_int(b: _Builder, raw: Any, src: Source, path: Path_, field: str) -> int:
    if isinstance(raw, str) and raw.lower() in PRIORITIES:
        return PRIORITIES[raw.lower()]
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    names = ", ".join(PRIORITIES)
    b.err(f"priority must be an integer or one of {names}, got {raw!r}", src, path,
          f"{field}.priority")
    return 0


def _version(b: _Builder, item: dict[str, Any], src: Source, path: Path_, field: str) -> int:
    raw = item.get("version", 1)
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        b.err(f"version must be an integer >= 1, got {raw!r}", src, (*path, "version"),
              f"{field}.version")
        return 1
    return raw


def _trigger(b: _Builder, item: dict[str, Any], src: Source, path: Path_,
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


def b_try(b: _Builder, fn: Any, src: Source, path: Path_, field: str, default: Any) -> Any:
    """``fn()``, recording a ValueError as an error at ``path``."""
    try:
        return fn()
    except (ValueError, TypeError) as exc:
        b.err(str(exc), src, path, field)
        return default


def _flag(b: _Builder, item: dict[str, Any], key: str, default: bool, src: Source,
          path: Path_, field: str) -> bool:
    raw = item.get(key, default)
    if not isinstance(raw, bool):
        b.err(f"expected true or false, got {raw!r}", src, (*path, key), f"{field}.{key}")
        return default
    return raw


def _trigger_source(b: _Builder, raw: Any, src: Source, path: Path_, field: str,
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


def _experiment(b: _Builder, raw: Any, src: Source, path: Path_,
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


def build_rules(layers: list[Source]) -> RuleSet:
    """Validate and build the rule set from ``layers`` (highest priority first)."""
    b = _Builder(layers)
    for src in layers:
        if src.data is None:
            continue
        b.check_keys(src.data, _TOP, src, ())
        if isinstance(src.data, dict) and src.data.get("version", 1) != 1:
            b.err("unsupported version (this release reads version 1)", src, ("version",),
                  "version")
    if not all(isinstance(src.data, dict | None) for src in layers):
        raise RuleErrors(b.errors)
    try:
        settings = _settings(b)
    except PolicyError as exc:  # pragma: no cover - values are checked before
        raise RuleErrors([RuleError(str(exc), file=layers[0].file)]) from exc
    deadlines = _deadlines(b)
    dims = _dimensions(b)
    transitions = [t for item, src, path in _merged_items(b, "transitions")
                   if (t := _transition(b, item, src, path, dims)) is not None]
    triggers = [r for item, src, path in _merged_items(b, "triggers")
                if (r := _trigger(b, item, src, path, dims)) is not None]
    if b.errors:
        raise RuleErrors(b.errors)
    return RuleSet(settings, deadlines, dims, tuple(transitions), tuple(triggers),
                   tuple(src.file for src in layers))

"""Validation and building of a :class:`~processors.ruleset.RuleSet` from YAML layers.

``layers`` are parsed files, highest priority first (the user's override, then the default).
Scalar settings are looked up layer by layer; transitions and triggers merge by ``id``
(:mod:`processors.ruleitems`). Every problem is collected with its file, line and field, then
raised together as ``RuleErrors``.
"""

from __future__ import annotations

from typing import Any

from processors.errors import PolicyError, RuleError, RuleErrors
from processors.policy import BudgetPolicy, QuietHours
from processors.rulebuilder import Builder, boolean, int_min, parse_duration, share
from processors.ruleitems import merged_items, parse_transition, parse_trigger
from processors.ruleset import (
    DEADLINE_KINDS,
    DIMENSIONS,
    Deadlines,
    Dimension,
    RuleSet,
    Settings,
)
from processors.state import Limits
from processors.yamlsrc import Source

__all__ = ["build_rules", "parse_duration"]


_TOP = {"version", "replace", "settings", "deadlines", "dimensions", "transitions", "triggers"}
_SETTINGS = {
    "session_gap", "recent_window", "engagement_half_life", "affinity_half_life", "budget",
    "quiet_hours", "holdout", "require_consent", "max_chain", "limits",
}
_DEADLINE = {"steps", "after", "min_views", "enabled"}


def _settings(b: Builder) -> Settings:
    for src in b.layers:
        if isinstance(src.data, dict) and "settings" in src.data:
            b.check_keys(src.data["settings"], _SETTINGS, src, ("settings",))
    d = Settings()
    s = ("settings",)
    budget = BudgetPolicy(
        b.value((*s, "budget", "per_day"), d.budget.per_day, int_min(0)),
        b.value((*s, "budget", "per_week"), d.budget.per_week, int_min(0)),
    )
    hours = [b.value((*s, "quiet_hours", k), dflt, _hour) for k, dflt in
             (("start", d.quiet.start_hour), ("end", d.quiet.end_hour))]
    limits = Limits(*(b.value((*s, "limits", name), dflt, int_min(1))
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
        quiet_hold=b.value((*s, "quiet_hours", "hold"), d.quiet_hold, boolean),
        holdout_salt=str(b.value((*s, "holdout", "salt"), d.holdout_salt, str)),
        holdout_share=b.value((*s, "holdout", "share"), d.holdout_share, share),
        require_consent=b.value((*s, "require_consent"), d.require_consent, boolean),
        max_chain=b.value((*s, "max_chain"), d.max_chain, int_min(1)),
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


def _deadlines(b: Builder) -> Deadlines:
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
        if b.value((*path, "enabled"), True, boolean) is False:
            steps = ()
        values[kind] = steps
    values["browse_min_views"] = b.value(("deadlines", "browse", "min_views"),
                                         d.browse_min_views, int_min(1))
    return Deadlines(**values)


def _dimensions(b: Builder) -> dict[str, Dimension]:
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


def build_rules(layers: list[Source]) -> RuleSet:
    """Validate and build the rule set from ``layers`` (highest priority first)."""
    b = Builder(layers)
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
    transitions = [t for item, src, path in merged_items(b, "transitions")
                   if (t := parse_transition(b, item, src, path, dims)) is not None]
    triggers = [r for item, src, path in merged_items(b, "triggers")
                if (r := parse_trigger(b, item, src, path, dims)) is not None]
    if b.errors:
        raise RuleErrors(b.errors)
    return RuleSet(settings, deadlines, dims, tuple(transitions), tuple(triggers),
                   tuple(src.file for src in layers))


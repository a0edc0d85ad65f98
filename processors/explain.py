"""Explains a rule set: states, transitions, unreachable states and conflicting guards.

Used by ``personaflow rules explain FILE`` and ``personaflow rules check FILE``.

- **unreachable**: a declared state no transition chain from the initial state can enter
  (``prefix:*`` patterns count as one state, entered by any matching target).
- **conflict**: two transitions of one dimension with the same priority that can leave a
  common state on a common input type towards different targets; which one wins then depends
  only on file order, which is rarely what the author meant.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from processors.facts import FACTS
from processors.ruleset import DIMENSIONS, Dimension, RuleSet, Transition, _matches


@dataclass(frozen=True, slots=True)
class Conflict:
    """Two transitions that can both fire from one state on one input type."""

    dimension: str
    first: str
    second: str
    priority: int
    states: tuple[str, ...]


@dataclass(slots=True)
class Explanation:
    """Everything ``rules explain`` reports."""

    files: tuple[str, ...]
    states: dict[str, tuple[str, ...]] = field(default_factory=dict)
    initial: dict[str, str] = field(default_factory=dict)
    unreachable: dict[str, list[str]] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)


def _leaves(tr: Transition, dim: Dimension) -> list[str]:
    """The declared states (or patterns) ``tr`` may leave."""
    return [s for s in dim.states if tr.sources is None or any(
        _matches(src, _probe(s)) or src == s for src in tr.sources)]


def _probe(state: str) -> str:
    """A concrete name standing for a declared state or pattern (``recent_browser:*``)."""
    return state[:-1] + "x" if state.endswith("*") else state


def _entered(tr: Transition, dim: Dimension) -> list[str]:
    """The declared states (or patterns) ``tr`` may enter."""
    target = tr.to.split("{", 1)[0] + ("x" if "{" in tr.to else "")
    return [s for s in dim.states if _matches(s, target)]


def reachable(rules: RuleSet, dim: Dimension) -> set[str]:
    """Declared states reachable from the initial state of ``dim``."""
    transitions = [t for t in rules.transitions if t.dimension == dim.name]
    seen = {s for s in dim.states if _matches(s, dim.initial)}
    changed = True
    while changed:
        changed = False
        for tr in transitions:
            if any(s in seen for s in _leaves(tr, dim)):
                for s in _entered(tr, dim):
                    if s not in seen:
                        seen.add(s)
                        changed = True
    return seen


def conflicts(rules: RuleSet) -> list[Conflict]:
    """Same-priority transitions that can fire from a common state on a common input."""
    out: list[Conflict] = []
    for dim_name in DIMENSIONS:
        dim = rules.dimensions[dim_name]
        trs = [t for t in rules.transitions if t.dimension == dim_name]
        for i, a in enumerate(trs):
            for b in trs[i + 1:]:
                if a.priority != b.priority or a.to == b.to:
                    continue
                if a.events is not None and b.events is not None and not (a.events & b.events):
                    continue
                common = sorted(set(_leaves(a, dim)) & set(_leaves(b, dim)))
                if common:
                    out.append(Conflict(dim_name, a.id, b.id, a.priority, tuple(common)))
    return out


def explain(rules: RuleSet) -> Explanation:
    """The structured explanation of ``rules``."""
    ex = Explanation(rules.files)
    for name in DIMENSIONS:
        dim = rules.dimensions[name]
        ex.states[name] = dim.states
        ex.initial[name] = dim.initial
        ex.unreachable[name] = [s for s in dim.states if s not in reachable(rules, dim)]
    ex.conflicts = conflicts(rules)
    return ex


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def render(rules: RuleSet, with_facts: bool = False) -> list[str]:
    """Human-readable lines of the explanation (what the CLI prints)."""
    ex = explain(rules)
    s, dl = rules.settings, rules.deadlines
    lines = [f"rules from: {', '.join(ex.files)}", ""]
    lines.append(f"budget: {s.budget.per_day}/day, {s.budget.per_week}/week; quiet hours "
                 f"{s.quiet.start_hour:02d}:00-{s.quiet.end_hour:02d}:00 local "
                 f"({'held in state' if s.quiet_hold else 'not_before'}); holdout "
                 f"{s.holdout_share:.0%}; explicit consent "
                 f"{'required' if s.require_consent else 'not required'}")
    lines.append("deadlines: " + "; ".join(
        f"{kind} {'/'.join(_duration(x) for x in dl.steps(kind)) or 'off'}"
        for kind in ("cart", "browse", "inactivity", "post_purchase", "welcome")))
    for name in DIMENSIONS:
        lines += ["", f"{name}: initial {ex.initial[name]}; states: {', '.join(ex.states[name])}"]
        for tr in sorted((t for t in rules.transitions if t.dimension == name),
                         key=lambda t: -t.priority):
            src = "*" if tr.sources is None else ",".join(tr.sources)
            on = "any input" if tr.events is None else ", ".join(sorted(tr.events))
            guard = tr.guard.text if tr.guard else "always"
            lines.append(f"  [{tr.priority:>3}] {tr.id} v{tr.version}: {src} -> {tr.to} "
                         f"on {on} when {guard}  ({tr.file}:{tr.line})")
        if ex.unreachable[name]:
            lines.append(f"  unreachable: {', '.join(ex.unreachable[name])}")
    lines += ["", "triggers:"]
    for r in sorted(rules.triggers, key=lambda r: -r.priority):
        exp = f", experiment {r.experiment.id} {'/'.join(r.experiment.variants)}" \
            if r.experiment else ""
        when = f" when {r.guard.text}" if r.guard else ""
        lines.append(f"  [{r.priority:>3}] {r.id} -> {r.trigger_type} on {r.kind} {r.source}"
                     f"{when}; {'marketing' if r.marketing else 'transactional'}, expires "
                     f"{_duration(r.expires)}{exp}")
    lines += ["", f"conflicts: {len(ex.conflicts)}"]
    for c in ex.conflicts:
        lines.append(f"  {c.dimension}: {c.first} and {c.second} (priority {c.priority}) can "
                     f"both leave {', '.join(c.states)}; file order decides")
    if with_facts:
        lines += ["", "facts usable in guards:"]
        lines += [f"  {name}: {doc}" for name, (_, doc) in FACTS.items()]
    return lines

"""The parsed rule set: settings, deadlines, persona dimensions, transitions and trigger rules.

Built by :func:`load_rules` from the shipped ``processors/rules/default.yaml`` plus an optional
user override (see that file's header for the merge rules). Everything is validated at load
time; problems raise :class:`processors.errors.RuleErrors` naming file, line and field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import processors
from processors.conditions import Condition
from processors.facts import GETTERS, Ctx
from processors.policy import BudgetPolicy, QuietHours
from processors.state import Limits

# the package's __file__, not this module's: a mypyc-compiled module's own __file__ is
# derived from the shared library's place and is wrong here (docs/native.md)
DEFAULT_RULES = Path(processors.__file__).parent / "rules" / "default.yaml"
"""The shipped default rule file."""

DIMENSIONS = ("lifecycle", "interest", "journey")
"""Persona dimensions (fixed: the PersonaTransition contract names them)."""

DEADLINE_KINDS = ("cart", "browse", "inactivity", "post_purchase", "welcome")
"""Deadline sources the domain core schedules; trigger rules may listen to any of them."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Tunables of the rule set (``settings:`` in YAML); durations in seconds."""

    session_gap: float = 1800.0
    recent_window: float = 172_800.0
    engagement_half_life: float = 14 * 86_400.0
    affinity_half_life: float = 7 * 86_400.0
    budget: BudgetPolicy = field(default_factory=BudgetPolicy)
    quiet: QuietHours = field(default_factory=QuietHours)
    quiet_hold: bool = True  # True: hold quiet-hour triggers in state; False: emit not_before
    holdout_salt: str = "holdout"
    holdout_share: float = 0.0
    require_consent: bool = False
    max_chain: int = 3
    limits: Limits = field(default_factory=Limits)


@dataclass(frozen=True, slots=True)
class Deadlines:
    """Delays of the time-based behaviour (``deadlines:``); an empty tuple disables one."""

    cart: tuple[float, ...] = (3600.0, 86_400.0, 172_800.0)
    browse: tuple[float, ...] = (7200.0,)
    browse_min_views: int = 2
    inactivity: tuple[float, ...] = (30 * 86_400.0, 90 * 86_400.0)
    post_purchase: tuple[float, ...] = (3 * 86_400.0,)
    welcome: tuple[float, ...] = (0.0,)

    def steps(self, kind: str) -> tuple[float, ...]:
        """The delays of deadline ``kind`` (one per step)."""
        steps: tuple[float, ...] = getattr(self, kind)
        return steps


@dataclass(frozen=True, slots=True)
class Dimension:
    """A persona dimension: its states (``prefix:*`` patterns allowed) and initial state."""

    name: str
    initial: str
    states: tuple[str, ...]

    def accepts(self, state: str) -> bool:
        """True when ``state`` is declared, literally or by a ``prefix:*`` pattern."""
        return any(_matches(pattern, state) for pattern in self.states)


def _matches(pattern: str, state: str | None) -> bool:
    if state is None:
        return False
    if pattern.endswith("*"):
        return state.startswith(pattern[:-1])
    return pattern == state


@dataclass(frozen=True, slots=True)
class Transition:
    """One guarded persona transition; ``sources`` None means from any state."""

    id: str
    version: int
    dimension: str
    sources: tuple[str, ...] | None
    to: str  # may hold {fact} placeholders, e.g. "recent_browser:{event.category}"
    events: frozenset[str] | None  # None: any input
    guard: Condition | None
    priority: int
    file: str
    line: int | None

    def applies_from(self, state: str | None) -> bool:
        """True when the transition may leave ``state``."""
        if self.sources is None:
            return True
        return any(_matches(pattern, state) for pattern in self.sources)

    def target(self, ctx: Ctx) -> str | None:
        """The state to move to (placeholders filled from facts; None if a fact is missing)."""
        names = _placeholders(self.to)
        if not names:
            return self.to
        out = self.to
        for name in names:
            value = GETTERS[name](ctx)
            if value is None or value == "":
                return None
            out = out.replace("{" + name + "}", str(value))
        return out


@lru_cache(maxsize=1024)
def _placeholders(template: str) -> tuple[str, ...]:
    """The ``{fact}`` names in a target template (cached: templates are few)."""
    names: list[str] = []
    rest = template
    while "{" in rest:
        start = rest.index("{")
        end = rest.find("}", start)
        if end < 0:
            break
        names.append(rest[start + 1 : end])
        rest = rest[end + 1 :]
    return tuple(names)


@dataclass(frozen=True, slots=True)
class Experiment:
    """An A/B test: variants (and optional weights) assigned per (experiment, customer)."""

    id: str
    variants: tuple[str, ...]
    weights: tuple[float, ...] | None = None


@dataclass(frozen=True, slots=True)
class TriggerRule:
    """Which deadline or persona entry emits which trigger, and how it is sent."""

    id: str
    version: int
    trigger_type: str
    kind: str  # "deadline" or "transition"
    source: str  # a deadline kind, or a persona state (pattern) entered
    dimension: str  # for transition sources
    priority: int
    marketing: bool
    expires: float
    guard: Condition | None
    experiment: Experiment | None
    holdout: bool
    file: str
    line: int | None


@dataclass(frozen=True, slots=True)
class RuleSet:
    """A validated rule set; build it with :func:`load_rules`."""

    settings: Settings
    deadlines: Deadlines
    dimensions: dict[str, Dimension]
    transitions: tuple[Transition, ...]
    triggers: tuple[TriggerRule, ...]
    files: tuple[str, ...]


def load_rules(path: Path | str | None = None, *, with_default: bool = True) -> RuleSet:
    """The default rules, merged with the override file at ``path`` (if given).

    ``with_default=False`` reads ``path`` alone (as does ``replace: true`` inside it).
    Raises :class:`processors.errors.RuleErrors` listing every problem with file and line.
    """
    from processors.ruleload import build_rules
    from processors.yamlsrc import read_yaml

    layers = []
    if path is not None:
        layers.append(read_yaml(Path(path)))
    if with_default and not (layers and _replaces(layers[0].data)):
        layers.append(read_yaml(DEFAULT_RULES))
    if not layers:
        raise ValueError("load_rules: with_default=False needs a path")
    return build_rules(layers)


def rules_from_text(text: str, file: str = "<rules>", *, with_default: bool = True) -> RuleSet:
    """Like :func:`load_rules` for YAML text (tests, the CLI's stdin)."""
    from processors.ruleload import build_rules
    from processors.yamlsrc import parse_yaml, read_yaml

    layers = [parse_yaml(text, file)]
    if with_default and not _replaces(layers[0].data):
        layers.append(read_yaml(DEFAULT_RULES))
    return build_rules(layers)


def _replaces(data: object) -> bool:
    return isinstance(data, dict) and data.get("replace") is True

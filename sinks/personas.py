"""The engine's persona vocabulary, as templates see it.

Persona names come from the rules file the engine runs (``processors/rules/default.yaml`` or
an override, loaded with :func:`processors.ruleset.load_rules`), and segment names from
:func:`processors.scoring.rfm_segment`, so the sink never guesses them: ``templates check``
flags a template that compares ``persona`` or ``segment`` with a name the engine never emits,
and a unit test checks that the groups below only name real states.

Groups templates use through boolean context flags (see :mod:`sinks.render`):
- ``loyal``: long-standing or high-spending customers (lifecycle ``loyal``, ``high_value``);
- ``newcomer``: first-time browsers who never bought (``new_visitor``, ``browsing``);
- ``lapsing``: customers drifting away or coming back (``at_risk``, ``lapsed``, ``win_back``);
- ``top_segment``: the best RFM segments (``champion``, ``loyal``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import product
from pathlib import Path

LOYAL_PERSONAS = frozenset({"loyal", "high_value"})
"""Lifecycle personas that get the "loyal customer" subjects and blocks."""

NEWCOMER_PERSONAS = frozenset({"new_visitor", "browsing"})
"""Lifecycle personas of first-time browsers (no order yet)."""

LAPSING_PERSONAS = frozenset({"at_risk", "lapsed", "win_back"})
"""Lifecycle personas of customers drifting away (or just won back)."""

TOP_SEGMENTS = frozenset({"champion", "loyal"})
"""RFM segments counted as the best customers (``top_segment`` in templates)."""

INTEREST_PREFIX = "recent_browser:"
"""The interest facet's states are ``recent_browser:<category>`` (or ``none``)."""


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """Every persona and segment name the engine can put on a trigger."""

    lifecycle: tuple[str, ...]
    interest: tuple[str, ...]  # may hold ``prefix:*`` patterns
    journey: tuple[str, ...]
    segments: tuple[str, ...]

    def persona_known(self, name: str) -> bool:
        """True when ``name`` is a lifecycle persona, journey stage or interest state."""
        if name in self.lifecycle or name in self.journey:
            return True
        return any(
            name.startswith(p[:-1]) if p.endswith("*") else name == p for p in self.interest
        )


def rfm_segments() -> tuple[str, ...]:
    """All values :func:`processors.scoring.rfm_segment` returns (scores 0-5 enumerated)."""
    from processors.scoring import rfm_segment

    scores = range(6)
    return tuple(sorted({rfm_segment(r, f, m) for r, f, m in product(scores, scores, scores)}))


@lru_cache(maxsize=4)
def vocabulary(rules_file: Path | None = None) -> Vocabulary:
    """The vocabulary of the shipped rules (merged with ``rules_file`` when given)."""
    from processors.ruleset import load_rules

    dims = load_rules(rules_file).dimensions

    def states(name: str) -> tuple[str, ...]:
        dim = dims.get(name)
        return dim.states if dim is not None else ()

    return Vocabulary(states("lifecycle"), states("interest"), states("journey"), rfm_segments())


def interest_category(interest: str | None) -> str:
    """``recent_browser:shoes`` -> ``shoes``; anything else -> ``""``."""
    if interest and interest.startswith(INTEREST_PREFIX):
        return interest[len(INTEREST_PREFIX):].strip()
    return ""

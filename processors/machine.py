"""The persona state machine: evaluates the rule set's transitions after each input.

Per dimension (lifecycle, interest, journey), the transitions that may leave the current state
for this input type are tried by priority (highest first, then file order); the first whose
guard holds moves the customer. Up to ``settings.max_chain`` moves may chain on one input
(a first order of 1200 goes new_visitor -> first_time_buyer -> high_value). Every move yields
a :class:`schemas.models.PersonaTransition` with the facts its guard read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from processors.facts import GETTERS, Ctx, category_of, fact_values
from processors.ruleset import DIMENSIONS, RuleSet, Transition, _placeholders
from processors.state import Change, CustomerState
from schemas.models import PersonaTransition

FIELDS = {"lifecycle": ("persona", "persona_at"), "interest": ("interest", "interest_at"),
          "journey": ("journey", "journey_at")}
"""Dimension -> (state attribute, entry-time attribute) of CustomerState."""

_CACHE_MAX = 50_000
_DIM_ATTRS = tuple((dim, FIELDS[dim][0]) for dim in DIMENSIONS)


def stable_id(*parts: object) -> str:
    """A deterministic 32-hex-digit id from ``parts`` (blake2b)."""
    text = "\x1f".join(str(p) for p in parts)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


_last_utc: list[tuple[float, datetime]] = [(0.0, datetime.fromtimestamp(0.0, UTC))]


def utc(ts: float) -> datetime:
    """Epoch seconds as an aware UTC datetime (millisecond precision, as the contracts).

    Remembers the last conversion: one input's records share their time."""
    last = _last_utc[0]
    if last[0] == ts:
        return last[1]
    value = datetime.fromtimestamp(round(ts, 3), UTC)
    _last_utc[0] = (ts, value)
    return value


_UNCOMPILED: Any = object()


def _event_target(tr: Transition) -> Callable[[Any], str | None] | None:
    """``tr``'s target as a function of the input event alone (a constant, or a template
    of ``event.category`` filled as :meth:`Machine._target` fills it), or None."""
    names = _placeholders(tr.to)
    if not names:
        const = tr.to
        return lambda _ev: const
    if names != ("event.category",) or tr.to.count("{") != 1:
        return None
    head, _, rest = tr.to.partition("{event.category}")

    def fill(ev: Any) -> str | None:
        value = category_of(ev)
        return None if value is None or value == "" else f"{head}{value}{rest}"

    return fill


class Machine:
    """Compiled persona machine for one rule set."""

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        self._by_dim: dict[str, list[Transition]] = {d: [] for d in DIMENSIONS}
        order = sorted(enumerate(rules.transitions), key=lambda it: (-it[1].priority, it[0]))
        for _, tr in order:
            self._by_dim[tr.dimension].append(tr)
        self._cache: dict[tuple[str, str | None, str], tuple[Transition, ...]] = {}
        self._max_chain = rules.settings.max_chain
        self._dims_for: dict[str, tuple[tuple[str, str], ...]] = {}
        self._accepted: dict[tuple[str, str], bool] = {}
        self._targets: dict[str, Callable[[Ctx], str | None]] = {}
        self._ev_targets: dict[str, Callable[[Any], str | None] | None] = {}

    def initialise(self, st: CustomerState, now: float) -> None:
        """Put a state without personas into each dimension's initial state (no record)."""
        for dim in DIMENSIONS:
            attr, at_attr = FIELDS[dim]
            if not getattr(st, attr):
                setattr(st, attr, self.rules.dimensions[dim].initial)
                setattr(st, at_attr, int(now))

    def candidates(self, dim: str, state: str | None, etype: str) -> tuple[Transition, ...]:
        """Transitions of ``dim`` that may leave ``state`` on an input of type ``etype``."""
        key = (dim, state, etype)
        found = self._cache.get(key)
        if found is None:
            found = tuple(
                tr for tr in self._by_dim[dim]
                if (tr.events is None or etype in tr.events) and tr.applies_from(state)
            )
            if len(self._cache) < _CACHE_MAX:
                self._cache[key] = found
        return found

    def evaluate(self, st: CustomerState, ctx: Ctx, customer_id: str,
                 cause: str | None) -> list[PersonaTransition]:
        """Apply every transition whose guard holds; return the records (may be empty)."""
        return self._run(st, ctx.etype, ctx, None, customer_id, cause)[0]

    def evaluate_input(self, st: CustomerState, ev: Any, etype: str, now: float,
                       opts: tuple[float, float, float], customer_id: str,
                       cause: str | None) -> tuple[list[PersonaTransition], Ctx | None]:
        """Like :meth:`evaluate` for an input event; the guard context (``Ctx(st, ev, etype,
        now, None, *opts)``) is only built when a transition may leave a current state, and
        returned (None when none could) for the trigger rules."""
        return self._run(st, etype, None, (ev, now, opts), customer_id, cause)

    def _dims(self, etype: str) -> tuple[tuple[str, str], ...]:
        """(dimension, state attribute) pairs with a transition listening to ``etype``."""
        dims = self._dims_for.get(etype)
        if dims is None:
            dims = self._dims_for[etype] = tuple(
                (dim, attr) for dim, attr in _DIM_ATTRS
                if any(t.events is None or etype in t.events for t in self._by_dim[dim])
            )
        return dims

    def _run(self, st: CustomerState, etype: str, ctx: Ctx | None,
             lazy: tuple[Any, float, tuple[float, float, float]] | None, customer_id: str,
             cause: str | None) -> tuple[list[PersonaTransition], Ctx | None]:
        out: list[PersonaTransition] = []
        cache = self._cache
        dims = self._dims_for.get(etype)
        for dim, attr in self._dims(etype) if dims is None else dims:
            for _ in range(self._max_chain):
                current = getattr(st, attr)
                cands = cache.get((dim, current, etype))
                if cands is None:
                    cands = self.candidates(dim, current, etype)
                if not cands:
                    break
                if ctx is None and lazy is not None:
                    if len(cands) == 1 and self._stays(cands[0], lazy[0], current):
                        break  # as _step() would decide, without building a context
                    ctx = Ctx(st, lazy[0], etype, lazy[1], None, *lazy[2])
                assert ctx is not None
                moved = self._step(st, ctx, dim, current, cands, customer_id, cause)
                if moved is None:
                    break
                out.append(moved)
        return out, ctx

    def _step(self, st: CustomerState, ctx: Ctx, dim: str, current: str | None,
              cands: tuple[Transition, ...], customer_id: str,
              cause: str | None) -> PersonaTransition | None:
        targets = self._targets
        for tr in cands:
            # the target first (cheap, no side effects): staying put needs no guard
            target = targets[tr.id](ctx) if tr.id in targets else self._target(tr, ctx)
            if target is None or target == current:
                continue
            if tr.guard is not None and not tr.guard.test(ctx):
                continue
            if not self._accepts(dim, target):
                continue
            facts = fact_values(tr.guard.facts, ctx) if tr.guard else {}
            facts.setdefault("event.type", ctx.etype)
            moved = self.move(st, dim, target, tr.id, tr.version, facts, customer_id,
                              ctx.now, cause)
            ctx.forget()  # persona facts changed
            return moved
        return None

    def _stays(self, tr: Transition, ev: Any, current: str | None) -> bool:
        """Whether ``tr`` certainly leaves ``current`` unchanged on input ``ev`` because its
        target (a constant or an ``{event.category}`` template) is empty or ``current``.
        False when the target needs more than the event (then the guard context decides)."""
        fill = self._ev_targets.get(tr.id, _UNCOMPILED)
        if fill is _UNCOMPILED:
            fill = self._ev_targets[tr.id] = _event_target(tr)
        if fill is None:
            return False
        target = fill(ev)
        return target is None or target == current

    def _target(self, tr: Transition, ctx: Ctx) -> str | None:
        """Compile ``tr``'s target once (a constant, or a one-fact template) and apply it."""
        names = _placeholders(tr.to)
        if not names:
            const = tr.to
            self._targets[tr.id] = lambda _ctx: const
        elif len(names) == 1 and tr.to.count("{") == 1:
            head, _, rest = tr.to.partition("{" + names[0] + "}")
            getter = GETTERS[names[0]]

            def fill(c: Ctx) -> str | None:
                value = getter(c)
                return None if value is None or value == "" else f"{head}{value}{rest}"

            self._targets[tr.id] = fill
        else:
            self._targets[tr.id] = tr.target
        return self._targets[tr.id](ctx)

    def _accepts(self, dim: str, target: str) -> bool:
        """Whether ``dim`` declares ``target`` (remembered: targets repeat)."""
        key = (dim, target)
        known = self._accepted.get(key)
        if known is None:
            known = self.rules.dimensions[dim].accepts(target)
            if len(self._accepted) < _CACHE_MAX:
                self._accepted[key] = known
        return known

    def move(self, st: CustomerState, dim: str, target: str, rule_id: str, version: int,
             facts: dict[str, str], customer_id: str, now: float,
             cause: str | None) -> PersonaTransition:
        """Move ``st`` to ``target`` in ``dim`` and return the transition record."""
        attr, at_attr = FIELDS[dim]
        current = getattr(st, attr)
        setattr(st, attr, target)
        setattr(st, at_attr, int(now))
        st.changes.append(Change(int(now), dim, current, target, rule_id))
        del st.changes[: -self.rules.settings.limits.changes]
        # validated construction: pydantic-core validates faster than model_construct builds
        return PersonaTransition(
            transition_id=stable_id(customer_id, rule_id, current, target, cause or now),
            customer_id=customer_id,
            dimension=dim,  # type: ignore[arg-type]
            from_persona=current,
            to_persona=target,
            rule_id=rule_id,
            rule_version=version,
            facts=facts,
            cause_event_id=cause,
            at=utc(now),
        )

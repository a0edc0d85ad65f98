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

from processors.facts import GETTERS, Ctx, fact_values
from processors.records import Layout
from processors.ruleset import DIMENSIONS, RuleSet, Transition, _placeholders
from processors.state import Change, CustomerState
from schemas.models import PersonaTransition

_TRANSITION = Layout(PersonaTransition, (
    "transition_id", "customer_id", "dimension", "from_persona", "to_persona", "rule_id",
    "rule_version", "facts", "cause_event_id", "at"))
"""PersonaTransition without re-validation (our own values; ids length-checked), from
positional values (see :class:`processors.records.Layout`)."""

FIELDS = {"lifecycle": ("persona", "persona_at"), "interest": ("interest", "interest_at"),
          "journey": ("journey", "journey_at")}
"""Dimension -> (state attribute, entry-time attribute) of CustomerState."""

_CACHE_MAX = 50_000
_new_tuple = tuple.__new__
"""NamedTuples built without their Python-level ``__new__`` frame (the same tuple)."""
_DIM_ATTRS = tuple((dim, FIELDS[dim][0]) for dim in DIMENSIONS)


_blake2b = hashlib.blake2b
_fromtimestamp = datetime.fromtimestamp


def stable_id(*parts: object) -> str:
    """A deterministic 32-hex-digit id from ``parts`` (blake2b)."""
    text = "\x1f".join([str(p) for p in parts])
    return _blake2b(text.encode(), digest_size=16).hexdigest()


_last_utc: list[tuple[float, datetime]] = [(0.0, datetime.fromtimestamp(0.0, UTC))]


def utc(ts: float) -> datetime:
    """Epoch seconds as an aware UTC datetime (millisecond precision, as the contracts).

    Remembers the last conversion: one input's records share their time."""
    last = _last_utc[0]
    if last[0] == ts:
        return last[1]
    value = _fromtimestamp(ts if _whole_ms(ts) else round(ts, 3), UTC)
    _last_utc[0] = (ts, value)
    return value




def _whole_ms(ts: float) -> bool:
    """Whether ``ts`` is the float nearest a whole number of milliseconds (event and due
    times are), so that ``round(ts, 3) == ts`` and the decimal rounding can be skipped: the
    float's exact value is then within half a unit in the last place (< 0.0005 s below
    1e11 s) of that number of milliseconds, which ``round(ts, 3)`` returns as that float."""
    if not 0.0 <= ts < 1e11:
        return False
    ms = int(ts * 1000.0 + 0.5)  # a candidate, checked below (exact below 2**53)
    return ms / 1000 == ts


def _event_target(tr: Transition) -> Callable[[Any], str | None] | None:
    """``tr``'s target as a function of the input event alone (a constant, or a template
    of ``event.category`` filled as :meth:`Transition.target` fills it), or None."""
    names = _placeholders(tr.to)
    if not names:
        const = tr.to
        return lambda _ev: const
    if names != ("event.category",) or tr.to.count("{") != 1:
        return None
    head, _, rest = tr.to.partition("{event.category}")
    filled: dict[str, str] = {}  # category -> target: the same string object every time

    def fill(ev: Any) -> str | None:
        # category_of(ev), inlined: this runs on every product view
        product = getattr(ev, "product", None)
        value = product.category if product is not None else getattr(ev, "category", None)
        if not value:
            return None
        target = filled.get(value)
        if target is None:
            target = f"{head}{value}{rest}"
            if len(filled) < _CACHE_MAX:
                filled[value] = target
        return target

    return fill


Entry = tuple[tuple[Transition, ...], Callable[[Any], str | None] | None]
"""The transitions that may leave a state on an input type, by priority, and (when there is
exactly one) its target as a function of the input event, if it is one (see
:func:`_event_target`)."""
Plan = tuple[tuple[str, str, dict[str | None, Entry]], ...]
"""Per input type: (dimension, state attribute, current state -> :data:`Entry`) for each
dimension with a transition listening to that type (built on first use)."""
_NO_OPTS: tuple[float, ...] = ()


def _ctx_target(tr: Transition) -> Callable[[Ctx], str | None]:
    """``tr``'s target as a function of the guard context: a constant, a one-fact template
    (filled as :meth:`Transition.target` fills it), or :meth:`Transition.target` itself."""
    names = _placeholders(tr.to)
    if not names:
        const = tr.to
        return lambda _ctx: const
    if len(names) == 1 and tr.to.count("{") == 1:
        head, _, rest = tr.to.partition("{" + names[0] + "}")
        getter = GETTERS[names[0]]

        def fill(c: Ctx) -> str | None:
            value = getter(c)
            return None if value is None or value == "" else f"{head}{value}{rest}"

        return fill
    return tr.target


class Machine:
    """Compiled persona machine for one rule set.

    Per input type the machine keeps a plan (see :data:`Plan`): the dimensions that listen to
    that type, each with its candidate transitions by current state, so an input costs one
    dict lookup per listening dimension and nothing for the others. Targets are compiled once
    per transition; a target that depends on the input event alone (a constant, or an
    ``{event.category}`` template) is filled before any guard context exists.
    """

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        self._by_dim: dict[str, list[Transition]] = {d: [] for d in DIMENSIONS}
        order = sorted(enumerate(rules.transitions), key=lambda it: (-it[1].priority, it[0]))
        for _, tr in order:
            self._by_dim[tr.dimension].append(tr)
        self._max_chain = rules.settings.max_chain
        self._plans: dict[str, Plan] = {}
        self._planned = 0  # (dimension, state) entries held by the plans
        self._accepted: dict[tuple[str, str], bool] = {}
        self._targets: dict[str, Callable[[Ctx], str | None]] = {
            tr.id: _ctx_target(tr) for tr in rules.transitions}
        self._ev_targets: dict[str, Callable[[Any], str | None] | None] = {
            tr.id: _event_target(tr) for tr in rules.transitions}

    def new_state(self, customer_id: str, now: float) -> CustomerState:
        """A fresh state in every dimension's initial state at ``now`` (as
        :meth:`initialise` on an empty state, in one construction)."""
        at = int(now)
        dims = self.rules.dimensions
        return CustomerState(
            customer_id, persona=dims["lifecycle"].initial, persona_at=at,
            interest=dims["interest"].initial, interest_at=at,
            journey=dims["journey"].initial, journey_at=at)

    def initialise(self, st: CustomerState, now: float) -> None:
        """Put a state without personas into each dimension's initial state (no record)."""
        for dim in DIMENSIONS:
            attr, at_attr = FIELDS[dim]
            if not getattr(st, attr):
                setattr(st, attr, self.rules.dimensions[dim].initial)
                setattr(st, at_attr, int(now))

    def candidates(self, dim: str, state: str | None, etype: str) -> tuple[Transition, ...]:
        """Transitions of ``dim`` that may leave ``state`` on an input of type ``etype`` (the
        plans remember them: see :meth:`_entry`)."""
        return tuple(
            tr for tr in self._by_dim[dim]
            if (tr.events is None or etype in tr.events) and tr.applies_from(state)
        )

    def evaluate(self, st: CustomerState, ctx: Ctx, customer_id: str,
                 cause: str | None) -> list[PersonaTransition]:
        """Apply every transition whose guard holds; return the records (may be empty)."""
        return self.evaluate_input(st, ctx.ev, ctx.etype, ctx.now, _NO_OPTS, customer_id,
                                   cause, ctx)[0]

    def plan(self, etype: str) -> Plan:
        """The plan of input type ``etype`` (see :data:`Plan`)."""
        plan = self._plans.get(etype)
        if plan is None:
            plan = self._plans[etype] = tuple(
                (dim, attr, {}) for dim, attr in _DIM_ATTRS
                if any(t.events is None or etype in t.events for t in self._by_dim[dim])
            )
        return plan

    def _entry(self, by_state: dict[str | None, Entry], dim: str, state: str | None,
               etype: str) -> Entry:
        """The plan entry of ``state`` (see :data:`Entry`), remembered in ``by_state``."""
        cands = self.candidates(dim, state, etype)
        fill = self._ev_targets[cands[0].id] if len(cands) == 1 else None
        entry = (cands, fill)
        if self._planned < _CACHE_MAX:
            by_state[state] = entry
            self._planned += 1
        return entry

    def evaluate_input(self, st: CustomerState, ev: Any, etype: str, now: float,
                       opts: tuple[float, ...], customer_id: str, cause: str | None,
                       ctx: Ctx | None = None) -> tuple[list[PersonaTransition], Ctx | None]:
        """Like :meth:`evaluate` for an input event: per listening dimension, up to
        ``max_chain`` steps (see :meth:`_step`). Without a ``ctx``, the guard context
        (``Ctx(st, ev, etype, now, None, *opts)``) is only built when a guard or a
        context-dependent target must be read, and returned (None when nothing could move)
        for the trigger rules. ``opts``: empty (Ctx's defaults) or the three Ctx options
        (``recent``, ``eng_half``, ``aff_half``), as ``Engine._ctx_opts``."""
        out: list[PersonaTransition] = []
        plan = self._plans.get(etype)
        for dim, attr, by_state in self.plan(etype) if plan is None else plan:
            steps = self._max_chain
            while steps:
                current = getattr(st, attr)
                cands, fill = by_state.get(current) or self._entry(by_state, dim, current, etype)
                if not cands:
                    break
                known = None
                if fill is not None:  # one candidate, its target from the input alone
                    known = fill(ev)
                    if known is None or known == current:
                        break  # "no move", as _step() would decide, without a context
                if ctx is None:
                    # opts spelled out (a star call is generic, a direct one native)
                    ctx = Ctx(st, ev, etype, now, None, opts[0], opts[1], opts[2]) if opts else Ctx(
                        st, ev, etype, now)
                if known is not None:  # the one candidate, as _step() would try it
                    tr = cands[0]
                    if tr.guard is not None and not tr.guard.test(ctx):
                        break
                    moved = self._take(st, ctx, dim, tr, known, customer_id, cause)
                else:
                    moved = self._step(st, ctx, dim, current, cands, customer_id, cause)
                if moved is None:
                    break
                out.append(moved)
                steps -= 1
        return out, ctx

    def _step(self, st: CustomerState, ctx: Ctx, dim: str, current: str | None,
              cands: tuple[Transition, ...], customer_id: str,
              cause: str | None) -> PersonaTransition | None:
        """The first candidate whose target differs from ``current`` and whose guard holds
        moves ``st`` (see :meth:`_take`)."""
        targets = self._targets
        for tr in cands:
            # the target first (cheap, no side effects): staying put needs no guard
            target = targets[tr.id](ctx)
            if target is None or target == current:
                continue
            if tr.guard is not None and not tr.guard.test(ctx):
                continue
            moved = self._take(st, ctx, dim, tr, target, customer_id, cause)
            if moved is not None:
                return moved
        return None

    def _take(self, st: CustomerState, ctx: Ctx, dim: str, tr: Transition, target: str,
              customer_id: str, cause: str | None) -> PersonaTransition | None:
        """Move ``st`` by ``tr`` (its guard holds) to ``target`` and return the record with
        the facts the guard read; None when ``dim`` does not declare ``target``."""
        if not self._accepts(dim, target):
            return None
        facts = fact_values(tr.guard.facts, ctx) if tr.guard else {}
        facts.setdefault("event.type", ctx.etype)
        moved = self.move(st, dim, target, tr.id, tr.version, facts, customer_id, ctx.now, cause)
        ctx.forget()  # persona facts changed
        return moved

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
        st.changes.append(_new_tuple(Change, (int(now), dim, current, target, rule_id)))
        del st.changes[: -self.rules.settings.limits.changes]
        transition: PersonaTransition = _TRANSITION.build((
            stable_id(customer_id, rule_id, current, target, cause or now), customer_id, dim,
            current, target, rule_id, version, facts, cause, utc(now)))
        return transition

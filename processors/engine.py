"""The processors' public contract: what the stream workers (streams/) and replay call.

Everything here is pure: a function of (state, input, time). ``now`` is epoch seconds (float,
UTC): wall clock in production, event time in replay and tests. No Kafka, Redis, network or
clock reads happen in processors/.

CONTRACT (owned by processors/, consumed by streams/ and replay):

    engine = Engine(rules)                        # rules: RuleSet, see load_rules()
    out = engine.apply(state, customer_id, event, ref, now)
        state:  CustomerState | None   (None = new customer)
        event:  schemas.models.InputEvent (pydantic)
        ref:    InputRef | None        (source topic/partition/offset; None = no watermark)
        -> Outcome(state, transitions, triggers, applied)
           applied is False and nothing is emitted when ref <= the watermark already applied.
           Watermarks are kept per topic partition and per source key: records keyed by
           another id (anonymous events forwarded to the customer) are checked against
           "topic:partition~anonymous_id", since their offsets interleave with the customer's.
    out = engine.tick(state, customer_id, now, ref)      # fire what is due by `now`
    out = engine.merge(state, anonymous_state, customer_id, now, cause_event_id)
        identity stitching: the anonymous history (views, carts, interests) merged in.
    engine.next_due(state) -> float | None               # earliest pending deadline
    engine.due(state, now) -> list[Deadline]             # what tick() would fire now
    encode_state(state) -> bytes ; decode_state(data) -> CustomerState   (compact, <= 1 KB median)

TIME SEMANTICS (why ticks decide only WHEN outputs appear, never WHAT they are): the outcome is
the one obtained if every pending entry (deadline step or deferred trigger) had fired exactly
at its due time.

- ``apply`` decides at the event's own time ``t = event.occurred_at``: it first fires every
  entry due at or before ``t`` (in due order), then reduces the event and evaluates
  transitions at ``t``, then fires entries the event itself made due at ``t``. Its ``now``
  argument (the caller's clock) is only a lower bound of the clock and decides nothing:
  entries due in ``(t, now]`` stay pending for ``tick``.
- ``tick(now)`` fires the entries due at or before ``now``, each decided at its own due time:
  budget, quiet hours, expiry, ``created_at``, transition times and ids all use that time. A
  late, early, duplicated or missing tick therefore changes nothing but when outputs appear.
- Entries sharing a due time are one group, arbitrated together. Firings caused by time carry
  no cause event id (whichever call fires them, they are the same records).
- Prerequisite, for the caller: a customer's events reach the engine in event-time order, and
  a tick with ``now`` >= an event's time is not delivered before that event (late data that
  arrives after a tick already fired a later deadline cannot un-fire it).

Extensions: Outcome also carries ``skipped`` ((trigger_type, reason) pairs: deferred, expired,
no_consent, suppressed:*, no_recipient, capped, erased - for metrics, never PII) and
``next_due``. ``apply`` updates the state object it is given in place and returns it (decode
a fresh copy, or use copy_state, to keep the old one).

Trigger ids are deterministic (customer, rule, episode, step); the same inputs give the same
outputs whatever the tick timing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import floor
from typing import Any

from processors.deadlines import due as due_entries
from processors.deadlines import fire
from processors.errors import RuleError, UnsupportedEventError
from processors.facts import Ctx
from processors.machine import Machine
from processors.merge import merge_states
from processors.reducers import REDUCERS
from processors.ruleset import RuleSet, load_rules
from processors.state import CustomerState, Deadline, copy_state
from processors.statecodec import decode_state, encode_state
from processors.triggers import Candidate, TriggerRules
from schemas.models import PersonaTransition, Trigger

_new = tuple.__new__
"""NamedTuples built without their Python-level ``__new__`` frame (the same tuple)."""
MAX_GROUPS = 10_000
"""Due-time groups one call fires at most (only a rule bug could need more)."""
MAX_GROUP_SIZE = 256
"""Entries one due-time group fires at most (same guard)."""

__all__ = [
    "Engine",
    "InputRef",
    "Outcome",
    "RuleSet",
    "copy_state",
    "decode_state",
    "encode_state",
    "load_rules",
]


@dataclass(frozen=True, slots=True)
class InputRef:
    """Where an input came from; the state keeps the highest offset applied per partition."""

    topic: str
    partition: int
    offset: int


@dataclass(slots=True, init=False)
class Outcome:
    """The result of one apply/tick/merge: the new state and what to publish."""

    state: CustomerState
    transitions: Sequence[PersonaTransition] = ()
    triggers: Sequence[Trigger] = ()
    applied: bool = True
    skipped: Sequence[tuple[str, str]] = ()
    # empty tuples until something is emitted (most inputs emit nothing; three empty lists
    # per input cost more than the rest of the outcome): add with :meth:`add`

    def __init__(self, state: CustomerState, transitions: Sequence[PersonaTransition] = (),
                 triggers: Sequence[Trigger] = (), applied: bool = True,
                 skipped: Sequence[tuple[str, str]] = ()) -> None:
        # the dataclass __init__, written out: compiled, it is native code (the generated one
        # is interpreted Python, ~1.9 k instructions per outcome, one outcome per input)
        self.state = state
        self.transitions = transitions
        self.triggers = triggers
        self.applied = applied
        self.skipped = skipped

    def add(self, transitions: Sequence[PersonaTransition] = (),
            triggers: Sequence[Trigger] = (), skipped: Sequence[tuple[str, str]] = ()) -> None:
        """Append records to the outcome."""
        if transitions:
            self.transitions = [*self.transitions, *transitions]
        if triggers:
            self.triggers = [*self.triggers, *triggers]
        if skipped:
            self.skipped = [*self.skipped, *skipped]

    @property
    def next_due(self) -> float | None:
        """The state's earliest pending deadline (for the ticker's index)."""
        return self.state.next_due


def watermark_key(ref: InputRef, source: str | None, customer_id: str) -> str:
    """The watermark an input is checked against: ``topic:partition`` for the customer's own
    records, ``topic:partition~source`` for records keyed by another id (an anonymous id
    forwarded after identification), whose offsets interleave with the customer's own."""
    if not source or source == customer_id:
        return f"{ref.topic}:{ref.partition}"
    return f"{ref.topic}:{ref.partition}~{source}"


class Engine:
    """The domain core for one rule set; see the module docstring for the contract."""

    def __init__(self, rules: RuleSet | None = None) -> None:
        self.rules = rules if rules is not None else load_rules()
        s = self.rules.settings
        if s.limits.sent < s.budget.per_week:
            raise RuleError("settings.limits.sent must be >= settings.budget.per_week",
                            file=self.rules.files[0], field="settings.limits.sent")
        self.machine = Machine(self.rules)
        self.trigger_rules = TriggerRules(self.rules)
        self._ctx_opts = (s.recent_window, s.engagement_half_life, s.affinity_half_life)
        self._keys: dict[tuple[str, int], str] = {}

    def _key(self, ref: InputRef) -> str:
        """The ``topic:partition`` watermark key of ``ref``, kept so lookups reuse it."""
        key = f"{ref.topic}:{ref.partition}"
        if len(self._keys) < 4096:
            self._keys[(ref.topic, ref.partition)] = key
        return key

    def new_state(self, customer_id: str, now: float = 0.0) -> CustomerState:
        """A fresh state in every dimension's initial persona."""
        return self.machine.new_state(customer_id, now)

    def ctx(self, st: CustomerState, ev: Any, etype: str, now: float,
            dl: Deadline | None = None) -> Ctx:
        """An evaluation context for guards."""
        o = self._ctx_opts  # not *o: a star call is a generic call, the direct one native
        return Ctx(st, ev, etype, now, dl, o[0], o[1], o[2])

    # ------------------------------------------------------------------ contract
    def apply(self, state: CustomerState | None, customer_id: str, event: Any,
              ref: InputRef | None, now: float) -> Outcome:
        """Apply one input event at its own time ``t = event.occurred_ts`` (``occurred_at`` in
        epoch seconds).

        Order: every pending entry due at or before ``t`` fires first (each at its due time,
        see :meth:`_run_due`), then the event is reduced and the machine evaluates at ``t``,
        then entries the event itself made due at ``t`` (a zero-delay welcome) fire. ``now``
        (the caller's clock) decides nothing: it is only a lower bound of the clock, and
        entries due in ``(t, now]`` are left for :meth:`tick`.
        """
        etype: str = getattr(event, "type", "")
        reducer = REDUCERS.get(etype)
        if reducer is None:
            raise UnsupportedEventError(f"not an input event type: {etype!r}")
        t: float = event.occurred_ts
        st = state if state is not None else self.new_state(customer_id, t)
        key = ""
        if ref is not None:
            source = event.customer_id or event.anonymous_id
            if not source or source == customer_id:  # as watermark_key(), strings reused
                key = self._keys.get((ref.topic, ref.partition)) or self._key(ref)
            else:
                key = f"{ref.topic}:{ref.partition}~{source}"
            if ref.offset <= st.watermarks.get(key, -1):
                return Outcome(st, applied=False)
        out = Outcome(st)
        whole = floor(t)  # due times are ints: "due <= t" as an int compare (no int-float)
        deadlines = st.deadlines
        if deadlines and deadlines[0][0] <= whole:  # [0][0]: the earliest Deadline.due
            self._run_due(out, customer_id, t)
        reducer(st, event, int(t), self.rules)
        if not st.persona:
            self.machine.initialise(st, t)
        cause = event.event_id
        moves, ctx = self.machine.evaluate_input(st, event, etype, t, self._ctx_opts,
                                                 customer_id, cause)
        if moves and ctx is not None:
            out.add(moves)
            cands = self.trigger_rules.for_transitions(moves, ctx)
            if cands:
                self._arbitrate(out, customer_id, t, cands, cause)
        deadlines = st.deadlines  # reducers and firings may rebind the list
        if deadlines and deadlines[0][0] <= whole:
            self._run_due(out, customer_id, t)
        if ref is not None:
            st.watermarks[key] = ref.offset
        return out

    def tick(self, state: CustomerState, customer_id: str, now: float,
             ref: InputRef | None = None) -> Outcome:
        """Fire the entries due at or before ``now``, each at its own due time (a no-op when
        nothing is due): ``now`` only bounds what fires, never what a firing decides."""
        key = f"{ref.topic}:{ref.partition}" if ref is not None else ""
        if ref is not None and ref.offset <= state.watermarks.get(key, -1):
            return Outcome(state, applied=False)
        out = Outcome(state)
        if state.deadlines and state.deadlines[0].due <= now:
            self._run_due(out, customer_id, now)
        if ref is not None:
            state.watermarks[key] = ref.offset
        return out

    def merge(self, state: CustomerState | None, anonymous_state: CustomerState | None,
              customer_id: str, now: float, cause_event_id: str | None = None) -> Outcome:
        """Identity stitching at ``now``: both sides first fire what was due by then (each at
        its due time, the anonymous side under its own id), then the anonymous history is
        folded into the customer's state and the machine re-evaluates at ``now``."""
        st = state if state is not None else self.new_state(customer_id, now)
        if anonymous_state is None:
            return Outcome(st, applied=False)
        out = Outcome(st)
        self._run_due(out, customer_id, now)
        anon = Outcome(anonymous_state)
        self._run_due(anon, anonymous_state.customer_id, now)
        out.add(anon.transitions, anon.triggers, anon.skipped)
        moves = merge_states(st, anonymous_state, now, self.rules)
        merged: list[PersonaTransition] = []
        for dim, target, facts in moves:
            merged.append(self.machine.move(
                st, dim, target, "identity_merge", 1, facts, customer_id, now, cause_event_id))
        ctx = self.ctx(st, None, "merge", now)
        merged.extend(self.machine.evaluate(st, ctx, customer_id, cause_event_id))
        out.add(merged)
        cands = self.trigger_rules.for_transitions(merged, ctx)
        if cands:
            self._arbitrate(out, customer_id, now, cands, cause_event_id)
        return out

    def next_due(self, state: CustomerState) -> float | None:
        """The earliest pending deadline of ``state``, or None."""
        return state.next_due

    def due(self, state: CustomerState, now: float) -> list[Deadline]:
        """The deadlines :meth:`tick` would fire at ``now`` (the state is not changed)."""
        return due_entries(state, now)

    # ------------------------------------------------------------------ internals
    def _run_due(self, out: Outcome, customer_id: str, until: float) -> None:
        """Fire, in due order, every entry due at or before ``until``: entries sharing a due
        time form one group decided at that time (see :meth:`_fire_group`). Firings only
        schedule later entries (or more of the same due time), so this ends; the group cap
        only guards against a rule bug and keeps the rest for the next call."""
        deadlines = out.state.deadlines
        for _ in range(MAX_GROUPS):
            if not deadlines or deadlines[0].due > until:
                return
            self._fire_group(out, customer_id, deadlines[0].due)
            deadlines = out.state.deadlines  # reducers and firings may rebind the list

    def _fire_group(self, out: Outcome, customer_id: str, due: int) -> None:
        """Fire every entry due exactly at ``due`` as a tick at that time would: plain
        deadlines update the state and may move personas, deferred triggers come back; then
        all their candidates are arbitrated together at ``due``. Nothing here depends on when
        or by which call the group is fired (no cause event, no caller clock)."""
        st = out.state
        at = float(due)
        cands: list[Candidate] = []
        for _ in range(MAX_GROUP_SIZE):
            if not st.deadlines or st.deadlines[0].due != due:
                break
            d = st.deadlines.pop(0)
            if d.rule:
                cand = self.trigger_rules.for_deferred(st, d)
                if cand is not None:
                    cands.append(cand)
                continue
            fired = fire(st, d, at, self.rules)
            if fired is None:
                continue
            # d._replace(step=fired.step), without its interpreted keyword call
            fired_dl = _new(Deadline, (d.due, d.source, d.episode, fired.step, d.rule, d.origin))
            o = self._ctx_opts
            ctx = Ctx(st, None, "tick", at, fired_dl, o[0], o[1], o[2])
            moves = self.machine.evaluate(st, ctx, customer_id, None)
            out.add(moves)
            cands.extend(self.trigger_rules.for_deadline(fired, ctx))
            if moves:
                cands.extend(self.trigger_rules.for_transitions(moves, ctx))
        if cands:
            self._arbitrate(out, customer_id, at, cands, None)

    def _arbitrate(self, out: Outcome, customer_id: str, at: float, cands: list[Candidate],
                   cause: str | None) -> None:
        """Decide ``cands`` at time ``at`` and add the result to ``out``."""
        decision = self.trigger_rules.arbitrate(out.state, cands, customer_id, at, cause)
        out.add((), decision.triggers, decision.skipped)

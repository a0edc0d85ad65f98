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
    out = engine.tick(state, customer_id, now, ref)      # fire deadlines due at `now`
    out = engine.merge(state, anonymous_state, customer_id, now, cause_event_id)
        identity stitching: the anonymous history (views, carts, interests) merged in.
    engine.next_due(state) -> float | None               # earliest pending deadline
    engine.due(state, now) -> list[Deadline]             # what tick() would fire now
    encode_state(state) -> bytes ; decode_state(data) -> CustomerState   (compact, <= 1 KB median)

Extensions: Outcome also carries ``skipped`` ((trigger_type, reason) pairs: deferred, expired,
no_consent, suppressed:*, no_recipient, capped, erased - for metrics, never PII) and
``next_due``. ``apply`` updates the state object it is given in place and returns it (decode
a fresh copy, or use copy_state, to keep the old one). It also fires whatever is due at
``now``, so a late event's overdue deadlines fire without waiting for a tick.

Trigger ids are deterministic (customer, rule, episode, step); the same inputs at the same
times give the same outputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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


@dataclass(slots=True)
class Outcome:
    """The result of one apply/tick/merge: the new state and what to publish."""

    state: CustomerState
    transitions: list[PersonaTransition] = field(default_factory=list)
    triggers: list[Trigger] = field(default_factory=list)
    applied: bool = True
    skipped: list[tuple[str, str]] = field(default_factory=list)

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

    def new_state(self, customer_id: str, now: float = 0.0) -> CustomerState:
        """A fresh state in every dimension's initial persona."""
        st = CustomerState(customer_id)
        self.machine.initialise(st, now)
        return st

    def ctx(self, st: CustomerState, ev: Any, etype: str, now: float,
            dl: Deadline | None = None) -> Ctx:
        """An evaluation context for guards."""
        return Ctx(st, ev, etype, now, dl, *self._ctx_opts)

    # ------------------------------------------------------------------ contract
    def apply(self, state: CustomerState | None, customer_id: str, event: Any,
              ref: InputRef | None, now: float) -> Outcome:
        """Apply one input event at decision time ``now`` (see the module docstring)."""
        st = state if state is not None else self.new_state(customer_id, now)
        key = watermark_key(ref, event.customer_id or event.anonymous_id, customer_id) \
            if ref is not None else ""
        if ref is not None and ref.offset <= st.watermarks.get(key, -1):
            return Outcome(st, applied=False)
        etype: str = getattr(event, "type", "")
        reducer = REDUCERS.get(etype)
        if reducer is None:
            raise UnsupportedEventError(f"not an input event type: {etype!r}")
        reducer(st, event, int(event.occurred_at.timestamp()), self.rules)
        if not st.persona:
            self.machine.initialise(st, now)
        ctx = self.ctx(st, event, etype, now)
        out = Outcome(st, self.machine.evaluate(st, ctx, customer_id, event.event_id))
        if out.transitions:
            cands = self.trigger_rules.for_transitions(out.transitions, ctx)
            self._settle(out, customer_id, now, cands, event.event_id)
        elif st.deadlines and st.deadlines[0].due <= now:
            self._settle(out, customer_id, now, [], event.event_id)
        if ref is not None:
            st.watermarks[key] = ref.offset
        return out

    def tick(self, state: CustomerState, customer_id: str, now: float,
             ref: InputRef | None = None) -> Outcome:
        """Fire the deadlines due at ``now`` (a no-op when nothing is due)."""
        key = f"{ref.topic}:{ref.partition}" if ref is not None else ""
        if ref is not None and ref.offset <= state.watermarks.get(key, -1):
            return Outcome(state, applied=False)
        out = Outcome(state)
        self._settle(out, customer_id, now, [], None)
        if ref is not None:
            state.watermarks[key] = ref.offset
        return out

    def merge(self, state: CustomerState | None, anonymous_state: CustomerState | None,
              customer_id: str, now: float, cause_event_id: str | None = None) -> Outcome:
        """Identity stitching: fold the anonymous history into the customer's state."""
        st = state if state is not None else self.new_state(customer_id, now)
        if anonymous_state is None:
            return Outcome(st, applied=False)
        moves = merge_states(st, anonymous_state, now, self.rules)
        out = Outcome(st)
        for dim, target, facts in moves:
            out.transitions.append(self.machine.move(
                st, dim, target, "identity_merge", 1, facts, customer_id, now, cause_event_id))
        ctx = self.ctx(st, None, "merge", now)
        out.transitions.extend(self.machine.evaluate(st, ctx, customer_id, cause_event_id))
        cands = self.trigger_rules.for_transitions(out.transitions, ctx)
        self._settle(out, customer_id, now, cands, cause_event_id)
        return out

    def next_due(self, state: CustomerState) -> float | None:
        """The earliest pending deadline of ``state``, or None."""
        return state.next_due

    def due(self, state: CustomerState, now: float) -> list[Deadline]:
        """The deadlines :meth:`tick` would fire at ``now`` (the state is not changed)."""
        return due_entries(state, now)

    # ------------------------------------------------------------------ internals
    def _settle(self, out: Outcome, customer_id: str, now: float, cands: list[Candidate],
                cause: str | None) -> None:
        """Fire due deadlines (persona moves and candidates), then arbitrate all candidates."""
        st = out.state
        budget = 64  # every firing reschedules later than now; this only guards bugs
        while st.deadlines and st.deadlines[0].due <= now and budget > 0:
            budget -= 1
            d = st.deadlines.pop(0)
            if d.rule:
                cand = self.trigger_rules.for_deferred(st, d)
                if cand is not None:
                    cands.append(cand)
                continue
            fired = fire(st, d, now, self.rules)
            if fired is None:
                continue
            ctx = self.ctx(st, None, "tick", now, d._replace(step=fired.step))
            moves = self.machine.evaluate(st, ctx, customer_id, cause)
            out.transitions.extend(moves)
            cands.extend(self.trigger_rules.for_deadline(fired, ctx))
            if moves:
                cands.extend(self.trigger_rules.for_transitions(moves, ctx))
        if cands:
            decision = self.trigger_rules.arbitrate(st, cands, customer_id, now, cause)
            out.triggers.extend(decision.triggers)
            out.skipped.extend(decision.skipped)

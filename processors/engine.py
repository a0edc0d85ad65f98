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
    out = engine.tick(state, customer_id, now, ref)      # fire deadlines due at `now`
    out = engine.merge(state, anonymous_state, customer_id, now, cause_event_id)
        identity stitching: the anonymous history (views, carts, interests) merged in.
    engine.next_due(state) -> float | None               # earliest pending deadline
    encode_state(state) -> bytes ; decode_state(data) -> CustomerState   (compact, <= 1 KB median)

Trigger ids are deterministic (customer, rule, episode, step); the same inputs at the same
times give the same outputs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class InputRef:
    """Where an input came from; the state keeps the highest offset applied per partition."""

    topic: str
    partition: int
    offset: int

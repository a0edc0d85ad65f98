"""The engine reads plain event records (schemas/plain.py, what the stream worker decodes) as
it reads the pydantic models (what replay and the tools validate): the same outcomes, event
by event, over the generator's mix."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from personaflow.generator import generate_events
from processors.engine import Engine, InputRef, encode_state
from schemas.codec import Codec
from schemas.plain import PlainEvent
from schemas.registry import FileRegistry
from schemas.topics import EVENT_TOPIC


def _run(events: list[Any]) -> list[Any]:
    engine = Engine()
    states: dict[str, Any] = {}
    offsets: dict[str, int] = defaultdict(int)
    seen = []
    for ev in events:
        key = ev.customer_id or ev.anonymous_id
        topic = EVENT_TOPIC[ev.type].name
        offsets[topic] += 1
        out = engine.apply(states.get(key), key, ev, InputRef(topic, 0, offsets[topic]),
                           ev.occurred_at.timestamp())  # fmt: skip
        states[key] = out.state
        seen.append((
            [t.model_dump() for t in out.transitions],
            [t.model_dump() for t in out.triggers],
            list(out.skipped), out.applied, encode_state(out.state),
        ))  # fmt: skip
    last = max(ev.occurred_at.timestamp() for ev in events) + 200 * 86_400
    for key in sorted(states):
        out = engine.tick(states[key], key, last)
        seen.append(([t.model_dump() for t in out.triggers], encode_state(out.state)))
    return seen


def test_plain_events_give_the_outcomes_of_the_models() -> None:
    models = list(generate_events(5, 300, 4000, datetime(2026, 1, 5, tzinfo=UTC)))
    codec = Codec(FileRegistry())
    plain = [codec.decode_plain(codec.encode(ev)) for ev in models]
    assert all(isinstance(ev, PlainEvent) for ev in plain)
    assert len({ev.type for ev in models}) >= 10  # the mix reaches most reducers
    with_models, with_plain = _run(models), _run(plain)
    assert any(step[1] for step in with_models)  # triggers were emitted
    assert with_plain == with_models

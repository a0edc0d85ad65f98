"""The batch intake's bulk acknowledgement has exactly the effects of Faust's own
``Consumer.ack`` per message, on a real Faust consumer (no broker needed: nothing is sent)."""

from __future__ import annotations

from typing import Any

import faust
from faust.types.tuples import TP, Message
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.intake import acknowledge

ACKING = ("events.site", "events.cart")
TOPICS = (*ACKING, "not.acking")


def consumer(committed: dict[TP, int]) -> Any:
    app = faust.App("ack-test", broker="kafka://127.0.0.1:1", web_enabled=False)
    app.topics._acking_topics.update(ACKING)
    faust_consumer = app.consumer
    faust_consumer._committed_offset.update(committed)
    return faust_consumer


def message(topic: str, partition: int, offset: int) -> Message:
    return Message(topic, partition, offset, 0.0, 0, None, b"k", b"v", None,
                   tp=TP(topic, partition))  # fmt: skip


def state(faust_consumer: Any) -> tuple[Any, ...]:
    return (
        {tp: list(v) for tp, v in faust_consumer._acked.items()},
        {tp: set(v) for tp, v in faust_consumer._acked_index.items()},
        faust_consumer._n_acked,
        sorted((m.topic, m.partition, m.offset) for m in faust_consumer._unacked_messages),
        {tp: v for tp, v in faust_consumer._committed_offset.items() if v is not None},
    )


records = st.lists(
    st.tuples(st.sampled_from(TOPICS), st.integers(0, 1), st.integers(0, 20)), max_size=40
)
commits = st.dictionaries(
    st.builds(TP, st.sampled_from(TOPICS), st.integers(0, 1)), st.integers(0, 10), max_size=3
)


@settings(max_examples=150, deadline=None)
@given(records, commits, st.integers(0, 40))
def test_bulk_ack_equals_faust_ack(batch: list[tuple[str, int, int]], committed: dict[TP, int],
                                   cut: int) -> None:  # fmt: skip
    theirs, ours = consumer(committed), consumer(committed)
    for faust_consumer in (theirs, ours):  # tracked, as the intake tracks fetched records
        faust_consumer.messages = [message(*r) for r in batch]  # the same record twice: twice
        for m in faust_consumer.messages:
            faust_consumer._unacked_messages.add(m)
    # in two calls, so that a record acknowledged in the first is skipped in the second
    for m in theirs.messages[:cut] + theirs.messages:
        theirs.ack(m)
    acknowledge(ours, ours.messages[:cut])
    acknowledge(ours, ours.messages)
    assert state(ours) == state(theirs)
    assert [m.acked for m in ours.messages] == [m.acked for m in theirs.messages]

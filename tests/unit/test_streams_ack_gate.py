"""The ack gate returns an input only once every earlier input of its topic-partition has been
returned: whatever order inputs become durable in, across any number of calls."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.worker import _AckGate

TPS = [("events.site", 0), ("events.site", 1), ("internal.rekeyed", 0)]


def messages(counts: list[int]) -> dict[tuple[str, int], list[Any]]:
    return {
        tp: [SimpleNamespace(topic=tp[0], partition=tp[1], offset=o) for o in range(n)]
        for tp, n in zip(TPS, counts, strict=False)
    }


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[dict[tuple[str, int], list[Any]], list[list[Any]]]:
    """Inputs per topic-partition, and the durable ones in the order the worker reports
    them (any order, split over several calls; some never durable)."""
    lanes = messages(draw(st.lists(st.integers(0, 12), min_size=len(TPS), max_size=len(TPS))))
    every = [m for lane in lanes.values() for m in lane]
    durable = draw(st.permutations(every))
    durable = durable[: draw(st.integers(0, len(durable)))]
    cuts = sorted(draw(st.lists(st.integers(0, len(durable)), max_size=5)))
    calls, start = [], 0
    for cut in [*cuts, len(durable)]:
        calls.append(durable[start:cut])
        start = cut
    return lanes, calls


def releasable(lane: list[Any], durable: set[int]) -> list[Any]:
    """The model: the longest run of durable inputs from the start of the lane."""
    out = []
    for message in lane:
        if id(message) not in durable:
            break
        out.append(message)
    return out


@settings(max_examples=300)
@given(scenarios())
def test_release_matches_the_model(scenario: Any) -> None:
    lanes, calls = scenario
    gate = _AckGate()
    # admitted interleaved across topic-partitions, each in offset order
    order = sorted((m for lane in lanes.values() for m in lane), key=lambda m: m.offset)
    gate.admit(order)
    released: dict[tuple[str, int], list[Any]] = {tp: [] for tp in lanes}
    durable: set[int] = set()
    for call in calls:
        durable |= {id(m) for m in call}
        for token in gate.release(list(call)):
            released[(token.topic, token.partition)].append(token)
        for tp, lane in lanes.items():  # after every call, exactly the model's prefix
            assert released[tp] == releasable(lane, durable), tp


def test_revoked_partition_is_never_released() -> None:
    lanes = messages([3, 2])
    gate = _AckGate()
    gate.admit([m for lane in lanes.values() for m in lane])
    site0, site1 = lanes[TPS[0]], lanes[TPS[1]]
    assert gate.release([site0[1]]) == []  # waits behind offset 0
    gate.forget({TPS[0]})
    assert gate.release([site0[0], site0[2], site1[0]]) == [site1[0]]
    assert gate._done == {}  # the waiting token went with its partition


def test_faust_event_tokens_are_matched_by_their_message() -> None:
    message = SimpleNamespace(topic="events.site", partition=0, offset=0)
    gate = _AckGate()
    gate.admit([SimpleNamespace(message=message)])  # take mode hands Faust events
    assert gate.release([message]) == [message]

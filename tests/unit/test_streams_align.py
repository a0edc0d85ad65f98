"""Event-time alignment: the release order does not depend on how records were fetched."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from streams.align import FIRST, Aligner
from streams.dueindex import DueIndex

TOPICS = ("site", "cart", "purchase")
HOLD = 0.3

# (topic, partition, event time); offsets follow the order within each topic-partition
rows = st.lists(
    st.tuples(st.sampled_from(TOPICS), st.integers(0, 2), st.integers(0, 50)), max_size=60
)


def _records(data: list[tuple[str, int, int]]) -> list[tuple[str, int, int, float]]:
    """(topic, partition, offset, time), each topic-partition time-sorted as a producer
    publishing a history in time order would leave it."""
    ordered = sorted(data, key=lambda r: r[2])
    offsets: dict[tuple[str, int], int] = {}
    out = []
    for topic, partition, at in ordered:
        offset = offsets.get((topic, partition), 0)
        offsets[(topic, partition)] = offset + 1
        out.append((topic, partition, offset, float(at)))
    return out


def _feed(records: list[tuple[str, int, int, float]], chunks: list[int]) -> dict[int, list]:
    """Fetch ``records`` in arbitrary per-topic chunks (one topic can run ahead of another),
    releasing after every fetch, then once everything has been idle; released per partition."""
    aligner: Aligner[tuple[str, int, int]] = Aligner(TOPICS, HOLD)
    lanes = {(t, p): [r for r in records if r[:2] == (t, p)] for t in TOPICS for p in range(3)}
    released: dict[int, list] = {}
    now, i = 0.0, 0
    while any(lanes.values()):
        pending = [tp for tp, lane in lanes.items() if lane]
        tp = pending[chunks[i % len(chunks)] % len(pending)]
        take = 1 + chunks[(i + 1) % len(chunks)] % 4
        for topic, partition, offset, at in lanes[tp][:take]:
            aligner.add(topic, partition, offset, at, (topic, partition, offset), now)
        del lanes[tp][:take]
        now += 0.001  # every fetch within the hold of the first one (<= 60 fetches)
        i += 1
        for at, item in aligner.release(now):
            released.setdefault(item[1], []).append((at, item[0], item[2]))
    for at, item in aligner.release(now + HOLD):
        released.setdefault(item[1], []).append((at, item[0], item[2]))
    assert len(aligner) == 0
    return released


@given(rows, st.lists(st.integers(0, 100), min_size=2, max_size=10))
def test_each_partition_is_released_in_event_time_order_whatever_the_fetch_order(
    data, chunks
) -> None:
    records = _records(data)
    released = _feed(records, chunks)
    for partition in range(3):
        expected = sorted((at, t, o) for t, p, o, at in records if p == partition)
        assert released.get(partition, []) == expected


@given(rows, st.lists(st.integers(0, 100), min_size=2, max_size=10), st.randoms())
def test_two_fetch_orders_release_the_same_sequence(data, chunks, rnd: random.Random) -> None:
    records = _records(data)
    other = [rnd.randrange(100) for _ in chunks]
    assert _feed(records, chunks) == _feed(records, other)


def test_a_quiet_topic_holds_records_back_until_its_hold_expires() -> None:
    aligner: Aligner[str] = Aligner(("site", "cart"), HOLD)
    aligner.add("cart", 0, 0, 5.0, "cart-5", now=0.0)
    assert aligner.release(0.1) == []  # site may still bring something earlier
    aligner.add("site", 0, 0, 3.0, "site-3", now=0.2)
    assert aligner.release(0.2) == [(3.0, "site-3")]  # cart-5 waits: site may bring < 5
    assert aligner.release(0.2 + HOLD) == [(5.0, "cart-5")]
    assert aligner.idle(0, 0.2 + HOLD)


def test_a_topic_with_more_on_the_broker_is_not_idle_until_the_longest_hold() -> None:
    aligner: Aligner[str] = Aligner(("site", "cart"), HOLD, max_hold_s=20.0)
    aligner.add("site", 0, 7, 1.0, "site-1", now=0.0)
    aligner.add("cart", 0, 0, 2.0, "cart-2", now=0.0)
    assert aligner.release(0.0) == [(1.0, "site-1")]
    behind = lambda topic, partition, last: topic != "site"  # noqa: E731
    assert aligner.release(10.0, behind) == []
    assert not aligner.idle(0, 10.0, behind)
    assert aligner.release(20.0, behind) == [(2.0, "cart-2")]  # a stale watermark: go on


def test_non_events_go_first_and_non_blocking_topics_never_hold_back() -> None:
    aligner: Aligner[str] = Aligner(("site",), HOLD)
    aligner.add("site", 1, 0, 4.0, "site-4", now=0.0)
    aligner.add("ticks", 1, 0, FIRST, "tick", now=0.0)
    assert aligner.release(0.0) == [(FIRST, "tick"), (4.0, "site-4")]


def test_dropping_revoked_partitions_returns_their_records() -> None:
    aligner: Aligner[str] = Aligner(("site", "cart"), HOLD)
    aligner.add("site", 0, 0, 1.0, "a", now=0.0)
    aligner.add("site", 1, 0, 1.0, "b", now=0.0)
    assert aligner.drop(lambda topic, partition: partition != 1) == ["b"]
    assert len(aligner) == 1
    assert aligner.idle(1, 0.0)


def test_pop_due_within_respects_each_partitions_bound() -> None:
    index = DueIndex()
    index.update("a", 0, 10.0, None)
    index.update("b", 1, 10.0, None)
    index.update("c", 2, 5.0, None)
    assert index.pop_due_within({0: 20.0, 1: 5.0}, 0.0, 60.0) == [("a", 10.0)]
    assert index.pop_due_within({1: 10.0}, 0.0, 60.0) == [("b", 10.0)]

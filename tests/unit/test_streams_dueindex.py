"""The due-index (what the ticker fires) and the clocks."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st

from streams.clock import AcceleratedClock, EventClock, WallClock, make_clock
from streams.dueindex import DueIndex
from streams.faust_tables import FaustTables
from streams.records import InRecord, Write

updates = st.lists(
    st.tuples(
        st.sampled_from([f"k{i}" for i in range(12)]),
        st.integers(0, 3),
        st.one_of(st.none(), st.floats(0, 1000, allow_nan=False)),
    ),
    max_size=60,
)


@given(updates, st.floats(0, 1000, allow_nan=False))
def test_pop_due_returns_exactly_the_latest_due_keys(ops, now) -> None:
    index = DueIndex()
    latest: dict[str, tuple[int, float | None]] = {}
    for key, partition, due in ops:
        index.update(key, partition, due, "p")
        latest[key] = (partition, due)
    popped = index.pop_due(now, None, sent_at=0.0, retry_after=60.0)
    expected = {k: d for k, (_, d) in latest.items() if d is not None and d <= now}
    assert dict(popped) == expected
    # in flight: not returned again until the retry time passed
    assert index.pop_due(now, None, sent_at=1.0, retry_after=60.0) == []
    assert dict(index.pop_due(now, None, sent_at=61.0, retry_after=60.0)) == expected


@given(updates, st.sets(st.integers(0, 3)))
def test_pop_due_only_returns_the_given_partitions(ops, partitions) -> None:
    index = DueIndex()
    latest = {}
    for key, partition, due in ops:
        index.update(key, partition, due, None)
        latest[key] = (partition, due)
    popped = dict(index.pop_due(2000.0, set(partitions), 0.0, 60.0))
    assert all(latest[k][0] in partitions for k in popped)
    assert len(index) == len(latest)
    assert sum(index.persona_counts().values()) == len(latest)


def test_a_rewritten_state_replaces_its_pending_tick() -> None:
    index = DueIndex()
    index.update("c", 0, 10.0, "browsing")
    assert index.pop_due(20.0, {0}, 0.0, 60.0) == [("c", 10.0)]
    index.update("c", 0, 50.0, "cart_abandoner")  # the tick was applied: next deadline
    assert index.pop_due(20.0, {0}, 1.0, 60.0) == []
    assert index.pop_due(60.0, {0}, 2.0, 60.0) == [("c", 50.0)]
    index.drop_partitions({1})
    assert len(index) == 0 and index.persona_counts() == {}


def test_event_clock_is_the_highest_event_time_seen() -> None:
    clock = EventClock()
    for t in (5.0, 3.0, 9.0, 7.0):
        clock.observe(t)
    assert clock.now() == 9.0
    assert clock.at(7.0) == 7.0  # an event is applied at its own time


def test_accelerated_and_wall_clocks() -> None:
    wall = WallClock()
    assert abs(wall.now() - time.time()) < 1
    fast = AcceleratedClock(speed=3600.0, start=0.0)
    time.sleep(0.01)
    assert fast.now() >= 36.0 - 1e-6  # 10 ms real = 36 s simulated
    assert make_clock("event").mode == "event"
    assert make_clock("accelerated", 2.0).mode == "accelerated"
    assert make_clock("wall").mode == "wall"


def test_the_last_changelog_write_of_each_partition_goes_alone() -> None:
    tables = FaustTables(None, None, None, single_tail=True)  # type: ignore[arg-type]

    def write(key: str, partition: int) -> Write:
        return Write("customers", key, b"v", InRecord("t", partition, 0, None, None))

    writes = [write("a", 0), write("b", 1), write("c", 0), write("d", 0), write("e", 1)]
    head, tail = tables._split(writes)
    assert [w.key for w in tail] == ["d", "e"]
    assert [w.key for w in head] == ["a", "b", "c"]

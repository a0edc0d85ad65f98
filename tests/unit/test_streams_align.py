"""Event-time alignment: the release order does not depend on how records were fetched."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.align import FIRST, Aligner, header_time
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


def test_a_topic_caught_up_after_the_records_arrived_does_not_hold_them_back() -> None:
    covered = {"site": -1, "cart": 2}  # site: no answer yet from a fetch sent after arrival 1

    def current(topic: str, partition: int, last: int | None) -> int:
        return covered[topic]

    aligner: Aligner[str] = Aligner(("site", "cart"), HOLD, current=current)
    aligner.add("cart", 0, 0, 5.0, "cart-5", now=0.0, seq=1)
    assert aligner.release(0.01) == []  # site may still bring something earlier
    aligner.add("cart", 0, 1, 6.0, "cart-6", now=0.02, seq=2)
    covered["site"] = 1  # a fetch sent after arrival 1 found nothing more on site
    assert aligner.release(0.03) == [(5.0, "cart-5")]  # long before the hold
    assert not aligner.idle(0, 0.03)
    covered["site"] = 2
    assert aligner.release(0.04) == [(6.0, "cart-6")]
    aligner.add("site", 0, 0, 4.0, "site-4", now=0.05, seq=3)  # late: goes, out of order
    assert aligner.release(0.05) == []  # cart is not known to be caught up after arrival 3
    covered["cart"] = 3
    assert aligner.release(0.06) == [(4.0, "site-4")]


def test_without_a_current_answer_the_hold_still_decides() -> None:
    aligner: Aligner[str] = Aligner(("site", "cart"), HOLD, current=lambda t, p, last: -1)
    aligner.add("cart", 0, 0, 5.0, "cart-5", now=0.0, seq=1)
    assert aligner.release(0.1) == []
    assert aligner.release(HOLD) == [(5.0, "cart-5")]


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


# -------------------------------------------- timed records in a non-blocking lane (alias)

REKEYED = "rekeyed"
"""A non-blocking lane: identity alias requests there carry the time of their Identify."""

requests = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 50)), max_size=8)


def _feed_with_requests(
    records: list[tuple[str, int, int, float]], asks: list[tuple[int, int]], chunks: list[int]
) -> dict[int, list]:
    """As :func:`_feed`, plus timed records in the non-blocking lane, each arriving at a
    random moment but before its partition fetched anything that sorts after it (the
    anonymous id's partition is behind the customer's, or level with it)."""
    aligner: Aligner[tuple[str, int, int]] = Aligner(TOPICS, HOLD)
    lanes = {(t, p): [r for r in records if r[:2] == (t, p)] for t in TOPICS for p in range(3)}
    offsets: dict[int, int] = {}
    pending = []
    for partition, at in sorted(asks, key=lambda a: a[1]):
        offsets[partition] = offsets.get(partition, -1) + 1
        pending.append((REKEYED, partition, offsets[partition], float(at)))
    released: dict[int, list] = {}
    now, i = 0.0, 0

    def ask(record: tuple[str, int, int, float]) -> None:
        topic, partition, offset, at = record
        aligner.add(topic, partition, offset, at, (topic, partition, offset), now)
        pending.remove(record)

    while any(lanes.values()) or pending:
        if pending and chunks[i % len(chunks)] % 3 == 0:
            ask(pending[0])  # arrives early
        busy = [tp for tp, lane in lanes.items() if lane]
        if busy:
            tp = busy[chunks[i % len(chunks)] % len(busy)]
            take = lanes[tp][: 1 + chunks[(i + 1) % len(chunks)] % 4]
            for due in [r for r in pending if r[1] == tp[1]]:
                if any((at, topic, offset) > (due[3], due[0], due[2])
                       for topic, _, offset, at in take):  # fmt: skip
                    ask(due)  # at the latest before its partition fetches past it
            for topic, partition, offset, at in take:
                aligner.add(topic, partition, offset, at, (topic, partition, offset), now)
            del lanes[tp][: len(take)]
        elif pending:
            ask(pending[0])
        now += 0.001
        i += 1
        for at, item in aligner.release(now):
            released.setdefault(item[1], []).append((at, item[0], item[2]))
    for at, item in aligner.release(now + HOLD):
        released.setdefault(item[1], []).append((at, item[0], item[2]))
    assert len(aligner) == 0
    return released


@given(rows, requests, st.lists(st.integers(0, 100), min_size=2, max_size=10))
def test_a_timed_request_is_released_at_its_time_whatever_the_arrival_order(
    data, asks, chunks
) -> None:
    records = _records(data)
    released = _feed_with_requests(records, asks, chunks)
    for partition in range(3):
        times = sorted(float(at) for p, at in asks if p == partition)
        expected = sorted(
            [(at, t, o) for t, p, o, at in records if p == partition]
            + [(at, REKEYED, n) for n, at in enumerate(times)]
        )
        assert released.get(partition, []) == expected


def test_an_alias_request_waits_for_the_anonymous_partitions_earlier_events() -> None:
    aligner: Aligner[str] = Aligner(("site", "cart"), HOLD)
    aligner.add("site", 0, 0, 1.0, "view-1", now=0.0)  # the anonymous id's partition is behind
    aligner.add(REKEYED, 0, 0, 5.0, "alias@5", now=0.0)
    aligner.add("cart", 0, 0, 3.0, "add-3", now=0.0)
    assert aligner.release(0.0) == [(1.0, "view-1")]  # not the request: site may bring < 5
    aligner.add("site", 0, 1, 4.0, "view-4", now=0.1)
    aligner.add("site", 0, 2, 6.0, "view-6", now=0.1)
    assert aligner.release(0.1) == [(3.0, "add-3")]  # cart may still bring something < 4
    assert aligner.release(HOLD) == [(4.0, "view-4"), (5.0, "alias@5"), (6.0, "view-6")]


def test_the_time_of_a_request_comes_from_its_header() -> None:
    assert header_time([("pf-kind", b"alias"), ("pf-time", b"12.5")], "pf-time") == 12.5
    assert header_time([("pf-kind", b"alias")], "pf-time") == FIRST  # older records: at once
    assert header_time([("pf-time", b"soon")], "pf-time") == FIRST


# ------------------------------------------- across partitions (conservative bounds, CMB)


def test_a_partition_waits_for_the_other_partitions_bounds() -> None:
    aligner: Aligner[str] = Aligner(("site",), HOLD, peers=2, peer_wait_s=60.0)
    aligner.add("site", 0, 0, 5.0, "p0@5", now=0.0)
    aligner.add("site", 0, 1, 7.0, "p0@7", now=0.0)
    aligner.add("site", 1, 0, 6.0, "p1@6", now=0.0)
    assert aligner.release(0.0) == []  # nothing heard from the other partition yet
    aligner.bound(0, 1, 6.0, now=0.0)  # partition 1 may still send partition 0 something at 6
    assert aligner.release(0.0) == [(5.0, "p0@5")]
    aligner.bound(1, 0, 7.0, now=0.0)
    assert aligner.release(0.0) == [(6.0, "p1@6")]
    aligner.add(REKEYED, 0, 0, 6.0, "from p1@6", now=0.1)  # what partition 1 sent at 6
    aligner.bound(0, 1, float("inf"), now=0.1)  # ... then nothing more
    assert aligner.release(0.1) == [(6.0, "from p1@6"), (7.0, "p0@7")]


def test_equal_times_go_to_the_lower_partition_first() -> None:
    aligner: Aligner[str] = Aligner(("site",), HOLD, peers=2, peer_wait_s=60.0)
    aligner.add("site", 0, 0, 6.0, "p0@6", now=0.0)
    aligner.add("site", 0, 1, 9.0, "p0@9", now=0.0)
    aligner.add("site", 1, 0, 6.0, "p1@6", now=0.0)
    aligner.add("site", 1, 1, 9.0, "p1@9", now=0.0)
    aligner.bound(0, 1, 6.0, now=0.0)
    aligner.bound(1, 0, 6.0, now=0.0)
    assert aligner.release(0.0) == [(6.0, "p0@6")]  # partition 1 waits for partition 0's 6


def test_a_bound_that_does_not_move_stops_holding_back(caplog: pytest.LogCaptureFixture) -> None:
    aligner: Aligner[str] = Aligner(("site",), HOLD, peers=2, peer_wait_s=5.0)
    aligner.add("site", 0, 0, 5.0, "p0@5", now=0.0)
    aligner.add("site", 0, 1, 8.0, "p0@8", now=0.0)
    aligner.bound(0, 1, 4.0, now=0.0)
    assert aligner.release(4.9) == []
    aligner.bound(0, 1, 4.0, now=4.9)  # repeated, not moved: partition 1 is stuck or gone
    with caplog.at_level("WARNING"):
        assert aligner.release(5.0) == [(5.0, "p0@5"), (8.0, "p0@8")]
    assert "partition 1 did not move" in caplog.text


def test_the_published_bound_is_the_next_record_that_may_send_elsewhere() -> None:
    aligner: Aligner[str] = Aligner(("site", "cart"), HOLD, peers=2)
    assert aligner.head(0, 0.0) == FIRST  # nothing known yet ...
    assert aligner.head(0, 5.0) == float("inf")  # ... and nothing for the longest hold
    aligner.add("site", 0, 0, 3.0, "stays", now=0.0)
    aligner.add("site", 0, 1, 4.0, "sends", now=0.0)
    aligner.add("cart", 0, 0, 9.0, "stays", now=0.0)
    sends = lambda item: item == "sends"  # noqa: E731
    assert aligner.head(0, 0.0, sends=sends) == 4.0
    assert aligner.head(0, 0.0) == 3.0  # without the predicate every record may send
    aligner.bound(0, 1, float("inf"), now=0.0)
    assert len(aligner.release(HOLD)) == 3  # site and cart drain once quiet
    assert aligner.head(0, 0.0 + HOLD, sends=sends) == float("inf")  # idle: nothing to send


def _cmb(
    data: list[tuple[int, int, int, int]], choices: list[int]
) -> tuple[dict[int, list], dict[int, list]]:
    """Partitions exchanging records: ``data`` rows are (partition, topic index, time, target
    partition or -1); an input record with a target sends a timed record there when it is
    released. Input lanes are fetched, internal records and bounds delivered (FIFO per
    receiving partition, as a Kafka partition) and bounds published in an order drawn from
    ``choices``. Returns (released per partition, expected: everything in time order)."""
    parts = 3
    aligner: Aligner[tuple[str, int, int, int]] = Aligner(TOPICS, 1e9, peers=parts,
                                                          peer_wait_s=1e15)  # fmt: skip
    lanes: dict[tuple[str, int], list] = {}
    for partition, topic, at, target in sorted(data, key=lambda r: r[2]):
        lane = lanes.setdefault((TOPICS[topic], partition), [])
        lane.append((TOPICS[topic], partition, len(lane), at, target))
    expected: dict[int, list] = {}
    for lane in lanes.values():
        for _, partition, _, at, _ in lane:
            expected.setdefault(partition, []).append(at)
    queues: dict[int, list] = {p: [] for p in range(parts)}
    received = dict.fromkeys(range(parts), 0)
    released: dict[int, list] = {}
    sends = lambda item: item[3] >= 0  # noqa: E731
    i = 0

    def step(now: float) -> None:
        for at, (topic, partition, _, target) in aligner.release(now):
            released.setdefault(partition, []).append(at)
            if topic != REKEYED and target >= 0 and target != partition:
                queues[target].append(("record", at))
                expected.setdefault(target, []).append(at)
        for p in range(parts):  # publish (after the records the bounds cover)
            if choices[i % len(choices)] % 2 or not any(lanes.values()):
                bound = aligner.head(p, now, lambda *_: not any(lanes.values()), sends)
                for q in range(parts):
                    if q != p:
                        queues[q].append(("bound", p, bound))

    def deliver(q: int, now: float) -> None:
        message = queues[q].pop(0)
        if message[0] == "bound":
            aligner.bound(q, message[1], message[2], now=now)
        else:
            aligner.add(REKEYED, q, received[q], float(message[1]), (REKEYED, q, 0, -1), now=now)
            received[q] += 1

    while any(lanes.values()):
        i += 1
        busy = [tp for tp, lane in lanes.items() if lane]
        full = [q for q, queue in queues.items() if queue]
        if i % 2 or not full:  # fetches and deliveries alternate, in a drawn order
            tp = busy[choices[(i + 1) % len(choices)] % len(busy)]
            topic, partition, offset, at, target = lanes[tp].pop(0)
            aligner.add(topic, partition, offset, float(at), (topic, partition, offset, target),
                        now=0.0)  # fmt: skip
        else:
            deliver(full[choices[(i + 2) % len(choices)] % len(full)], 0.0)
        step(0.0)
    for n in range(1, 25):  # everything fetched: the input topics go quiet, bounds go to +inf
        for q in range(parts):
            while queues[q]:
                deliver(q, n * 2e9)
        step(n * 2e9)
    return released, {p: sorted(times) for p, times in expected.items()}


cross = st.lists(
    st.tuples(
        st.integers(0, 2), st.integers(0, 2), st.integers(0, 10_000),
        st.sampled_from([-1, -1, 0, 1, 2]),
    ),
    max_size=30,
    unique_by=lambda r: r[2],  # distinct times: ties are decided by partition, not tested here
)


@given(cross, st.lists(st.integers(0, 100), min_size=3, max_size=12))
def test_records_sent_across_partitions_are_released_in_time_order_whatever_the_timing(
    data, choices
) -> None:
    released, expected = _cmb(data, choices)
    for partition in range(3):
        assert released.get(partition, []) == expected.get(partition, [])

"""The aligner's fast paths (one lane drained without a heap, one heap per partition and
release, no new limit when no blocking lane emptied, the empty lanes' answers kept during one
release) release exactly what the general path releases: a heap over every lane's head, the
limit computed again after every drain that released something (the aligner before the fast
paths, kept here as the oracle)."""

from __future__ import annotations

import heapq
import math
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.align import FIRST, MAX_SEQ, Aligner, CaughtUp, Current, _Lane

BLOCKING = ("cart", "purchase", "site")
OTHER = "rekeyed"
HOLD = 0.3


class _Item:
    """A buffered record: no ordering, so a path that compares two records fails."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


class _General(Aligner[_Item]):
    """The general release path (as it was before the fast paths)."""

    def release(
        self, now: float, caught_up: CaughtUp | None = None, most: int = 0
    ) -> list[tuple[float, _Item]]:
        out: list[tuple[float, _Item]] = []
        cap = most or sys.maxsize
        for partition, lanes in self._lanes.items():
            before = -1
            while len(out) != before and len(out) < cap:
                before = len(out)
                limit = self._general_limit(partition, lanes, now, caught_up)
                if limit is None:
                    break
                self._general_drain(lanes, limit[0], limit[1], out, cap)
        self._size -= len(out)
        return out

    def _general_limit(
        self,
        partition: int,
        lanes: dict[str, _Lane[_Item]],
        now: float,
        caught_up: CaughtUp | None,
    ) -> tuple[tuple[float, str, int], int] | None:
        limit: tuple[float, str, int] = (math.inf, "", 0)
        arrived = MAX_SEQ
        for topic in self.blocking:
            lane = lanes[topic]
            if lane.items:
                at, _, offset, _, _ = lane.items[-1]
                key = (at, topic, offset)
                if key < limit:
                    limit = key
                continue
            covered = self._covered(topic, partition, lane, now, caught_up)
            if covered < 0:
                return None
            if covered < arrived:
                arrived = covered
        if self.peers > 1:
            cap = (self._cap(partition, now), "\U0010ffff", sys.maxsize)
            if cap < limit:
                limit = cap
        return limit, arrived

    @staticmethod
    def _general_drain(
        lanes: dict[str, _Lane[_Item]],
        limit: tuple[float, str, int],
        arrived: int,
        out: list[tuple[float, _Item]],
        cap: int,
    ) -> None:
        heads = [(lane.items[0][:3], topic) for topic, lane in lanes.items() if lane.items]
        heapq.heapify(heads)
        while heads and len(out) < cap:
            key, topic = heads[0]
            if key > limit:
                return
            items = lanes[topic].items
            if items[0][3] > arrived:
                return
            at, _, _, _, item = items.popleft()
            out.append((at, item))
            if items:
                heapq.heapreplace(heads, (items[0][:3], topic))
            else:
                heapq.heappop(heads)


# add: (topic, partition, event time; -1: FIRST, a new arrival batch)
adds = st.tuples(
    st.just("add"), st.sampled_from((*BLOCKING, OTHER)), st.integers(0, 2), st.integers(-1, 30),
    st.booleans(),
)  # fmt: skip
# release: (at most this many; 0: all, milliseconds passed before)
releases = st.tuples(st.just("release"), st.integers(0, 6), st.integers(0, 400))
# bound: (receiver, sender, time)
bounds = st.tuples(st.just("bound"), st.integers(0, 2), st.integers(0, 2), st.integers(-1, 30))
ops = st.lists(st.one_of(adds, adds, releases, bounds), max_size=80)
lane_keys = st.tuples(st.sampled_from(BLOCKING), st.integers(0, 2))


def _callbacks(
    caught: frozenset[tuple[str, int]], answers: dict[tuple[str, int], int], with_current: bool
) -> tuple[CaughtUp, Current | None]:
    def caught_up(topic: str, partition: int, last: int | None) -> bool:
        return (topic, partition) in caught or (last is not None and last % 3 == 0)

    def current(topic: str, partition: int, last: int | None) -> int:
        return answers.get((topic, partition), -1)

    return caught_up, (current if with_current else None)


def _run(
    aligner: Aligner[_Item], script: list[tuple], caught_up: CaughtUp, ascending: bool
) -> list[list]:
    """The script played on ``aligner``: what each release returned, then what is left.
    ``ascending``: event times follow the script (with ties; each lane in key order, as
    producers publishing in time order leave it), else as drawn."""
    offsets: dict[tuple[str, int], int] = {}
    now, seq, answers = 0.0, 1, []
    for index, op in enumerate(script):
        if op[0] == "add":
            _, topic, partition, at, arrival = op
            seq += arrival
            offset = offsets[(topic, partition)] = offsets.get((topic, partition), -1) + 1
            if topic == OTHER and offset % 4 == 3:
                offset = -1  # an internal record handled in process (streams.records.LOCAL)
            time = FIRST if at < 0 else float(index // 3 if ascending else at)
            item = _Item(f"{topic}/{partition}/{offset}")
            aligner.add(topic, partition, offset, time, item, now, seq)
        elif op[0] == "release":
            _, most, passed = op
            now += passed / 1000.0
            answers.append([(at, i.name) for at, i in aligner.release(now, caught_up, most)])
            answers.append([len(aligner)])
        else:
            _, receiver, sender, at = op
            if receiver != sender:
                aligner.bound(receiver, sender, FIRST if at < 0 else float(at), now)
    now += 10.0  # past every hold: what is left goes
    answers.append([(at, i.name) for at, i in aligner.release(now, caught_up)])
    answers.append([len(aligner)])
    return answers


@settings(max_examples=300, deadline=None)
@given(
    ops,
    st.sampled_from((0, 3)),
    st.frozensets(lane_keys, max_size=4),
    st.dictionaries(lane_keys, st.integers(-1, 8), max_size=6),
    st.booleans(),
    st.booleans(),
)
def test_the_fast_paths_release_what_the_general_path_releases(
    script: list[tuple],
    peers: int,
    caught: frozenset[tuple[str, int]],
    answers: dict[tuple[str, int], int],
    with_current: bool,
    ascending: bool,
) -> None:
    caught_up, current = _callbacks(caught, answers, with_current)
    fast: Aligner[_Item] = Aligner(BLOCKING, HOLD, max_hold_s=1.0, peers=peers, current=current)
    general = _General(BLOCKING, HOLD, max_hold_s=1.0, peers=peers, current=current)
    assert _run(fast, script, caught_up, ascending) == _run(general, script, caught_up, ascending)


def test_a_single_lane_stops_at_a_record_that_arrived_after_an_empty_lanes_answer() -> None:
    """The single-lane path keeps the arrival rule: a record that arrived after the answer
    of an empty lane waits, the earlier ones go."""
    aligner: Aligner[str] = Aligner(("cart", "site"), HOLD, current=lambda t, p, o: 1)
    aligner.add("site", 0, 0, 1.0, "a", now=0.0, seq=1)
    aligner.add("site", 0, 1, 2.0, "b", now=0.0, seq=2)
    assert aligner.release(0.01) == [(1.0, "a")]
    assert aligner.release(1.0) == [(2.0, "b")]  # the cart lane quiet after its hold


def test_an_emptied_lane_lets_the_next_lane_go_in_the_same_release() -> None:
    """A blocking lane emptied by the drain no longer limits the partition once it is quiet:
    the records behind its last one go in the same release."""
    aligner: Aligner[str] = Aligner(("cart", "site"), HOLD)
    aligner.add("cart", 0, 0, 1.0, "cart-1", now=0.0)
    aligner.add("site", 0, 0, 2.0, "site-2", now=0.0)
    aligner.add("site", 0, 1, 3.0, "site-3", now=0.0)
    assert aligner.release(1.0) == [(1.0, "cart-1"), (2.0, "site-2"), (3.0, "site-3")]


def test_lanes_are_merged_by_key_and_a_late_record_keeps_its_lanes_order() -> None:
    """Lanes go in key order; a record out of time order in its lane goes after the ones
    before it in the lane, and the lane's last record limits the partition."""
    aligner: Aligner[str] = Aligner(("cart", "site"), HOLD)
    for offset, at in enumerate((1.0, 3.0, 3.0)):
        aligner.add("site", 0, offset, at, f"site-{offset}", now=0.0)
    aligner.add("cart", 0, 0, 2.0, "cart-0", now=0.0)
    aligner.add("cart", 0, 1, 4.0, "cart-1", now=0.0)
    assert aligner.release(0.1) == [(1.0, "site-0"), (2.0, "cart-0"), (3.0, "site-1"),
                                    (3.0, "site-2")]  # fmt: skip
    aligner.add("site", 0, 3, 6.0, "site-3", now=0.1)
    aligner.add("site", 0, 4, 5.0, "site-4", now=0.1)  # out of time order
    aligner.add("cart", 0, 2, 5.5, "cart-2", now=0.1)
    # site's last record (5.0) limits the partition; site-3 (6.0) goes first in its lane
    assert aligner.release(0.2) == [(4.0, "cart-1")]
    aligner.add("site", 0, 5, 7.0, "site-5", now=0.3)
    assert aligner.release(0.4) == [(5.5, "cart-2"), (6.0, "site-3"), (5.0, "site-4"),
                                    (7.0, "site-5")]  # fmt: skip
    aligner.add("site", 0, 6, 8.0, "site-6", now=0.5)
    aligner.add("cart", 0, 3, 7.5, "cart-3", now=0.5)
    assert aligner.release(1.0) == [(7.5, "cart-3"), (8.0, "site-6")]


def test_internal_records_with_equal_keys_go_in_their_lanes_order() -> None:
    """Records handled in process share an offset (streams.records.LOCAL): with equal times
    they go in the order they were buffered."""
    aligner: Aligner[str] = Aligner(("site",), HOLD)
    aligner.add("site", 0, 0, 1.0, "site-0", now=0.0, seq=1)
    aligner.add(OTHER, 0, -1, 2.0, "second-by-name", now=0.0, seq=1)
    aligner.add(OTHER, 0, -1, 2.0, "first-by-name", now=0.0, seq=1)
    aligner.add("site", 0, 1, 3.0, "site-1", now=0.0, seq=1)
    assert aligner.release(0.0) == [(1.0, "site-0"), (2.0, "second-by-name"),
                                    (2.0, "first-by-name"), (3.0, "site-1")]  # fmt: skip

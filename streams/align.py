"""Event-time alignment of co-partitioned input topics.

A customer's events reach its partition number through several topics (site, cart, purchase,
engagement, identity, and forwarded ones through internal.rekeyed). The consumer can fetch one
topic ahead of another, so without alignment the order in which the engine sees a customer's
events depends on fetch timing and on how partitions are split between workers.

:class:`Aligner` buffers records per (partition number, topic) and releases them in
``(event time, topic, offset)`` order (each topic-partition stays in offset order). A record is
released only when every *blocking* topic of its partition number either has a buffered record
(whose time is then at or after the released one) or is idle: nothing fetched for ``hold_s``
and, when the caller can tell, no more records known on the broker. With ``current`` (the
caller can tell that a topic has nothing more on the broker *as of a fetch answered after the
partition's latest record arrived*), such a topic is idle at once: everything appended to it
before the records waiting here was already fetched, so waiting could only catch a record that
reaches the broker after them (the hold is then no tolerance either: it runs from the topic's
last fetch, not from the waiting record). Non-blocking topics (internal.rekeyed,
internal.ticks) are merged by time but never hold others back.

Across partitions (``peers`` > 1): a partition's records can also come from the other
partitions (forwarded events and identity alias requests through internal.rekeyed), made
while those partitions process their own input records, at those records' event times. Each
partition therefore publishes a lower bound of the event time of the input records it has
yet to process (:meth:`Aligner.head`: its aligned head-of-line time, +inf when idle and caught
up), and a partition releases a record at time t only when every other partition's latest
bound is past t, ties going to the lower partition (conservative synchronisation in the style
of Chandy-Misra-Bryant null messages). The bound does not depend on the other partitions'
bounds, so two partitions never wait for each other. A bound not renewed for ``peer_wait_s``
(its owner is gone or rebalancing) stops holding back, with a warning. Records of the
non-blocking topics, which come from several senders, are merged by time within their lane
(a merge answer never waits behind a later alias request).

Pure logic: the caller passes the monotonic time; nothing here reads a clock or the network.
"""

from __future__ import annotations

import heapq
import logging
import math
import sys
from bisect import insort
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

log = logging.getLogger("personaflow.streams")

CaughtUp = Callable[[str, int, int | None], bool]
"""``(topic, partition, last fetched offset or None) -> True`` when nothing more is known to
wait on the broker (the hold then decides alone)."""

Current = Callable[[str, int, int | None], int]
"""``(topic, partition, last fetched offset or None) ->`` the highest arrival sequence of the
records that topic-partition can no longer overtake (see :attr:`Aligner.current`)."""

FIRST = float("-inf")
"""Time of records that are not events (ticks, merge answers, undecodable payloads): they are
released at once, ahead of the buffered events."""


def header_time(headers: Iterable[tuple[str, bytes]], name: str) -> float:
    """The epoch-seconds time in header ``name`` (FIRST when absent or malformed).

    An identity ``alias`` request carries the event time of the Identify behind it: buffered
    in a non-blocking lane at that time, it is released after the anonymous id's partition
    released its earlier events (the state it hands over is then the state at the Identify,
    as in replay), and before its later ones."""
    for key, value in headers:
        if key == name:
            try:
                return float(value)
            except ValueError:
                return FIRST
    return FIRST


MAX_SEQ = sys.maxsize
"""Arrival sequence limit meaning "every record" (see :attr:`Aligner.current`)."""


def _key(entry: tuple[float, str, int, int, object]) -> tuple[float, str, int]:
    return entry[0], entry[1], entry[2]


@dataclass(slots=True)
class _Lane(Generic[T]):
    """The buffered records of one (topic, partition), in offset order."""

    items: deque[tuple[float, str, int, int, T]] = field(default_factory=deque)
    """``(event time, topic, offset, arrival sequence, record)``."""
    fetched_at: float = FIRST
    last_offset: int | None = None
    last_at: float = FIRST
    """Event time of the latest record fetched (later ones are not earlier: a lower bound)."""
    blocking: bool = False
    """Whether the lane's topic is blocking (its records queue in offset order)."""


class Aligner(Generic[T]):
    """Buffers records per partition number and topic; releases them in event-time order."""

    def __init__(
        self,
        blocking: Iterable[str],
        hold_s: float,
        max_hold_s: float = 0.0,
        peers: int = 0,
        peer_wait_s: float = 0.0,
        current: Current | None = None,
    ) -> None:
        self.blocking = tuple(sorted(blocking))
        """Topics whose silence holds a partition's release back (the input topics)."""
        self.hold_s = hold_s
        """How long a blocking topic with nothing buffered is waited for after its last fetch."""
        self.max_hold_s = max(max_hold_s, hold_s)
        """How long it is waited for at most while the broker says more records are there (a
        wrong or stale watermark must not stall a partition for good)."""
        self.peers = peers
        """Partition count when releases wait for the other partitions' bounds (<= 1: off)."""
        self.peer_wait_s = max(peer_wait_s, self.max_hold_s)
        """How long a bound not renewed keeps holding back (a partition without a live owner
        must not stall the others for good)."""
        self.current = current
        """``(topic, partition, last fetched offset)`` -> the highest arrival sequence (see
        :meth:`add`) such that the broker had nothing more for the topic-partition as of a
        fetch sent after that arrival (-1: none). An empty lane then holds back only the
        records that arrived later, whatever the hold (None: the hold alone decides)."""
        self._last_seq = 0
        self._lanes: dict[int, dict[str, _Lane[T]]] = {}
        self._bounds: dict[int, dict[int, list[float]]] = {}
        """Per receiving partition: sender -> [latest bound, monotonic time it last moved]."""
        self._stale: set[tuple[int, int]] = set()
        self._empty_since: dict[int, float] = {}
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def _partition(self, partition: int, now: float) -> dict[str, _Lane[T]]:
        lanes = self._lanes.get(partition)
        if lanes is None:
            # a partition seen for the first time: give every blocking topic a full hold
            lanes = self._lanes[partition] = {
                t: _Lane(fetched_at=now, blocking=True) for t in self.blocking
            }
            self._empty_since.pop(partition, None)
        return lanes

    def add(
        self, topic: str, partition: int, offset: int, at: float, item: T, now: float, seq: int = 0
    ) -> None:
        """Buffer ``item`` (the record at ``topic``/``partition``/``offset``, event time ``at``)
        fetched at monotonic time ``now``, in the caller's arrival batch number ``seq``
        (non-decreasing; used with :attr:`current`)."""
        lanes = self._lanes.get(partition)
        if lanes is None:
            lanes = self._partition(partition, now)
        lane = lanes.get(topic)
        if lane is None:
            lane = lanes[topic] = _Lane(blocking=topic in self.blocking)
        if lane.blocking:
            lane.items.append((at, topic, offset, seq, item))
        else:  # internal records from several senders: merged by time, not queued behind
            insort(lane.items, (at, topic, offset, seq, item), key=_key)  # a later one
        lane.fetched_at = now
        lane.last_offset = offset
        if at > lane.last_at:
            lane.last_at = at
        if seq > self._last_seq:
            self._last_seq = seq
        self._size += 1

    def bound(self, receiver: int, sender: int, at: float, now: float) -> None:
        """Partition ``sender`` will not send ``receiver`` anything earlier than ``at``."""
        bounds = self._bounds.setdefault(receiver, {})
        entry = bounds.get(sender)
        if entry is None or entry[0] != at:
            bounds[sender] = [at, now]
            self._stale.discard((receiver, sender))

    def head(
        self,
        partition: int,
        now: float,
        caught_up: CaughtUp | None = None,
        sends: Callable[[T], bool] | None = None,
    ) -> float:
        """A lower bound of the event time of the input records ``partition`` has yet to
        release and that may send something to another partition (``sends``; None: any
        record may): the earliest such buffered record, and for an input topic that is not
        quiet the latest time it fetched (what comes next is not earlier); +inf when idle."""
        lanes = self._lanes.get(partition)
        if lanes is None:  # nothing fetched yet: unknown, until empty for the longest hold
            since = self._empty_since.setdefault(partition, now)
            if now - since < self.max_hold_s:
                return FIRST
            if caught_up is None or all(caught_up(t, partition, None) for t in self.blocking):
                return math.inf
            return FIRST
        low = math.inf
        for topic in self.blocking:
            lane = lanes[topic]
            if lane.last_at < low and not self._settled(topic, partition, lane, now, caught_up):
                low = lane.last_at
            for at, _, _, _, item in lane.items:
                if at >= low:
                    break
                if sends is None or sends(item):
                    low = at
                    break
        return low

    def _cap(self, partition: int, now: float) -> float:
        """The latest event time ``partition`` may release given the other partitions'
        bounds (ties: the lower partition goes first)."""
        bounds = self._bounds.setdefault(partition, {})
        cap = math.inf
        for sender in range(self.peers):
            if sender == partition:
                continue
            entry = bounds.get(sender)
            if entry is None:  # nothing heard yet: unknown, waited for from now on
                entry = bounds[sender] = [FIRST, now]
            at, moved = entry
            if at >= cap:
                continue
            if now - moved >= self.peer_wait_s:  # silent or stuck: go on without it
                self._warn_stale(partition, sender)
                continue
            allowed = at if partition < sender else math.nextafter(at, FIRST)
            if allowed < cap:
                cap = allowed
        return cap

    def _warn_stale(self, partition: int, sender: int) -> None:
        if (partition, sender) not in self._stale:
            self._stale.add((partition, sender))
            log.warning("alignment: the bound of partition %d did not move for %.1fs; "
                        "partition %d goes on without it", sender, self.peer_wait_s,
                        partition)  # fmt: skip

    def release(
        self, now: float, caught_up: CaughtUp | None = None, most: int = 0
    ) -> list[tuple[float, T]]:
        """Every record that may go now (at most ``most``, when given), as ``(event time,
        item)``, partition by partition."""
        out: list[tuple[float, T]] = []
        cap = most or sys.maxsize
        for partition, lanes in self._lanes.items():
            if len(out) >= cap:
                break
            covered: dict[str, int] = {}
            limit = self._limit(partition, lanes, now, caught_up, covered)
            if limit is not None:
                self._drain(partition, lanes, limit, out, cap, (now, caught_up, covered))
        self._size -= len(out)
        return out

    def _limit(
        self,
        partition: int,
        lanes: dict[str, _Lane[T]],
        now: float,
        caught_up: CaughtUp | None,
        covered: dict[str, int],
    ) -> tuple[tuple[float, str, int, float], int] | None:
        """The highest key that may be released, as ``(time, topic, offset, inf)`` (a
        buffered entry is below it exactly when its key is at or below the key), and the
        highest arrival sequence of the records that may (``None``: nothing may go).
        ``covered`` keeps :meth:`_covered` of the empty lanes during one release (nothing
        it depends on changes meanwhile)."""
        limit: tuple[float, str, int, float] = (math.inf, "", 0, math.inf)
        arrived = MAX_SEQ
        for topic in self.blocking:
            lane = lanes[topic]
            items = lane.items
            if items:
                last = items[-1]
                key = (last[0], topic, last[2], math.inf)
                if key < limit:
                    limit = key
                continue
            seen = covered.get(topic)
            if seen is None:
                seen = covered[topic] = self._covered(topic, partition, lane, now, caught_up)
            if seen < 0:
                return None
            if seen < arrived:
                arrived = seen
        if self.peers > 1:
            cap = (self._cap(partition, now), "\U0010ffff", sys.maxsize, math.inf)
            if cap < limit:
                limit = cap
        return limit, arrived

    def _covered(
        self, topic: str, partition: int, lane: _Lane[T], now: float, caught_up: CaughtUp | None
    ) -> int:
        """Up to which arrival sequence an empty blocking lane lets records go: all when it
        is quiet, else what :attr:`current` says (-1: none)."""
        if self._quiet(topic, partition, lane, now, caught_up):
            return MAX_SEQ
        current = self.current
        return -1 if current is None else current(topic, partition, lane.last_offset)

    def _settled(
        self, topic: str, partition: int, lane: _Lane[T], now: float, caught_up: CaughtUp | None
    ) -> bool:
        """Whether an empty blocking lane holds back none of the records buffered now."""
        return self._covered(topic, partition, lane, now, caught_up) >= self._last_seq

    def _quiet(
        self, topic: str, partition: int, lane: _Lane[T], now: float, caught_up: CaughtUp | None
    ) -> bool:
        """Whether an empty blocking lane no longer holds its partition back."""
        waited = now - lane.fetched_at
        if waited < self.hold_s:
            return False
        if caught_up is None or waited >= self.max_hold_s:
            return True
        return caught_up(topic, partition, lane.last_offset)

    def idle(self, partition: int, now: float, caught_up: CaughtUp | None = None) -> bool:
        """Whether nothing of ``partition`` is buffered and every blocking topic is idle."""
        lanes = self._lanes.get(partition)
        if lanes is None:
            return True
        for topic, lane in lanes.items():
            if lane.items:
                return False
            if topic in self.blocking and not self._settled(topic, partition, lane, now, caught_up):
                return False
        return True

    def _drain(
        self,
        partition: int,
        lanes: dict[str, _Lane[T]],
        limit: tuple[tuple[float, str, int, float], int],
        out: list[tuple[float, T]],
        cap: int,
        asked: tuple[float, CaughtUp | None, dict[str, int]],
    ) -> None:
        """Move ``partition``'s records that may go to ``out`` in key order (see
        :meth:`_limit`), until one arrived too late or ``out`` holds ``cap``. When that
        emptied a blocking lane (an emptied idle lane may unblock), the limit is computed
        again and the drain goes on (it changes only then: otherwise the same limit stops
        it at the same record). The heads are the entries themselves (entries of different
        lanes differ by topic, so they compare by key alone), heaped once per release."""
        heads = [lane.items[0] for lane in lanes.values() if lane.items]
        if len(heads) == 1:  # one lane to take from (few topics per partition): no heap
            self._drain_lane(lanes[heads[0][1]].items, limit[0], limit[1], out, cap)
            return
        heapq.heapify(heads)
        bar, arrived = limit
        while heads:
            emptied = False
            while heads and len(out) < cap:
                head = heads[0]
                if not head < bar or head[3] > arrived:  # a lane may still get an earlier one
                    break
                lane = lanes[head[1]]
                items = lane.items
                items.popleft()
                out.append((head[0], head[4]))
                if items:
                    heapq.heapreplace(heads, items[0])
                else:
                    heapq.heappop(heads)
                    emptied = emptied or lane.blocking
            if not emptied or not heads or len(out) >= cap:
                return
            now, caught_up, covered = asked
            again = self._limit(partition, lanes, now, caught_up, covered)
            if again is None:
                return
            bar, arrived = again

    @staticmethod
    def _drain_lane(
        items: deque[tuple[float, str, int, int, T]],
        limit: tuple[float, str, int, float],
        arrived: int,
        out: list[tuple[float, T]],
        cap: int,
    ) -> None:
        """:meth:`_drain` of a single lane (``items`` not empty): once it is empty, nothing
        of the partition is left to release."""
        while items and len(out) < cap:
            head = items[0]
            if not head < limit or head[3] > arrived:
                return
            items.popleft()
            out.append((head[0], head[4]))

    def drop(self, keep: Callable[[str, int], bool]) -> list[T]:
        """Remove the buffered records of every (topic, partition) not kept; returns them."""
        dropped: list[T] = []
        for partition in list(self._lanes):
            lanes = self._lanes[partition]
            for topic in list(lanes):
                if not keep(topic, partition):
                    dropped.extend(item for *_, item in lanes.pop(topic).items)
            if any(topic not in lanes for topic in self.blocking):
                dropped.extend(item for lane in lanes.values() for *_, item in lane.items)
                del self._lanes[partition]  # re-assigned later: starts with a fresh hold
                self._bounds.pop(partition, None)
        self._size -= len(dropped)
        return dropped

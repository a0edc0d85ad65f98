"""Event-time alignment of co-partitioned input topics.

A customer's events reach its partition number through several topics (site, cart, purchase,
engagement, identity, and forwarded ones through internal.rekeyed). The consumer can fetch one
topic ahead of another, so without alignment the order in which the engine sees a customer's
events depends on fetch timing and on how partitions are split between workers.

:class:`Aligner` buffers records per (partition number, topic) and releases them in
``(event time, topic, offset)`` order (each topic-partition stays in offset order). A record is
released only when every *blocking* topic of its partition number either has a buffered record
(whose time is then at or after the released one) or is idle: nothing fetched for ``hold_s``
and, when the caller can tell, no more records known on the broker. Non-blocking topics
(internal.rekeyed, internal.ticks) are merged by time but never hold others back.

Pure logic: the caller passes the monotonic time; nothing here reads a clock or the network.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

CaughtUp = Callable[[str, int, int | None], bool]
"""``(topic, partition, last fetched offset or None) -> True`` when nothing more is known to
wait on the broker (the hold then decides alone)."""

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


@dataclass(slots=True)
class _Lane(Generic[T]):
    """The buffered records of one (topic, partition), in offset order."""

    items: deque[tuple[float, str, int, T]] = field(default_factory=deque)
    fetched_at: float = FIRST
    last_offset: int | None = None


class Aligner(Generic[T]):
    """Buffers records per partition number and topic; releases them in event-time order."""

    def __init__(self, blocking: Iterable[str], hold_s: float, max_hold_s: float = 0.0) -> None:
        self.blocking = tuple(sorted(blocking))
        """Topics whose silence holds a partition's release back (the input topics)."""
        self.hold_s = hold_s
        """How long a blocking topic with nothing buffered is waited for after its last fetch."""
        self.max_hold_s = max(max_hold_s, hold_s)
        """How long it is waited for at most while the broker says more records are there (a
        wrong or stale watermark must not stall a partition for good)."""
        self._lanes: dict[int, dict[str, _Lane[T]]] = {}
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def _partition(self, partition: int, now: float) -> dict[str, _Lane[T]]:
        lanes = self._lanes.get(partition)
        if lanes is None:
            # a partition seen for the first time: give every blocking topic a full hold
            lanes = self._lanes[partition] = {t: _Lane(fetched_at=now) for t in self.blocking}
        return lanes

    def add(self, topic: str, partition: int, offset: int, at: float, item: T, now: float) -> None:
        """Buffer ``item`` (the record at ``topic``/``partition``/``offset``, event time ``at``)
        fetched at monotonic time ``now``."""
        lanes = self._partition(partition, now)
        lane = lanes.get(topic)
        if lane is None:
            lane = lanes[topic] = _Lane()
        lane.items.append((at, topic, offset, item))
        lane.fetched_at = now
        lane.last_offset = offset
        self._size += 1

    def release(self, now: float, caught_up: CaughtUp | None = None) -> list[tuple[float, T]]:
        """Every record that may go now, as ``(event time, item)``, partition by partition."""
        out: list[tuple[float, T]] = []
        for partition, lanes in self._lanes.items():
            before = -1
            while len(out) != before:  # an emptied idle lane may unblock more
                before = len(out)
                limit = self._limit(partition, lanes, now, caught_up)
                if limit is None:
                    break
                self._drain(lanes, limit, out)
        self._size -= len(out)
        return out

    def _limit(
        self, partition: int, lanes: dict[str, _Lane[T]], now: float, caught_up: CaughtUp | None
    ) -> tuple[float, str, int] | None:
        """The highest key that may be released (``None``: nothing may go)."""
        limit: tuple[float, str, int] | None = (float("inf"), "", 0)
        for topic in self.blocking:
            lane = lanes[topic]
            if lane.items:
                at, _, offset, _ = lane.items[-1]
                key = (at, topic, offset)
                if limit is None or key < limit:
                    limit = key
                continue
            if not self._quiet(topic, partition, lane, now, caught_up):
                return None
        return limit

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
            if topic in self.blocking and not self._quiet(topic, partition, lane, now, caught_up):
                return False
        return True

    @staticmethod
    def _drain(
        lanes: dict[str, _Lane[T]], limit: tuple[float, str, int], out: list[tuple[float, T]]
    ) -> None:
        heads = [(lane.items[0][:3], topic) for topic, lane in lanes.items() if lane.items]
        heapq.heapify(heads)
        while heads:
            key, topic = heads[0]
            if key > limit:
                return
            items = lanes[topic].items
            at, _, _, item = items.popleft()
            out.append((at, item))
            if items:
                heapq.heapreplace(heads, (items[0][:3], topic))
            else:
                heapq.heappop(heads)

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
        self._size -= len(dropped)
        return dropped

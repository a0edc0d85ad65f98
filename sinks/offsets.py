"""Which offsets may be committed when records finish out of order (bounded concurrency).

Per partition, offsets are tracked in arrival order; the committable position is one past the
longest prefix of finished records, so an offset is only committed when it and every record
before it have a durable outcome.
"""

from __future__ import annotations

from collections import deque

TopicPartition = tuple[str, int]


class OffsetTracker:
    """In-flight offsets per partition and the position safe to commit."""

    def __init__(self) -> None:
        self._pending: dict[TopicPartition, deque[list[int]]] = {}
        self._entries: dict[TopicPartition, dict[int, list[int]]] = {}
        self._ready: dict[TopicPartition, int] = {}

    def add(self, tp: TopicPartition, offset: int) -> None:
        """A record was handed to a worker."""
        entry = [offset, 0]
        queue = self._pending.get(tp)
        if queue is None:
            queue = self._pending[tp] = deque()
            self._entries[tp] = {}
        queue.append(entry)
        self._entries[tp][offset] = entry

    def done(self, tp: TopicPartition, offset: int) -> None:
        """A record's outcome is durable (ignored for partitions no longer tracked)."""
        queue = self._pending.get(tp)
        if queue is None:
            return
        entries = self._entries[tp]
        entry = entries.get(offset)
        if entry is not None:
            entry[1] = 1
        while queue and queue[0][1]:
            entries.pop(queue[0][0], None)
            self._ready[tp] = queue.popleft()[0] + 1

    def take_committable(
        self, only: set[TopicPartition] | None = None
    ) -> dict[TopicPartition, int]:
        """Positions (next offset to read) that became safe since the last call."""
        if only is None:
            ready, self._ready = self._ready, {}
            return ready
        ready = {tp: pos for tp, pos in self._ready.items() if tp in only}
        for tp in ready:
            del self._ready[tp]
        return ready

    def in_flight(self, tp: TopicPartition | None = None) -> int:
        """Records handed out and not finished (for one partition or all)."""
        if tp is not None:
            return sum(1 for e in self._pending.get(tp, ()) if not e[1])
        return sum(1 for q in self._pending.values() for e in q if not e[1])

    def forget(self, tps: set[TopicPartition]) -> None:
        """Stop tracking revoked partitions."""
        for tp in tps:
            self._pending.pop(tp, None)
            self._entries.pop(tp, None)
            self._ready.pop(tp, None)

"""The due-index: which customers have a deadline due, by partition, kept next to the table.

Updated whenever a customer's state is written, rebuilt from the table after a rebalance or a
restart, and read by the ticker. Also keeps each customer's persona for the ``/personas``
counts. In-memory only: the table is the durable truth and the index is derived from it.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Mapping


class DueIndex:
    """Next deadline and persona per customer key, with a heap for "what is due now"."""

    def __init__(self) -> None:
        self._due: dict[str, float] = {}
        self._partition: dict[str, int] = {}
        self._persona: dict[str, str] = {}
        self._heap: list[tuple[float, str]] = []
        self._inflight: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._partition)

    def update(self, key: str, partition: int, due: float | None, persona: str | None) -> None:
        """Record a customer's new state: its next deadline (or none) and persona."""
        self._partition[key] = partition
        self._persona[key] = persona or "unknown"
        self._inflight.pop(key, None)
        if due is None:
            self._due.pop(key, None)
            return
        if self._due.get(key) != due:
            self._due[key] = due
            heapq.heappush(self._heap, (due, key))

    def remove(self, key: str) -> None:
        """Forget a customer (erased, merged away, or partition revoked)."""
        self._due.pop(key, None)
        self._partition.pop(key, None)
        self._persona.pop(key, None)
        self._inflight.pop(key, None)

    def partition_of(self, key: str) -> int | None:
        """The partition a customer's state lives in, if known."""
        return self._partition.get(key)

    def due_for(self, key: str) -> float | None:
        """The customer's next deadline, if any."""
        return self._due.get(key)

    def pop_due(
        self, now: float, partitions: set[int] | None, sent_at: float, retry_after: float
    ) -> list[tuple[str, float]]:
        """Keys whose deadline is at or before ``now`` (in ``partitions``; ``None``: all).

        Each returned key is marked in flight and returned again only if its state was not
        rewritten within ``retry_after`` seconds of ``sent_at`` (a lost tick is resent)."""
        out: list[tuple[str, float]] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            due, key = heapq.heappop(heap)
            if self._due.get(key) != due or key in self._inflight:
                continue
            if partitions is not None and self._partition.get(key) not in partitions:
                continue
            self._inflight[key] = sent_at
            out.append((key, due))
        for key, when in list(self._inflight.items()):
            due_at = self._due.get(key)
            if sent_at - when >= retry_after and due_at is not None and due_at <= now:
                self._inflight[key] = sent_at
                out.append((key, due_at))
        return out

    def pop_due_within(
        self, limits: Mapping[int, float], sent_at: float, retry_after: float
    ) -> list[tuple[str, float]]:
        """Like :meth:`pop_due`, with a time bound per partition (``limits``: partition ->
        now; partitions absent are not this worker's and their keys are forgotten). Keys due
        after their partition's bound stay pending."""
        if not limits:
            return []
        out: list[tuple[str, float]] = []
        later: list[tuple[float, str]] = []
        heap = self._heap
        top = max(limits.values())
        while heap and heap[0][0] <= top:
            due, key = heapq.heappop(heap)
            if self._due.get(key) != due or key in self._inflight:
                continue
            limit = limits.get(self._partition.get(key, -1))
            if limit is None:
                continue
            if due > limit:
                later.append((due, key))
                continue
            self._inflight[key] = sent_at
            out.append((key, due))
        for item in later:
            heapq.heappush(heap, item)
        for key, when in list(self._inflight.items()):
            due_at = self._due.get(key)
            limit = limits.get(self._partition.get(key, -1))
            if sent_at - when < retry_after or due_at is None or limit is None:
                continue
            if due_at <= limit:
                self._inflight[key] = sent_at
                out.append((key, due_at))
        return out

    def drop_partitions(self, keep: set[int]) -> None:
        """Forget every key whose partition is not in ``keep``."""
        for key, partition in list(self._partition.items()):
            if partition not in keep:
                self.remove(key)

    def persona_counts(self) -> dict[str, int]:
        """Number of customers per persona."""
        return dict(Counter(self._persona.values()))

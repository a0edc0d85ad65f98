"""The glue between Faust and the batch processor: one :class:`StreamWorker` per Faust app.

- :meth:`StreamWorker.handle` runs one batch taken from the stream: process, produce every
  output and wait for the acks; table writes are persisted (changelog acknowledged) every
  ``persist_interval_s``, and only the inputs whose writes are persisted are returned for
  Faust to acknowledge (and later commit).
- :meth:`StreamWorker.tick_due` is the ticker: it sends a tick through internal.ticks (to the
  customer's own partition) for every due customer of this worker's active partitions.
- After a rebalance the state cache is dropped and the due-index rebuilt from the table.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Sequence
from typing import Any

from streams import metrics
from streams.clock import Clock
from streams.core import CustomerProcessor, RetriableBatchError
from streams.domain import Domain, persona_of
from streams.faust_tables import FaustTables
from streams.records import KIND, InRecord, OutRecord
from streams.settings import StreamSettings
from streams.topics import TopicNames
from streams.wire import dumps

log = logging.getLogger("personaflow.streams")

RETRY_BACKOFF_S = (0.5, 1.0, 2.0, 5.0)


class StreamWorker:
    """State and behaviour of one worker process (held by the Faust app)."""

    def __init__(
        self,
        app: Any,
        settings: StreamSettings,
        domain: Domain,
        clock: Clock,
        tables: FaustTables,
    ) -> None:
        self.app = app
        self.settings = settings
        self.domain = domain
        self.clock = clock
        self.tables = tables
        self.topics = TopicNames(settings.topic_prefix)
        self.processor = CustomerProcessor(
            domain, self.topics, clock, tables, cache_max=settings.cache_max_customers
        )
        self.index = self.processor.index
        self._indexed: frozenset[int] | None = None
        self._lock = asyncio.Lock()
        """Held while a batch is in flight and while the due-index is rebuilt from the table
        (a rebuild must not miss states processed but not yet written)."""
        self.batches = 0
        self.records = 0
        self._pending: dict[tuple[str, str], Any] = {}
        self._unacked: list[Any] = []
        self._persisted_at = time.monotonic()
        self._shared_clock = 0.0

    # ------------------------------------------------------------------ batches

    async def handle(self, events: Sequence[Any]) -> list[Any]:
        """Process one batch of Faust events or messages (empty: only persist if due).

        Outputs are produced and acknowledged by the broker before this returns; table writes
        are persisted at most every ``persist_interval_s`` (every batch when 0). Returns the
        inputs whose effects are now all durable: the caller acknowledges exactly those."""
        async with self._lock:
            if events:
                await self._handle(events)
                self._unacked.extend(events)
            if self._persist_due():
                await self._persist()
                done, self._unacked = self._unacked, []
                return done
            return []

    def _persist_due(self) -> bool:
        if not self._pending:
            return bool(self._unacked)
        interval = self.settings.persist_interval_s
        return time.monotonic() - self._persisted_at >= interval or len(self._pending) >= 50_000

    async def _persist(self) -> None:
        started = time.perf_counter()
        writes = [w.materialise(self.domain.encode_state) for w in self._pending.values()]
        self._pending.clear()
        try:
            await self.tables.persist(writes)
        except BaseException:
            self.processor.invalidate()  # the cache holds states that were not persisted
            raise
        self._persisted_at = time.monotonic()
        log.debug("persisted %d writes in %.1fms", len(writes),
                  (time.perf_counter() - started) * 1e3)  # fmt: skip

    async def _handle(self, events: Sequence[Any]) -> None:
        started = time.perf_counter()
        records = [_record(event) for event in events]
        if self.clock.mode == "event":
            records = _in_time_order(records)
        effects = await self._process(records)
        try:
            await self.send(effects.outputs)
        except BaseException:
            self.processor.invalidate()
            raise
        for write in effects.writes:
            self._pending[(write.space, write.key)] = write
        effects.tally.flush()
        self.batches += 1
        self.records += len(records)
        elapsed = time.perf_counter() - started
        metrics.BATCH_SECONDS.observe(elapsed)
        log.debug("batch records=%d outputs=%d writes=%d in %.1fms", len(records),
                  len(effects.outputs), len(effects.writes), elapsed * 1e3)  # fmt: skip

    async def _process(self, records: list[InRecord]) -> Any:
        attempt = 0
        while True:
            try:
                return self.processor.process(records)
            except RetriableBatchError as exc:
                delay = RETRY_BACKOFF_S[min(attempt, len(RETRY_BACKOFF_S) - 1)]
                log.warning("batch retried in %.1fs: %s", delay, exc)
                attempt += 1
                await asyncio.sleep(delay)

    async def send(self, outputs: list[OutRecord], partitions: list[int] | None = None) -> None:
        """Produce ``outputs`` and wait until the broker acknowledged all of them."""
        if not outputs:
            return
        producer = self.tables.producer
        for i, out in enumerate(outputs):
            partition = partitions[i] if partitions is not None else None
            producer.produce(out.topic, out.key, out.value, partition, out.headers)
        await producer.flush()

    # ------------------------------------------------------------------ ticker

    def active_partitions(self) -> frozenset[int] | None:
        """Partitions of the input topics this worker owns now (None while rebalancing)."""
        if self.app.rebalancing or self.app.in_recovery:
            return None
        recovery = getattr(self.app.tables, "recovery", None)
        if recovery is not None and not recovery.completed.is_set():
            return None
        first = self.topics.inputs[0]
        actives = self.app.assignor.assigned_actives()
        return frozenset(tp.partition for tp in actives if tp.topic == first)

    def indexed_partitions(self) -> frozenset[int] | None:
        """The partitions the due-index was last built for."""
        return self._indexed

    def refresh_index(self, partitions: frozenset[int]) -> None:
        """Rebuild the due-index from the table when the assignment changed."""
        if partitions == self._indexed:
            return
        self.processor.invalidate()
        self.index.drop_partitions(set())
        started = time.perf_counter()
        unreadable = 0
        for partition in sorted(partitions):
            for key, raw in self.tables.items("customers", partition):
                try:
                    state = self.domain.decode_state(raw)
                    due = self.domain.engine.next_due(state)
                except Exception:  # noqa: BLE001 - a corrupt state must not stop the ticker
                    unreadable += 1
                    continue
                self.index.update(key, partition, due, persona_of(state))
        if unreadable:
            log.error("due-index: %d unreadable customer states skipped", unreadable)
        self._indexed = partitions
        log.info(
            "due-index rebuilt: partitions=%s customers=%d in %.2fs",
            sorted(partitions),
            len(self.index),
            time.perf_counter() - started,
        )

    async def tick_due(self) -> int:
        """Send a tick for every due customer of the active partitions; returns how many."""
        partitions = self.active_partitions()
        if partitions is None:
            return 0
        if partitions != self._indexed:
            async with self._lock:
                await self._persist()  # the rebuild reads the table: write pending states first
                self.refresh_index(partitions)
        metrics.TABLE_CUSTOMERS.set(len(self.index))
        now = self.clock.now()
        await self._share_clock(now)
        due = self.index.pop_due(now, set(partitions), time.time(), self.settings.tick_retry_s)
        if not due:
            return 0
        # event time: a deadline fires at its own due time, whatever the worker's clock jumped
        # to, so the outcome does not depend on batching or on how partitions are split
        at_due = self.clock.mode == "event"
        outputs = [
            OutRecord(self.topics.ticks, key.encode(),
                      dumps({"now": when if at_due else now, "due": when}))
            for key, when in due
        ]  # fmt: skip
        targets = [self._partition_of(key) for key, _ in due]
        await self.send(outputs, targets)
        return len(outputs)

    async def _share_clock(self, now: float) -> None:
        """Event time: tell every worker (one record per ticks partition) how far this one's
        clock got, so all clocks follow the highest event time of the whole stream and a
        deadline fires the same way however the partitions are split."""
        if self.clock.mode != "event" or now <= self._shared_clock:
            return
        body = dumps({"clock": now})
        count = self.settings.partitions
        outputs = [OutRecord(self.topics.ticks, None, body, [(KIND, b"clock")])] * count
        await self.send(outputs, list(range(count)))
        self._shared_clock = now

    def _partition_of(self, key: str) -> int:
        partition = self.index.partition_of(key)
        return 0 if partition is None else partition

    def on_revoked(self) -> None:
        """Partitions were taken away: forget cached states, rebuild the index later."""
        self.processor.invalidate()
        self._indexed = None


def _in_time_order(records: list[InRecord]) -> list[InRecord]:
    """Merge the batch's partitions by record timestamp, each partition kept in offset order:
    with an event-time clock, a customer's events from different topics are then applied in
    (publish) time order within a batch, as replay applies them."""
    by_partition: dict[tuple[str, int], list[InRecord]] = {}
    for record in records:
        by_partition.setdefault((record.topic, record.partition), []).append(record)
    if len(by_partition) < 2:
        return records
    return list(heapq.merge(*by_partition.values(), key=lambda r: r.timestamp))


def _record(event: Any) -> InRecord:
    """An :class:`InRecord` of a Faust event or message."""
    message = getattr(event, "message", event)
    headers = message.headers or ()
    if isinstance(headers, dict):
        headers = headers.items()
    return InRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        timestamp=message.timestamp or 0.0,
        headers=tuple((str(k), bytes(v)) for k, v in headers),
        token=message,
    )

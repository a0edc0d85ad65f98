"""The glue between Faust and the batch processor: one :class:`StreamWorker` per Faust app.

- :meth:`StreamWorker.handle` runs one batch taken from the stream: process and produce every
  output. Every ``persist_interval_s`` a persist starts in the background (the loop goes on
  with the next batches): it waits until the broker acknowledged every output produced so far,
  then writes the tables (changelog acknowledged); only then are the inputs behind it returned
  (by a later call) for Faust to acknowledge and commit. Reads see the writes not persisted
  yet (:class:`_Unpersisted`).
- :meth:`StreamWorker.tick_due` is the ticker: it sends a tick through internal.ticks (to the
  customer's own partition) for every due customer of this worker's active partitions.
- After a rebalance the state cache is dropped and the due-index rebuilt from the table.
  :meth:`StreamWorker.revoke` (Faust's revocation callback) first persists everything
  processed so far, while the partitions are still this worker's, and fences off records
  fetched before the rebalance.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import logging
import math
import os
import time
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka.structs import TopicPartition
from faust.types import TP

from schemas.errors import DecodeError
from schemas.plain import linked_anonymous_id
from streams import crashpoints, metrics, wire
from streams.align import FIRST, Aligner, header_time
from streams.clock import Clock
from streams.core import CustomerProcessor, RetriableBatchError, key_partition
from streams.domain import Domain, persona_of
from streams.faust_tables import FaustTables
from streams.records import BOUND, FROM, KIND, SENT, TIME, InRecord, OutRecord, Space, Write
from streams.settings import StreamSettings
from streams.topics import TopicNames
from streams.wire import dumps

log = logging.getLogger("personaflow.streams")

RETRY_BACKOFF_S = (0.5, 1.0, 2.0, 5.0)
BOUND_INTERVAL_S = 0.05
"""Alignment across partitions: bounds are published at most this often (when they moved)."""
BOUND_REPEAT_S = 1.0
"""... and repeated this often even when they did not (a restarted reader learns them)."""
CLOCK_KEY = "pf-clock:"
"""Identity-table key prefix of a partition's persisted event clock (``pf-clock:<partition>``)."""


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
        self._roles = self.topics.roles
        """The role of every topic that is not an input (see :meth:`TopicNames.role`)."""
        self._pending: dict[tuple[str, str], Any] = {}
        """Table writes of processed batches not persisted yet (latest per key)."""
        self._inflight: dict[tuple[str, str], Any] = {}
        """The writes the background persist is writing (already serialised)."""
        self.reader = _Unpersisted(self)
        self.processor = CustomerProcessor(
            domain,
            self.topics,
            clock,
            self.reader,
            cache_max=settings.cache_max_customers,
            partitions=settings.partitions,
        )
        self.index = self.processor.index
        self._indexed: frozenset[int] | None = None
        self._lock = asyncio.Lock()
        """Held while a batch is in flight and while the due-index is rebuilt from the table
        (a rebuild must not miss states processed but not yet written)."""
        self.batches = 0
        self.records = 0
        self._unacked: list[Any] = []
        """Inputs processed since the last persist started (acknowledged after the next)."""
        self._ready: list[Any] = []
        """Inputs whose effects are all durable, to return from the next :meth:`handle`."""
        self._gate = _AckGate()
        """Hands inputs back for acknowledgement in offset order per topic-partition."""
        self._persisting: asyncio.Future[None] | None = None
        self._failed: BaseException | None = None
        """Why a background persist failed (raised by the next call: nothing after it may be
        acknowledged; the worker restarts from the committed offsets)."""
        self._persisted_at = time.monotonic()
        self._min_generation = 0
        """Records fetched in an earlier consumer generation are not processed (see
        :meth:`revoke`): they were fetched before a rebalance, and whoever owns their
        partition now reads them again from the committed offset, in order."""
        self._shared_clock = 0.0
        hold_s = settings.align_hold_ms / 1000.0
        aligned = hold_s > 0 and settings.intake == "batch"
        max_hold_s = max(5.0, 20 * hold_s)
        self.aligner: Aligner[InRecord] | None = None
        if aligned:
            # bounds across partitions only with the event clock: with the wall clock every
            # decision takes the processing time, so waiting for other partitions would buy no
            # determinism and cost latency (measured: e2t p50 at 2,000 ev/s 0.4-0.8 s -> 17 s)
            peers = settings.partitions if settings.clock == "event" else 0
            self.aligner = Aligner(
                self.topics.inputs,
                hold_s,
                max_hold_s=max_hold_s,
                peers=peers,
                peer_wait_s=max_hold_s,
                current=self._current if settings.align_release_caught_up else None,
            )
        """Event-time alignment of the input topics, and across partitions (None: records go
        as fetched)."""
        self._sends: dict[tuple[str, int, int], bool | str] = {}
        """Buffered input records that may send something to another partition when they are
        processed: True, or an anonymous id (then they may once it has an alias)."""
        self._aliasing: set[str] = set()
        """Anonymous ids an alias request was received for (their events become forwards)."""
        self._published: dict[int, tuple[float, float]] = {}
        """Per owned partition: the bound last published and when (monotonic)."""
        self._owned: frozenset[int] = frozenset()
        """The partitions this worker owns (as of the current batch): bounds between them are
        exchanged in process, not through internal.rekeyed."""
        self._sent: dict[bytes, tuple[int, int, float]] = {}
        """Forwarded events and alias requests sent between owned partitions and not fetched
        back yet: id -> (sender, target, event time). They keep the sender's bound for the
        target at their time until the target has them."""
        self._sent_count = 0
        self._nonce = f"{os.getpid()}.{time.time_ns()}"
        self._bounds_at = 0.0
        self.more = False
        """The aligner held back records that could go now (released a batch at most)."""
        self._released_at: dict[int, float] = {}
        """Per partition: the highest event time released to the processor (its event clock)."""
        self._clock_writes: dict[int, InRecord] = {}
        """Partitions whose event clock moved, with a record of each (the write's source)."""
        self._arrivals: list[float] = []
        """When (epoch ms) each recent admission took records in; index 0 is arrival
        sequence ``_arrivals_base`` (see :meth:`_current`)."""
        self._arrivals_base = 1
        self._busy_s = 0.0
        """Time spent processing: the aligner's holds count only the time the worker could
        have been fetching (a long batch must not make a topic look idle)."""

    # ------------------------------------------------------------------ batches

    async def handle(self, events: Sequence[Any]) -> list[Any]:
        """Process one batch of Faust events or messages (empty: only persist if due).

        Outputs are produced (not waited for); a persist starts at most every
        ``persist_interval_s`` (every batch when 0) and runs in the background. Returns the
        inputs whose effects are now all durable (outputs acknowledged, then table writes):
        the caller acknowledges exactly those. Raises if a background persist failed."""
        async with self._lock:
            self._check_failed()
            if self._min_generation:
                events = self._fresh(events)
            self._gate.admit(events)
            if self.aligner is not None and self.aligner.peers > 1:
                self._owned = self.active_partitions() or frozenset()
            records = self._admit(events)
            started = time.monotonic()
            try:
                if records or self.processor.parking:
                    done = await self._handle(records)
                    self._save_clocks()
                    self._unacked.extend(record.token for record in done)
                await self._publish_bounds()  # after the outputs they cover were acked
                if self._persist_due():
                    self._start_persist()
                    if not self.settings.persist_interval_s:  # every batch, before returning
                        await self._settle()
                ready, self._ready = self._ready, []
                return self._gate.release(ready)
            finally:  # busy time: not counted towards the aligner's holds
                self._busy_s += time.monotonic() - started

    def _persist_due(self) -> bool:
        if self._persisting is not None and not self._persisting.done():
            return False  # one at a time: the changelog keeps each key's writes in order
        if not self._pending:
            return bool(self._unacked)
        interval = self.settings.persist_interval_s
        return time.monotonic() - self._persisted_at >= interval or len(self._pending) >= 50_000

    def _start_persist(self) -> None:
        """Persist the writes and acknowledge the inputs processed so far, in the background.

        The states are serialised now, so the stored values are exactly those of the batches
        processed so far (later batches change the cached objects in place), and the inputs
        taken are exactly the ones behind them."""
        encode = self.domain.encode_state  # looked up once, not per write
        writes = [w.materialise(encode) for w in self._pending.values()]
        self._inflight, self._pending = self._pending, {}
        tokens, self._unacked = self._unacked, []
        self._persisting = asyncio.ensure_future(self._persist_writes(writes, tokens))

    async def _persist_writes(self, writes: list[Write], tokens: list[Any]) -> None:
        """Outputs acknowledged -> table writes persisted -> inputs ready to acknowledge."""
        started = time.perf_counter()
        try:
            await self.tables.producer.flush()  # every output produced before the snapshot
            if writes:
                crashpoints.reached("outputs-acked")
            await self.tables.persist(writes)
            if writes:
                crashpoints.reached("tables-acked")
        except BaseException as exc:  # kept, raised by the next call
            self.processor.invalidate()  # the cache holds states that were not persisted
            self._failed = exc
            log.exception("persist failed: %s", type(exc).__name__)
            return
        self._inflight = {}
        self._ready.extend(tokens)
        self._persisted_at = time.monotonic()
        log.debug("persisted %d writes in %.1fms", len(writes),
                  (time.perf_counter() - started) * 1e3)  # fmt: skip

    async def _settle(self) -> None:
        """Wait for the background persist (if any); raise if it failed."""
        if self._persisting is not None:
            await asyncio.shield(self._persisting)
        self._check_failed()

    def _check_failed(self) -> None:
        if self._failed is not None:
            raise self._failed

    async def _persist(self) -> None:
        """Persist everything processed so far, and wait for it."""
        await self._settle()
        if self._pending or self._unacked:
            self._start_persist()
            await self._settle()

    # ------------------------------------------------------------------ alignment

    def _admit(self, events: Sequence[Any]) -> list[InRecord]:
        """The records that may be processed now: with alignment, ``events`` are buffered and
        whatever the aligner releases (in event-time order per partition) is returned."""
        aligner = self.aligner
        if aligner is None:
            records = [_record(event) for event in events]
            return _in_time_order(records) if self.clock.mode == "event" else records
        now = time.monotonic() - self._busy_s
        add, timed, rekeyed = aligner.add, self._timed, self.topics.rekeyed
        seq = self._arrival() if events else 0
        peers = aligner.peers > 1
        for event in events:
            record, at = timed(event)
            topic = record.topic
            if topic == rekeyed:
                if (KIND, BOUND) in record.headers:
                    self._bound(record, now)
                    continue
                if (KIND, b"alias") in record.headers:
                    self._aliasing.add(record.key_text())
                if self._sent:
                    sent = record.header(SENT)
                    if sent:
                        self._sent.pop(sent.encode(), None)
            elif peers and record.event is not None:
                flag = self._may_send(record)
                if flag:
                    self._sends[(topic, record.partition, record.offset)] = flag
            add(topic, record.partition, record.offset, at, record, now, seq)
        if not len(aligner):
            self.more = False  # nothing held: the intake waits for the next fetch
            return []
        if len(self._owned) > 1:
            self._local_bounds(now)
        clocks = self._released_at
        out: list[InRecord] = []
        moved = self._clock_writes
        sends = self._sends
        most = self.settings.batch_max_events
        released = aligner.release(now, self._caught_up, most)
        self.more = len(released) >= most  # more may go at once: the intake calls again
        if sends:
            for _, record in released:
                sends.pop((record.topic, record.partition, record.offset), None)
        for at, record in released:
            partition = record.partition
            if at > clocks.get(partition, FIRST):
                clocks[partition] = at
                moved[partition] = record
            out.append(record)
        return out

    def _local_bounds(self, now: float) -> None:
        """Bounds between the partitions this worker owns, in process: each owned partition's
        bound (as :meth:`_publish_bounds` computes it) goes straight to the others, lowered to
        the time of anything it sent them that they have not fetched yet. No broker round
        trip per step (through internal.rekeyed, partitions advanced in lockstep with them)."""
        aligner = self.aligner
        assert aligner is not None
        owned = self._owned
        pending: dict[tuple[int, int], float] = {}
        for sender, target, at in self._sent.values():
            if at < pending.get((sender, target), math.inf):
                pending[(sender, target)] = at
        parking = self.processor.parking
        for sender in owned:
            bound = aligner.head(sender, now, self._caught_up, self._sends_elsewhere)
            if parking:
                bound = min(bound, parking.earliest(sender))
            for target in owned:
                if target != sender:
                    at = pending.get((sender, target), math.inf)
                    aligner.bound(target, sender, at if at < bound else bound, now)

    def _track_sent(self, outputs: list[OutRecord]) -> None:
        """Remember forwarded events and alias requests sent to another owned partition
        (:attr:`_sent`), each with an id header to recognise it when it is fetched back."""
        rekeyed, owned, partitions = self.topics.rekeyed, self._owned, self.settings.partitions
        for out in outputs:
            if out.topic != rekeyed:
                continue
            headers = dict(out.headers)
            kind, sender = headers.get(KIND), headers.get(FROM)
            if kind not in (b"event", b"alias") or sender is None:
                continue
            target = key_partition(out.key, partitions)
            if target is None or target not in owned:
                continue
            self._sent_count += 1
            sent = f"{self._nonce}.{self._sent_count}".encode()
            out.headers.append((SENT, sent))
            self._sent[sent] = (int(sender), target, header_time(out.headers, TIME))

    def _bound(self, record: InRecord, now: float) -> None:
        """Take in another partition's bound (acknowledged with the next persisted batch)."""
        assert self.aligner is not None
        try:
            sender = int(record.header(FROM) or "")
        except ValueError:
            sender = -1
        if sender >= 0:
            self.aligner.bound(record.partition, sender, header_time(record.headers, TIME), now)
        self._unacked.append(record.token)

    def _may_send(self, record: InRecord) -> bool | str:
        """Whether processing input ``record`` may send a record to another partition: a
        forward (not keyed by its customer), an alias request (Identify/Alias of an
        anonymous id on another partition); for an anonymous visitor's event, its id (it is
        forwarded once the id has an alias). Conservative: a maybe is a yes."""
        event = record.event
        partitions = self.settings.partitions
        key = record.key_text()
        customer = event.customer_id
        if customer:
            if customer != key and key_partition(customer.encode(), partitions) != record.partition:
                return True
            anonymous = linked_anonymous_id(event)  # of an Identify/Alias, else None
            if not anonymous or anonymous == customer:
                return False
            return key_partition(anonymous.encode(), partitions) != record.partition
        anonymous = event.anonymous_id or ""
        if anonymous != key:
            return True
        try:
            aliased = self.reader.read("identity", f"a:{anonymous}", record)
        except Exception:  # noqa: BLE001 - cannot tell: count it as a sender
            return True
        return True if aliased else anonymous

    def _sends_elsewhere(self, record: InRecord) -> bool:
        flag = self._sends.get((record.topic, record.partition, record.offset))
        return flag is True or (isinstance(flag, str) and flag in self._aliasing)

    async def _publish_bounds(self) -> None:
        """Tell every other partition, through internal.rekeyed, the lower bound of the event
        time of what each of our partitions may still send them (streams/align.py): its
        aligned head of line, or a parked event's time if earlier. Published after the
        outputs of the records processed so far were acknowledged, so in each rekeyed
        partition a bound follows the records it covers."""
        aligner = self.aligner
        started = time.monotonic()
        if aligner is None or aligner.peers <= 1 or started - self._bounds_at < BOUND_INTERVAL_S:
            return
        partitions = self.active_partitions()
        if not partitions:
            return
        self._bounds_at = started
        now = started - self._busy_s
        parking = self.processor.parking
        outputs: list[OutRecord] = []
        targets: list[int] = []
        targets_elsewhere = [t for t in range(aligner.peers) if t not in partitions]
        if not targets_elsewhere:
            return  # every partition is ours: bounds go in process (_local_bounds)
        for partition in sorted(partitions):
            bound = aligner.head(partition, now, self._caught_up, self._sends_elsewhere)
            if parking:
                bound = min(bound, parking.earliest(partition))
            last = self._published.get(partition)
            if last is not None and last[0] == bound and started - last[1] < BOUND_REPEAT_S:
                continue
            self._published[partition] = (bound, started)
            headers = [(KIND, BOUND), (TIME, repr(bound).encode()), (FROM, str(partition).encode())]
            for target in targets_elsewhere:
                outputs.append(OutRecord(self.topics.rekeyed, None, b"", headers))
                targets.append(target)
        await self.send(outputs, targets)

    def _save_clocks(self) -> None:
        """Queue the moved partition clocks as table writes: persisted with the states, before
        the inputs behind them are committed, and read back by :meth:`refresh_index`."""
        for partition, source in self._clock_writes.items():
            at = self._released_at.get(partition)
            if at is None:  # revoked meanwhile
                continue
            key = f"{CLOCK_KEY}{partition}"
            self._pending[("identity", key)] = Write("identity", key, repr(at).encode(), source)
        self._clock_writes.clear()

    def _load_clocks(self, partitions: frozenset[int]) -> None:
        """Restore the persisted event clocks of ``partitions`` (after a restart/rebalance)."""
        for partition in partitions:
            source = InRecord(self.topics.inputs[0], partition, -1, None, None)
            raw = self.reader.read("identity", f"{CLOCK_KEY}{partition}", source)
            if raw:
                at = float(raw)
                if at > self._released_at.get(partition, FIRST):
                    self._released_at[partition] = at

    def _timed(self, event: Any) -> tuple[InRecord, float]:
        """The record of a fetched message with its decoded event attached (decoded once,
        here), and its event time (FIRST when it is not an event or cannot be decoded: it goes
        at once and the processor handles it). An alias request goes at the time of the
        Identify behind it, after the anonymous id's earlier events."""
        message = getattr(event, "message", event)
        topic, value, headers = message.topic, message.value, message.headers
        headers = _header_pairs(headers) if headers else ()  # most inputs have none
        role = self._roles.get(topic, "input")
        decoded, at = None, FIRST
        if role == "input" or (role == "rekeyed" and (KIND, b"event") in headers):
            try:
                decoded = wire.decode_input(value)
                at = decoded.occurred_ts
            except DecodeError:
                decoded = None
        elif role == "rekeyed" and (KIND, b"alias") in headers:
            at = header_time(headers, TIME)
        record = InRecord(topic, message.partition, message.offset, message.key, value,
                          message.timestamp or 0.0, headers, message, decoded)  # fmt: skip
        return record, at

    def _caught_up(self, topic: str, partition: int, last_offset: int | None) -> bool:
        """Whether the broker reported no record after ``last_offset`` (after the committed
        offset when nothing was fetched yet). False while no watermark is known: the
        aligner's ``max_hold_s`` bounds that wait."""
        tp = TP(topic, partition)
        consumer = self.app.consumer
        try:
            highwater = consumer.highwater(tp)
        except Exception:  # noqa: BLE001 - not assigned (any more): nothing to wait for
            return True
        if highwater is None:
            return False
        if last_offset is not None:
            return last_offset + 1 >= int(highwater)
        committed = getattr(consumer, "_committed_offset", {}).get(tp)
        return int(highwater) <= (committed or 0)

    def _arrival(self) -> int:
        """A new arrival sequence number for the records admitted now (stamped with the time)."""
        arrivals = self._arrivals
        if len(arrivals) >= 4096:
            del arrivals[:2048]
            self._arrivals_base += 2048
        arrivals.append(time.time() * 1000.0)
        return self._arrivals_base + len(arrivals) - 1

    def _current(self, topic: str, partition: int, last_offset: int | None) -> int:
        """The latest arrival sequence whose records can no longer be overtaken by a record of
        ``topic``/``partition`` already on the broker (-1: none): the broker had nothing after
        ``last_offset`` as of a fetch *sent* after they arrived, so everything appended to the
        topic before them was fetched, and waiting could not change their order.

        The consumer keeps one fetch in flight per broker and stamps each partition of an
        answer when it handles it, before the answer's records can arrive here. An answer
        handled after a record arrived therefore comes from a fetch sent after the answer that
        brought the record, i.e. after the record was appended (on one broker; with several,
        the two fetches go to different brokers and only the network delay separates them)."""
        try:
            polled = self._kafka_consumer().last_poll_timestamp(_tp(topic, partition))
        except Exception:  # noqa: BLE001 - not assigned or no consumer: the hold decides
            return -1
        if not polled or not self._caught_up(topic, partition, last_offset):
            return -1
        # arrivals strictly before the answer (its stamp is whole ms, rounded down)
        index = bisect.bisect_left(self._arrivals, float(polled))
        return self._arrivals_base + index - 1 if index else -1

    def _kafka_consumer(self) -> Any:
        """The aiokafka consumer behind Faust's (it runs in Faust's consumer thread)."""
        return self.app.consumer._thread._ensure_consumer()

    def _tick_limits(self, partitions: frozenset[int], now: float) -> dict[int, float]:
        """Per partition, the time up to which deadlines fire. Event time with alignment: the
        partition's own released event time, so a deadline never fires ahead of the
        customer's earlier events, however partitions are split or fetched (a deadline after a
        partition's last event waits for its next event). An owned partition without a clock
        yet gets FIRST: its deadlines wait (a partition left out of the limits had its due
        customers dropped from the due-index's heap for good)."""
        if self.aligner is None or self.clock.mode != "event":
            return dict.fromkeys(partitions, now)
        released = self._released_at
        return {p: released.get(p, FIRST) for p in partitions}

    # ------------------------------------------------------------------ processing

    async def _handle(self, records: list[InRecord]) -> list[InRecord]:
        """Process ``records``; returns the records handled (parked ones are not)."""
        started = time.perf_counter()
        effects = await self._process(records)
        if len(self._owned) > 1:
            self._track_sent(effects.outputs)
        try:
            self._produce(effects.outputs)  # acknowledged before the next persist writes
        except BaseException:
            self.processor.invalidate()
            raise
        self._remember(effects.writes)
        effects.tally.flush()
        self.batches += 1
        self.records += len(records)
        elapsed = time.perf_counter() - started
        metrics.BATCH_SECONDS.observe(elapsed)
        log.debug("batch records=%d outputs=%d writes=%d in %.1fms", len(records),
                  len(effects.outputs), len(effects.writes), elapsed * 1e3)  # fmt: skip
        return list(effects.done)

    def _remember(self, writes: list[Write]) -> None:
        """Queue a batch's table writes for the next persist (reads see them at once)."""
        pending = self._pending
        for write in writes:
            pending[(write.space, write.key)] = write

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
        self._produce(outputs, partitions)
        await self.tables.producer.flush()

    def _produce(self, outputs: list[OutRecord], partitions: list[int] | None = None) -> None:
        """Enqueue ``outputs`` (each on its key's partition, or on ``partitions``)."""
        produce = self.tables.producer.produce
        for i, out in enumerate(outputs):
            partition = partitions[i] if partitions is not None else None
            produce(out.topic, out.key, out.value, partition, out.headers)

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
        if self.aligner is not None:
            self._load_clocks(partitions)
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
        limits = self._tick_limits(partitions, now)
        due = self.index.pop_due_within(limits, time.time(), self.settings.tick_retry_s)
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
        if self.clock.mode != "event" or self.aligner is not None or now <= self._shared_clock:
            return  # aligned: each partition follows its own released event time
        body = dumps({"clock": now})
        count = self.settings.partitions
        outputs = [OutRecord(self.topics.ticks, None, body, [(KIND, b"clock")])] * count
        await self.send(outputs, list(range(count)))
        self._shared_clock = now

    def _partition_of(self, key: str) -> int:
        partition = self.index.partition_of(key)
        return 0 if partition is None else partition

    async def revoke(self, revoked: Any = None) -> list[Any]:
        """Faust's revocation callback: partitions ``revoked`` (topic-partitions; None: all)
        are being taken away. Runs before this worker rejoins the group, so no other worker
        owns them yet.

        Everything processed so far is persisted now (outputs acknowledged, then the table
        writes), so no write of a revoked partition is left to land in its changelog after
        another worker took it over and recovered it. Records fetched up to now are fenced
        off (:meth:`_fresh`): a batch still queued from before the rebalance is not processed.
        The inputs behind the revoked partitions' writes are not acknowledged here (their
        commit belongs to the next owner, which reads them again as no-ops: the states hold
        their watermarks). Returns every token that will never be acknowledged."""
        generation = getattr(self.app, "consumer_generation_id", None)
        if revoked is None or revoked:  # (Faust revokes an empty set once at start-up)
            # the generation being left; the next assignment's is higher
            self._min_generation = (generation if isinstance(generation, int) else 0) + 1
        async with self._lock:
            await self._persist()
            gone = None if revoked is None else {(tp.topic, tp.partition) for tp in revoked}
            kept = [t for t in self._ready if gone is not None and _tp_of(t) not in gone]
            dropped = [t for t in self._ready if gone is None or _tp_of(t) in gone]
            self._ready = kept
            self._gate.forget(gone)
            return [*self.on_revoked(revoked), *dropped]

    def _fresh(self, events: Sequence[Any]) -> Sequence[Any]:
        """``events`` without those fetched before the latest revocation (consumer
        generation below :attr:`_min_generation`); those are forgotten, never acknowledged."""
        floor = self._min_generation
        stale = [e for e in events if getattr(e, "generation_id", floor) < floor]
        if not stale:
            return events
        unacked = getattr(getattr(self.app, "consumer", None), "_unacked_messages", None)
        if unacked is not None:
            for event in stale:
                unacked.discard(event)
        log.info("dropped %d records fetched before a rebalance", len(stale))
        return [e for e in events if getattr(e, "generation_id", floor) >= floor]

    def on_revoked(self, revoked: Any = None) -> list[Any]:
        """Partitions were taken away: forget cached states, rebuild the index later, and drop
        the held records of ``revoked`` (topic-partitions; None: all). Returns the dropped
        records' tokens (never acknowledged: the next owner reads them again)."""
        self.processor.invalidate()
        self._indexed = None
        gone = None if revoked is None else {(tp.topic, tp.partition) for tp in revoked}
        parked = self.processor.parking.drop(
            lambda r: gone is not None and (r.topic, r.partition) not in gone
        )
        if self.aligner is None:
            return [record.token for record in parked]
        dropped = [
            *parked,
            *self.aligner.drop(lambda t, p: gone is not None and (t, p) not in gone),
        ]
        for partition in {p for _, p in gone or ()}:
            self._released_at.pop(partition, None)
            self._published.pop(partition, None)
        if gone is None:
            self._released_at.clear()
            self._published.clear()
        self._owned = frozenset()  # until the next batch: bounds through the broker only
        lost = None if gone is None else {p for _, p in gone}
        self._sent = {k: v for k, v in self._sent.items()
                      if lost is not None and v[0] not in lost and v[1] not in lost}  # fmt: skip
        if self._sends:  # the records dropped are read again (and judged again)
            kept = {(t, p) for t, p, _ in self._sends if gone is not None and (t, p) not in gone}
            self._sends = {k: v for k, v in self._sends.items() if (k[0], k[1]) in kept}
        return [record.token for record in dropped]


class _AckGate:
    """Returns inputs for acknowledgement only in offset order per topic-partition.

    Inputs become durable out of order: a record parked behind its customer's identity
    merge, or buffered in a time-ordered internal lane, is done after later records of its
    topic-partition (a bound record is done at once). Faust commits the first run of
    consecutive acknowledged offsets even when the committed offset itself was never
    acknowledged (``min(acked) - committed > 1`` is its only check, and none while nothing
    is committed), so acknowledging the later records first committed past the earlier one,
    and a crash before it was processed lost it."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, int], deque[Any]] = {}
        """Per topic-partition: the tokens of the inputs taken in and not returned, in offset
        order."""
        self._done: dict[int, Any] = {}
        """Tokens (by id) that are durable but wait behind an earlier offset."""

    def admit(self, events: Iterable[Any]) -> None:
        """Take in fetched inputs (each topic-partition in offset order)."""
        lanes = self._open
        for event in events:
            message = getattr(event, "message", event)  # the token of its record
            tp = (message.topic, message.partition)
            lane = lanes.get(tp)
            if lane is None:
                lane = lanes[tp] = deque()
            lane.append(message)

    def release(self, durable: list[Any]) -> list[Any]:
        """The inputs that may be acknowledged now, given the newly ``durable`` ones: each
        topic-partition's in offset order (across topic-partitions in no particular order).

        Mostly a durable token is the first of its lane (records are processed in offset
        order): it goes at once, then whatever waited behind it."""
        done, lanes = self._done, self._open
        out: list[Any] = []
        for token in durable:
            message = getattr(token, "message", token)
            lane = lanes.get((message.topic, message.partition))
            if lane is None:
                continue  # revoked meanwhile: never acknowledged
            if lane and lane[0] is token:
                out.append(lane.popleft())
                while done and lane and id(lane[0]) in done:
                    del done[id(lane[0])]
                    out.append(lane.popleft())
            else:
                done[id(token)] = token
        return out

    def forget(self, gone: set[tuple[str, int]] | None) -> None:
        """Drop the revoked topic-partitions (None: all): their inputs are never returned."""
        for tp in list(self._open) if gone is None else gone:
            for token in self._open.pop(tp, ()):
                self._done.pop(id(token), None)


class _Unpersisted:
    """Table reads that see the writes not persisted yet: the pending ones, then those the
    background persist is writing, then the store."""

    def __init__(self, worker: StreamWorker) -> None:
        self._worker = worker

    def read(self, space: Space, key: str, source: InRecord) -> bytes | None:
        worker = self._worker
        write = worker._pending.get((space, key))
        if write is None:
            write = worker._inflight.get((space, key))
        if write is None:
            return worker.tables.read(space, key, source)
        if write.state is not None:  # a state kept as the object (evicted from the cache)
            return bytes(worker.domain.encode_state(write.state))
        return write.value  # type: ignore[no-any-return]


def _tp_of(token: Any) -> tuple[str, int]:
    """(topic, partition) of an input's token (a Faust message)."""
    message = getattr(token, "message", token)
    return message.topic, message.partition


def _tp(topic: str, partition: int) -> Any:
    return TopicPartition(topic, partition)


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


def _headers(message: Any) -> tuple[tuple[str, bytes], ...]:
    headers = message.headers
    return _header_pairs(headers) if headers else ()


def _header_pairs(headers: Any) -> tuple[tuple[str, bytes], ...]:
    """A message's headers (not empty: a list of pairs or a dict) as a tuple of pairs."""
    if isinstance(headers, dict):
        headers = headers.items()
    return tuple([(str(k), bytes(v)) for k, v in headers])


def _record(event: Any) -> InRecord:
    """An :class:`InRecord` of a Faust event or message."""
    message = getattr(event, "message", event)
    return InRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        timestamp=message.timestamp or 0.0,
        headers=_headers(message),
        token=message,
    )

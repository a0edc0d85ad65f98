"""The sink service: consume triggers, process them with bounded concurrency, publish a Send
Result for each, and commit offsets only behind durable outcomes.

Records are handled in batches (up to ``batch_size`` fetched records, one task each, at most
``concurrency`` records in flight). Per batch: decode (bad bytes -> dlq.sends) ->
:class:`~sinks.batch.BatchProcessor` (guards with one admission script call, render, one ESP
hand-over, ledger written in one call) -> park deferred triggers -> every Send Result (and
dead letter) produced and acknowledged by the broker (one flush) -> ledger marked published
(one call) -> offsets marked done. A batch is handled in rounds without a repeated trigger
id, and a trigger id is held by one batch at a time (:class:`~sinks.keylock.KeySetClaims`),
so a duplicate sees the first copy's published outcome. Offsets are committed in a loop, per
partition, up to the longest prefix of done records (:mod:`sinks.offsets`), and
synchronously when partitions are revoked or the service stops.

SIGTERM / SIGINT: stop taking records, let in-flight ones finish (``drain_s``), commit, close
and return (exit 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from confluent_kafka import KafkaError, Message, TopicPartition

from schemas import topics
from schemas.codec import encode_event
from schemas.deadletter import dead_letter_record
from schemas.errors import DecodeError
from schemas.models import SendOutcome, Trigger
from sinks.batch import BatchProcessor, rounds
from sinks.budget import Budget
from sinks.codec import decode_trigger, decode_trigger_fast, encode_trigger, with_not_before
from sinks.deferred import DeferredQueue
from sinks.esp import make_adapter
from sinks.kafka_io import AsyncProducer, Record, ThreadedConsumer
from sinks.keylock import KeySetClaims
from sinks.ledger import Ledger
from sinks.metrics import INFLIGHT, SENDS, SINK_DEAD_LETTERS
from sinks.offsets import OffsetTracker
from sinks.processor import DeadLetterNote, Decision, Parts, Processor
from sinks.ratelimit import RateLimiter
from sinks.render import Renderer
from sinks.settings import SinkSettings
from sinks.store import Store
from sinks.suppression import SuppressionList

log = logging.getLogger("personaflow.sink")

PUMP_STOP_S = 5.0
"""Longest the stop waits for the cancelled deferred-trigger pump."""

COMMIT_INTERVAL_S = 0.1
"""Most often the fetch loop commits (synchronously: a commit holds up the next fetch for one
broker round trip, so not on every 20 ms fetch); always at revocation and shutdown."""


class _Record(NamedTuple):
    """A fetched record and where it came from."""

    msg: Message
    tp: tuple[str, int]
    offset: int


@dataclass(frozen=True)
class Wiring:
    """Where the sink connects: endpoints and topic names."""

    bootstrap: str
    redis_url: str
    topic_prefix: str = ""
    consumer_overrides: dict[str, Any] = field(default_factory=dict)

    def topic(self, spec: topics.TopicSpec) -> str:
        return spec.full_name(self.topic_prefix)


class SinkService:
    """Runs the trigger consumer, the deferred-trigger pump and (optionally) the web server."""

    def __init__(self, settings: SinkSettings, wiring: Wiring, *, drain_s: float = 30.0) -> None:
        self.settings = settings
        self.wiring = wiring
        self.drain_s = drain_s
        self.instance = f"sink-{uuid.uuid4().hex[:12]}"
        self.store = Store(
            wiring.redis_url, settings.redis_key_prefix, retry_max_s=settings.redis_retry_max_s
        )
        self.suppression = SuppressionList(self.store)
        self.ledger = Ledger(self.store, int(settings.lease_s * 1000))
        self.deferred = DeferredQueue(self.store)
        self.adapter = make_adapter(settings)
        limiter = None
        if settings.rate_limit_per_s > 0:
            limiter = RateLimiter(
                self.store, self.adapter.name, settings.rate_limit_per_s, settings.rate_limit_burst
            )
        self.processor = Processor(
            Parts(
                settings=settings,
                renderer=Renderer(settings.templates_dir, shop_url=settings.shop_url),
                adapter=self.adapter,
                suppression=self.suppression,
                ledger=self.ledger,
                budget=Budget(self.store, settings.budget()),
                limiter=limiter,
            ),
            self.instance,
        )
        self.triggers_topic = wiring.topic(topics.TRIGGERS)
        self.results_topic = wiring.topic(topics.SEND_RESULTS)
        self.dlq_topic = wiring.topic(topics.DLQ_SENDS)
        self.producer: AsyncProducer | None = None
        self.consumer: ThreadedConsumer | None = None
        self.tracker = OffsetTracker()
        self.backlog: deque[Message] = deque()
        self.claims = KeySetClaims()
        self.batch = BatchProcessor(self.processor)
        self.tasks: dict[asyncio.Task[None], tuple[set[tuple[str, int]], int]] = {}
        self.inflight = 0  # records in the running batches
        self.stopping = asyncio.Event()
        self.ready = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.handled = 0
        self.assigned: set[tuple[str, int]] = set()

    # ------------------------------------------------------------------ lifecycle

    def request_stop(self) -> None:
        """Begin a graceful stop (signal handlers call this)."""
        self.stopping.set()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)

    async def start(self) -> None:
        """Connect the ESP, the producer and the consumer (subscribed to the trigger topic)."""
        self.loop = asyncio.get_running_loop()
        await self.adapter.start()
        await self.store.preload()
        compiled = await asyncio.to_thread(self.processor.p.renderer.warm)
        log.info("compiled %d templates", compiled)
        self.producer = AsyncProducer(self.wiring.bootstrap)
        self.consumer = ThreadedConsumer(
            self.wiring.bootstrap,
            self.settings.group_id,
            **{
                "client.id": self.instance,
                "session.timeout.ms": self.settings.session_timeout_ms,
                "heartbeat.interval.ms": max(300, self.settings.session_timeout_ms // 6),
                "fetch.wait.max.ms": self.settings.fetch_wait_max_ms,
                **self.wiring.consumer_overrides,
            },
        )
        self.consumer.consumer.subscribe(
            [self.triggers_topic], on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        self.ready = True

    async def run(self) -> None:
        """Consume until stopped, then drain, commit and close."""
        if self.consumer is None:
            await self.start()
        pump = asyncio.create_task(self._pump_deferred(), name="deferred-pump")
        try:
            await self._consume_loop()
        finally:
            self.ready = False
            await self._stop_pump(pump)
            await self._shutdown()

    async def _stop_pump(self, pump: asyncio.Task[None]) -> None:
        """Let the pump finish its current round and return (it watches ``stopping``); cancel
        it only when it does not. A pump cancelled in the middle of a redis-py call was seen
        to never finish (the cancellation swallowed), which hung the graceful stop."""
        self.stopping.set()
        await asyncio.wait({pump}, timeout=PUMP_STOP_S)
        if not pump.done():
            log.warning("deferred pump did not stop in %.0fs; cancelling it", PUMP_STOP_S)
            pump.cancel()
            await asyncio.wait({pump}, timeout=1.0)

    async def _shutdown(self) -> None:
        if self.tasks:
            log.info("draining %d in-flight triggers", len(self.tasks))
            _, pending = await asyncio.wait(list(self.tasks), timeout=self.drain_s)
            for task in pending:
                task.cancel()
        assert self.consumer is not None
        await self.consumer.run(self._commit_sync, None)
        await self.consumer.run(self.consumer.consumer.close)
        self.consumer.shutdown()
        if self.producer is not None:
            await asyncio.to_thread(self.producer.close)
        await self.adapter.close()
        await self.store.close()
        log.info("sink stopped after %d triggers", self.handled)

    # ------------------------------------------------------------------ consuming

    async def _consume_loop(self) -> None:
        """Fetch into a bounded backlog, dispatch batches while slots are free. The partitions
        are paused when the backlog is full and resumed when it is half empty (so pause/resume
        does not flap per record); every record fetched is kept, none is skipped."""
        assert self.consumer is not None
        consumer = self.consumer.consumer
        limit = self.settings.concurrency
        high, low = max(2 * limit, 64), max(limit, 32)
        paused = False
        next_commit = 0.0
        while not self.stopping.is_set():
            while self.backlog and self.inflight < limit:
                take = min(len(self.backlog), limit - self.inflight, self.settings.batch_size)
                self._dispatch([self.backlog.popleft() for _ in range(take)])
            if paused != (len(self.backlog) >= (low if paused else high)):
                paused = not paused
                await self.consumer.run(self._pause_all, paused)
            msgs = await self.consumer.run(consumer.consume, 500, 0.02)
            self.backlog.extend(msgs)
            if not msgs and self.inflight >= limit:
                await asyncio.wait(list(self.tasks), timeout=0.05,
                                   return_when=asyncio.FIRST_COMPLETED)
            if time.monotonic() >= next_commit:
                next_commit = time.monotonic() + COMMIT_INTERVAL_S
                ready = self.tracker.take_committable()
                if ready:
                    await self.consumer.run(self._commit_sync, ready)

    def _pause_all(self, pause: bool) -> None:
        assert self.consumer is not None
        consumer = self.consumer.consumer
        assignment = consumer.assignment()
        if assignment:
            (consumer.pause if pause else consumer.resume)(assignment)

    def _dispatch(self, msgs: list[Message]) -> None:
        """One task for a batch of fetched records."""
        records: list[_Record] = []
        for msg in msgs:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error: %s", err.name())
                continue
            record = _Record(msg, (msg.topic() or "", msg.partition() or 0), msg.offset() or 0)
            self.tracker.add(record.tp, record.offset)
            records.append(record)
        if not records:
            return
        task = asyncio.create_task(self._handle_batch(records))
        self.tasks[task] = ({r.tp for r in records}, len(records))
        self.inflight += len(records)
        INFLIGHT.set(self.inflight)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        _, count = self.tasks.pop(task, (set(), 0))
        self.inflight -= count
        INFLIGHT.set(self.inflight)
        if not task.cancelled() and task.exception() is not None:
            log.error("trigger batch failed: %r", task.exception())

    def _commit_sync(self, ready: dict[tuple[str, int], int] | None) -> None:
        """Commit positions on the consumer thread (``None``: everything ready now)."""
        assert self.consumer is not None
        if ready is None:
            ready = self.tracker.take_committable()
        if not ready:
            return
        offsets = [TopicPartition(t, p, pos) for (t, p), pos in ready.items()]
        try:
            self.consumer.consumer.commit(offsets=offsets, asynchronous=False)
        except Exception as exc:  # noqa: BLE001 - a failed commit only means a redelivery
            log.warning("offset commit failed (records will be redelivered): %r", exc)

    def _on_assign(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        self.assigned |= {(p.topic, p.partition) for p in partitions}
        log.info("assigned %s", sorted(p.partition for p in partitions))

    def _on_revoke(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        """Called on the consumer thread: let revoked partitions' work finish, then commit."""
        revoked = {(p.topic, p.partition) for p in partitions}
        log.info("revoked %s", sorted(p for _, p in revoked))
        kept = [m for m in self.backlog if (m.topic(), m.partition()) not in revoked]
        self.backlog.clear()
        self.backlog.extend(kept)  # not ours any more: the new owner reads them again
        if self.loop is not None and any(tps & revoked for tps, _ in self.tasks.values()):
            future = asyncio.run_coroutine_threadsafe(self._drain(revoked), self.loop)
            with contextlib.suppress(Exception):
                future.result(timeout=self.drain_s)
        ready = self.tracker.take_committable(revoked)
        if ready:
            self._commit_sync(ready)
        self.tracker.forget(revoked)
        self.assigned -= revoked

    async def _drain(self, revoked: set[tuple[str, int]]) -> None:
        tasks = [t for t, (tps, _) in self.tasks.items() if tps & revoked]
        if tasks:
            await asyncio.wait(tasks, timeout=self.drain_s)

    # ------------------------------------------------------------------ one batch

    async def _handle_batch(self, records: list[_Record]) -> None:
        """Decode the batch (undecodable records -> dlq.sends), then handle the triggers in
        rounds without a repeated trigger id (a duplicate sees the first copy's published
        outcome). Each step is retried with backoff on unexpected failures (broker hiccups,
        bugs): every step is idempotent, and the offsets stay uncommitted meanwhile."""
        decoded: list[tuple[_Record, Trigger]] = []
        decode = functools.partial(self._decode_all, records, decoded)
        if not await self._retrying("decoding a batch", decode):
            return
        triggers = [t for _, t in decoded]
        for indexes in rounds(triggers):
            items = [decoded[i] for i in indexes]
            owners = [self.processor.new_owner() for _ in items]
            if not await self._retrying("a batch", functools.partial(self._run_round, items,
                                                                     owners)):
                return
            self._done([r for r, _ in items])

    def _done(self, records: list[_Record]) -> None:
        for record in records:
            self.tracker.done(record.tp, record.offset)
        self.handled += len(records)

    async def _retrying(self, what: str, step: Callable[[], Awaitable[None]]) -> bool:
        """Run ``step`` until it succeeds (True) or the sink stops (False: redelivered)."""
        delay = 0.2
        while True:
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retried; the records are never dropped
                if self.stopping.is_set():
                    log.warning("giving up on %s at shutdown (redelivered later): %r", what, exc)
                    return False
                log.warning("%s failed, retrying in %.1fs: %r", what, delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            return True

    async def _decode_all(
        self, records: list[_Record], decoded: list[tuple[_Record, Trigger]]
    ) -> None:
        """Fill ``decoded``; dead-letter what does not decode (a retriable error raises)."""
        decoded.clear()
        letters: list[tuple[_Record, DeadLetterNote]] = []
        for record in records:
            try:
                decoded.append((record, decode_trigger_fast(record.msg.value() or b"")))
            except DecodeError as exc:
                if exc.retriable:
                    raise
                letters.append((record, DeadLetterNote(exc.reason, exc.error_type)))
        if letters:
            assert self.producer is not None
            await self.producer.send_all([self._letter(r.msg, note) for r, note in letters])
            for _, note in letters:
                SINK_DEAD_LETTERS.labels(note.reason.split(":")[0].split(" ")[0]).inc()
            self._done([r for r, _ in letters])

    async def _run_round(self, items: list[tuple[_Record, Trigger]], owners: list[str]) -> None:
        """Decide, park deferred triggers, publish every Send Result (and dead letter) and
        wait for the broker, then note them published in the ledger."""
        triggers = [t for _, t in items]
        async with self.claims.hold([t.trigger_id for t in triggers]):
            decisions = await self.batch.process(triggers, owners)
            parked = [
                self.deferred.add(t.trigger_id, encode_trigger(with_not_before(t, d.defer_until)),
                                  int(d.defer_until * 1000))
                for t, d in zip(triggers, decisions, strict=True) if d.defer_until is not None
            ]
            if parked:
                await asyncio.gather(*parked)
            await self._publish_all(items, decisions)
            await self.ledger.mark_published_many(
                [t.trigger_id for t, d in zip(triggers, decisions, strict=True)
                 if d.record_published]
            )

    async def _publish_all(
        self, items: list[tuple[_Record, Trigger]], decisions: list[Decision]
    ) -> None:
        """Produce the Send Results (and dead letters) and wait for the broker's acks."""
        assert self.producer is not None
        out: list[Record] = []
        for (record, trigger), decision in zip(items, decisions, strict=True):
            out.append((self.results_topic, encode_event(decision.result), trigger.customer_id,
                        None))
            if decision.dead_letter is not None:
                out.append(self._letter(record.msg, decision.dead_letter))
        await self.producer.send_all(out)
        counts: Counter[tuple[str, str, str, str]] = Counter()
        debug = log.isEnabledFor(logging.DEBUG)
        for decision in decisions:
            r = decision.result
            counts[(r.outcome.value, r.trigger_type, r.persona or "", r.variant or "")] += 1
            if decision.dead_letter is not None:
                reason = decision.dead_letter.reason
                SINK_DEAD_LETTERS.labels(reason.split(":")[0].split(" ")[0]).inc()
            if debug and r.outcome is not SendOutcome.DUPLICATE:
                log.debug("trigger %s -> %s (%s)", r.trigger_id, r.outcome.value, r.reason or "")
        for labels, n in counts.items():
            SENDS.labels(*labels).inc(n)

    def _letter(self, msg: Message, note: DeadLetterNote) -> Record:
        """The dlq.sends record for ``msg``."""
        key = msg.key()
        value, headers = dead_letter_record(
            msg.value() or b"", note.reason, note.error_type, msg.topic(), msg.partition(),
            msg.offset(), key if isinstance(key, bytes) else None,
        )
        return (self.dlq_topic, value, key, list(headers))

    # ------------------------------------------------------------------ deferred triggers

    async def _pump_deferred(self) -> None:
        """Move due deferred triggers back onto the trigger topic (one instance at a time)."""
        period = self.settings.defer_poll_s
        while not self.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), period)
            if self.stopping.is_set():
                return
            try:
                if await self.deferred.lead(self.instance, int(period * 3000)):
                    await self._pump_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the pump retries next period
                log.warning("deferred pump: %r", exc)

    async def _pump_once(self) -> int:
        assert self.producer is not None
        due = await self.deferred.due(int(time.time() * 1000))
        if not due:
            return 0
        sends = []
        for _trigger_id, payload in due:
            key = decode_trigger(payload).customer_id
            sends.append(self.producer.send(self.triggers_topic, payload, key=key))
        await asyncio.gather(*sends)
        await self.deferred.remove([trigger_id for trigger_id, _ in due])
        log.info("re-queued %d deferred triggers", len(due))
        return len(due)

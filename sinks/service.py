"""The sink service: consume triggers, process them with bounded concurrency, publish a Send
Result for each, and commit offsets only behind durable outcomes.

Per record: decode (bad bytes -> dlq.sends) -> :class:`~sinks.processor.Processor` (ledger
written) -> park it when deferred -> Send Result (and dead letter) produced and acknowledged
by the broker -> ledger marked published -> offset marked done. Offsets are committed in a
loop, per partition, up to the longest prefix of done records (:mod:`sinks.offsets`), and
synchronously when partitions are revoked or the service stops.

SIGTERM / SIGINT: stop taking records, let in-flight ones finish (``drain_s``), commit, close
and return (exit 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, Message, TopicPartition

from schemas import topics
from schemas.codec import encode_event
from schemas.deadletter import dead_letter_record
from schemas.errors import DecodeError
from schemas.models import SendOutcome, Trigger
from sinks.budget import Budget
from sinks.codec import decode_trigger, encode_trigger, with_not_before
from sinks.deferred import DeferredQueue
from sinks.esp import make_adapter
from sinks.kafka_io import AsyncProducer, ThreadedConsumer
from sinks.keylock import KeyLocks
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
        self.keylocks = KeyLocks()
        self.tasks: dict[asyncio.Task[None], tuple[str, int]] = {}
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
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            await self._shutdown()

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
        """Fetch into a bounded backlog, dispatch while slots are free. The partitions are
        paused when the backlog is full and resumed when it is half empty (so pause/resume
        does not flap per record); every record fetched is kept, none is skipped."""
        assert self.consumer is not None
        consumer = self.consumer.consumer
        limit = self.settings.concurrency
        high, low = max(2 * limit, 64), max(limit, 32)
        paused = False
        while not self.stopping.is_set():
            while self.backlog and len(self.tasks) < limit:
                self._dispatch(self.backlog.popleft())
            if paused != (len(self.backlog) >= (low if paused else high)):
                paused = not paused
                await self.consumer.run(self._pause_all, paused)
            msgs = await self.consumer.run(consumer.consume, 500, 0.02)
            self.backlog.extend(msgs)
            if not msgs and len(self.tasks) >= limit:
                await asyncio.wait(list(self.tasks), timeout=0.05,
                                   return_when=asyncio.FIRST_COMPLETED)
            ready = self.tracker.take_committable()
            if ready:
                await self.consumer.run(self._commit_sync, ready)

    def _pause_all(self, pause: bool) -> None:
        assert self.consumer is not None
        consumer = self.consumer.consumer
        assignment = consumer.assignment()
        if assignment:
            (consumer.pause if pause else consumer.resume)(assignment)

    def _dispatch(self, msg: Message) -> None:
        err = msg.error()
        if err is not None:
            if err.code() != KafkaError._PARTITION_EOF:
                log.warning("consumer error: %s", err.name())
            return
        tp = (msg.topic() or "", msg.partition() or 0)
        offset = msg.offset() or 0
        self.tracker.add(tp, offset)
        task = asyncio.create_task(self._handle(msg, tp, offset))
        self.tasks[task] = tp
        INFLIGHT.set(len(self.tasks))
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.pop(task, None)
        INFLIGHT.set(len(self.tasks))
        if not task.cancelled() and task.exception() is not None:
            log.error("trigger task failed: %r", task.exception())

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
        if self.loop is not None and any(tp in revoked for tp in self.tasks.values()):
            future = asyncio.run_coroutine_threadsafe(self._drain(revoked), self.loop)
            with contextlib.suppress(Exception):
                future.result(timeout=self.drain_s)
        ready = self.tracker.take_committable(revoked)
        if ready:
            self._commit_sync(ready)
        self.tracker.forget(revoked)
        self.assigned -= revoked

    async def _drain(self, revoked: set[tuple[str, int]]) -> None:
        tasks = [t for t, tp in self.tasks.items() if tp in revoked]
        if tasks:
            await asyncio.wait(tasks, timeout=self.drain_s)

    # ------------------------------------------------------------------ one record

    async def _handle(self, msg: Message, tp: tuple[str, int], offset: int) -> None:
        """Handle one record; on unexpected failures (broker hiccups, bugs) try again with
        backoff: every step is idempotent, and the offset stays uncommitted meanwhile."""
        delay = 0.2
        while True:
            try:
                await self._handle_once(msg)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retried; the record is never dropped
                if self.stopping.is_set():
                    log.warning("giving up on a record at shutdown (redelivered later): %r", exc)
                    return
                log.warning("record %s/%d failed, retrying in %.1fs: %r", tp[0], offset, delay,
                            exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            self.tracker.done(tp, offset)
            self.handled += 1
            return

    async def _handle_once(self, msg: Message) -> None:
        raw = msg.value() or b""
        try:
            trigger = decode_trigger(raw)
        except DecodeError as exc:
            if exc.retriable:
                raise
            await self._dead_letter(raw, msg, DeadLetterNote(exc.reason, exc.error_type))
            return
        async with self.keylocks.hold(trigger.trigger_id):
            decision = await self.processor.process(trigger)
            if decision.defer_until is not None:
                payload = encode_trigger(with_not_before(trigger, decision.defer_until))
                due_ms = int(decision.defer_until * 1000)
                await self.deferred.add(trigger.trigger_id, payload, due_ms)
            await self._publish(trigger, decision, raw, msg)
            await self.processor.published(trigger, decision)

    async def _publish(
        self, trigger: Trigger, decision: Decision, raw: bytes, msg: Message
    ) -> None:
        """Produce the Send Result (and dead letter) and wait for the broker's ack."""
        assert self.producer is not None
        sends = [self.producer.send(self.results_topic, encode_event(decision.result),
                                    key=trigger.customer_id)]
        if decision.dead_letter is not None:
            sends.append(self._dead_letter(raw, msg, decision.dead_letter))
        await asyncio.gather(*sends)
        r = decision.result
        SENDS.labels(r.outcome.value, r.trigger_type, r.persona or "", r.variant or "").inc()
        if r.outcome is not SendOutcome.DUPLICATE:
            log.debug("trigger %s -> %s (%s)", r.trigger_id, r.outcome.value, r.reason or "")

    async def _dead_letter(self, raw: bytes, msg: Message, note: DeadLetterNote) -> None:
        assert self.producer is not None
        value, headers = dead_letter_record(
            raw, note.reason, note.error_type, msg.topic(), msg.partition(), msg.offset(),
            msg.key() if isinstance(msg.key(), bytes) else None,
        )
        await self.producer.send(self.dlq_topic, value, key=msg.key(), headers=list(headers))
        SINK_DEAD_LETTERS.labels(note.reason.split(":")[0].split(" ")[0]).inc()

    # ------------------------------------------------------------------ deferred triggers

    async def _pump_deferred(self) -> None:
        """Move due deferred triggers back onto the trigger topic (one instance at a time)."""
        period = self.settings.defer_poll_s
        while True:
            await asyncio.sleep(period)
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

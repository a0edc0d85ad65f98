"""Batch intake: hand fetched records to the processor in batches, without Faust's per-event path.

Measured (docs/streams.md): Faust delivers each record through ``Consumer._drain_messages``
(one ``wait_first`` = two tasks per record), the conductor (a lock per record), the channel
queue and the stream (an Event per record); that path alone caps a worker at ~10k records/s
and, because a ``take()`` buffer stops filling while its batch is processed, at a fraction of
that with real work. Here the consumer's drain loop is replaced, on this app's consumer only:
each ``getmany`` result is split into records of the worker's own topics, queued as one batch
for :class:`BatchIntake`'s processing task, and everything else (the leader topic, standby
changelogs) still goes through Faust's normal callback. Faust keeps doing the rest: group
membership, assignment, table recovery, commits of acknowledged offsets.

A record is acknowledged (``consumer.ack``) only after its batch's outputs and table writes
were acknowledged by the broker, so Faust never commits an offset whose effects could be lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from faust.types.tuples import ack_lock
from mode.utils.futures import notify

from streams import metrics

log = logging.getLogger("personaflow.streams")

Handler = Callable[[list[Any]], Awaitable[list[Any]]]
"""Processes a batch (maybe empty) and returns the records that may now be acknowledged."""


class BatchIntake:
    """Replaces the app consumer's drain loop and runs the batch-processing task."""

    def __init__(
        self,
        app: Any,
        topics: set[str],
        handler: Handler,
        max_batch: int,
        idle_s: float = 0.25,
        more: Callable[[], bool] | None = None,
        inputs: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.idle_s = idle_s
        self.more = more
        """Whether the handler has records ready beyond its last batch (call it again at
        once, without waiting for a fetch)."""
        self.topics = topics
        self.handler = handler
        self.max_batch = max_batch
        self.inputs = inputs
        """The input topics, whose records' fetch delay is measured (not the internal ones)."""
        self.queue: asyncio.Queue[tuple[float, list[Any]]] = asyncio.Queue(maxsize=4)
        """Fetched batches, each with the time it was fetched."""

    def install(self) -> None:
        """Patch the app's consumer (call when the app starts, before fetching begins)."""
        consumer = self.app.consumer
        consumer._drain_messages = self._drain

    async def _drain(self, fetcher: Any) -> None:
        """Consumer drain loop: getmany -> our batch queue, or Faust's callback."""
        consumer = self.app.consumer
        consumer_stopped = consumer._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        callback = consumer.callback
        mine = self.topics
        read_offset = consumer._read_offset
        acks_enabled_for = consumer.app.topics.acks_enabled_for
        unacked = consumer._unacked_messages
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                batch: list[Any] = []
                async for tp, message in consumer.getmany(timeout=1.0):
                    # Faust's read-offset bookkeeping (drop re-deliveries, record gaps for
                    # commits), inline: no coroutine per record
                    offset = message.offset
                    read = read_offset[tp]
                    if read is not None and offset < read:
                        continue
                    if read and offset - read > 1 and acks_enabled_for(message.topic):
                        await consumer._add_gap(tp, read + 1, offset)
                    read_offset[tp] = offset
                    if message.topic in mine:
                        if not message.tracked:
                            message.tracked = True
                            unacked.add(message)
                        batch.append(message)
                    else:
                        await callback(message)
                if batch:
                    fetched_at = time.time()
                    observe_fetch_delay(batch, self.inputs, fetched_at)
                    await self.queue.put((fetched_at, batch))
                else:
                    await asyncio.sleep(0)
        except asyncio.CancelledError:
            if self.app.should_stop:
                return
            raise
        except consumer.consumer_stopped_errors:
            if self.app.should_stop:
                return
            raise

    async def run(self) -> None:
        """The processing task: batches from the queue -> handler -> acknowledge."""
        while True:
            fetched = await self._next()
            size = len(fetched[0][1]) if fetched else 0
            while not self.queue.empty() and size < self.max_batch:
                fetched.append(self.queue.get_nowait())
                size += len(fetched[-1][1])
            messages = self._assigned(_waited(fetched, time.time()))
            acknowledge(self.app.consumer, await self.handler(messages))

    async def _next(self) -> list[tuple[float, list[Any]]]:
        """The next fetched batch, or none: when records held by the handler are ready (no
        fetch to wait for), or after ``idle_s`` without one (the handler persists then)."""
        if self.more is not None and self.more() and self.queue.empty():
            await asyncio.sleep(0)
            return []
        try:
            return [await asyncio.wait_for(self.queue.get(), timeout=self.idle_s)]
        except TimeoutError:
            return []

    def _assigned(self, messages: list[Any]) -> list[Any]:
        """Drop records of partitions no longer assigned (fetched before a rebalance)."""
        assigned = self.app.consumer.assignment()
        keep = [m for m in messages if m.tp in assigned]
        if len(keep) != len(messages):
            unacked = self.app.consumer._unacked_messages
            for message in messages:
                if message.tp not in assigned:
                    unacked.discard(message)
            log.info("dropped %d records of revoked partitions", len(messages) - len(keep))
        return keep


def observe_fetch_delay(messages: Sequence[Any], inputs: frozenset[str], now: float) -> None:
    """``personaflow_fetch_delay_seconds``: how long the input records of a fetched batch took
    from their timestamp (the producer's create time) to the worker's intake."""
    delays = [max(0.0, now - m.timestamp) for m in messages if m.topic in inputs and m.timestamp]
    metrics.observe_many(metrics.FETCH_DELAY, delays)


def _waited(fetched: list[tuple[float, list[Any]]], now: float) -> list[Any]:
    """The records of ``fetched`` batches, in order; ``personaflow_intake_wait_seconds``
    counts how long each waited in the queue for the processing task."""
    messages: list[Any] = []
    waits: list[float] = []
    for fetched_at, batch in fetched:
        messages.extend(batch)
        waits.extend([max(0.0, now - fetched_at)] * len(batch))
    metrics.observe_many(metrics.INTAKE_WAIT, waits)
    return messages


def acknowledge(consumer: Any, messages: Sequence[Any]) -> None:
    """``consumer.ack(message)`` for each of ``messages`` (Faust then commits them): the same
    bookkeeping as faust-streaming 0.15's ``Consumer.ack``, inlined under one hold of its ack
    lock, with the topic check once per topic. Faust's ack per record took ~2.5 us of the
    worker's ~150 us per event (py-spy, session 8); ``tests/unit/test_streams_intake_ack.py``
    checks the effects equal Faust's own ack on a real Faust consumer."""
    if not messages:
        return
    enabled_for = consumer.app.topics.acks_enabled_for
    committed_offsets = consumer._committed_offset
    acked_index, acked = consumer._acked_index, consumer._acked
    unacked = consumer._unacked_messages
    enabled: dict[str, bool] = {}
    count = 0
    with ack_lock:
        try:
            for message in messages:
                if message.acked:
                    continue
                message.acked = True
                topic = message.topic
                on = enabled.get(topic)
                if on is None:
                    on = enabled[topic] = bool(enabled_for(topic))
                if not on:
                    continue
                tp, offset = message.tp, message.offset
                committed = committed_offsets[tp]
                if committed is None or offset >= committed:
                    index = acked_index[tp]
                    if offset not in index:
                        unacked.discard(message)
                        index.add(offset)
                        acked[tp].append(offset)
                        count += 1
        finally:
            consumer._n_acked += count
            notify(consumer._waiting_for_ack)

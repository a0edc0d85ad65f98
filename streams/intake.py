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
from collections.abc import Awaitable, Callable
from typing import Any

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
    ) -> None:
        self.app = app
        self.idle_s = idle_s
        self.more = more
        """Whether the handler has records ready beyond its last batch (call it again at
        once, without waiting for a fetch)."""
        self.topics = topics
        self.handler = handler
        self.max_batch = max_batch
        self.queue: asyncio.Queue[list[Any]] = asyncio.Queue(maxsize=4)

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
                    await self.queue.put(batch)
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
            if self.more is not None and self.more() and self.queue.empty():
                messages = []  # records held by the handler are ready: no fetch to wait for
                await asyncio.sleep(0)
            else:
                try:
                    messages = await asyncio.wait_for(self.queue.get(), timeout=self.idle_s)
                except TimeoutError:
                    messages = []  # idle: let the handler persist what is pending
            while not self.queue.empty() and len(messages) < self.max_batch:
                messages.extend(self.queue.get_nowait())
            messages = self._assigned(messages)
            done = await self.handler(messages)
            ack = self.app.consumer.ack
            for message in done:
                ack(message)

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


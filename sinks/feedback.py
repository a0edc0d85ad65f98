"""The suppression feed: the sink's own consumer of ``events.identity`` and
``events.engagement``, applying Consent Changed, Email Unsubscribed, Email Bounced (hard),
Email Spam Reported and Erasure Requested to the suppression list (:mod:`sinks.suppression`).

Offsets are committed after the Redis writes, so an event is applied at least once (applying
one twice changes nothing). Undecodable records are skipped here: the stream workers
dead-letter them from the same topics.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from confluent_kafka import TopicPartition

from schemas.codec import decode_event
from schemas.errors import DecodeError
from sinks.kafka_io import ThreadedConsumer
from sinks.metrics import SUPPRESSION_UPDATES
from sinks.suppression import Action, SuppressionList, action_for

log = logging.getLogger("personaflow.sink.feedback")


class SuppressionFeed:
    """Consumes identity + engagement events into the suppression list."""

    def __init__(
        self,
        bootstrap: str,
        group: str,
        topic_names: list[str],
        suppression: SuppressionList,
        **overrides: Any,
    ) -> None:
        self.consumer = ThreadedConsumer(bootstrap, group, **overrides)
        self.topics = topic_names
        self.suppression = suppression
        self.applied = 0

    async def run(self, stopping: asyncio.Event) -> None:
        """Consume until ``stopping`` is set; then commit and close."""
        c = self.consumer.consumer
        c.subscribe(self.topics)
        try:
            while not stopping.is_set():
                msgs = await self.consumer.run(c.consume, 500, 0.2)
                positions = await self._apply_retrying(msgs, stopping)
                if positions:
                    offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items()]
                    await self.consumer.run(_commit, c, offsets)
        finally:
            await self.consumer.run(c.close)
            self.consumer.shutdown()

    async def _apply_retrying(
        self, msgs: list[Any], stopping: asyncio.Event
    ) -> dict[tuple[str, int], int]:
        """Apply a batch until it succeeds (applying twice is harmless); nothing is skipped."""
        delay = 0.2
        while True:
            try:
                return await self._apply(msgs)
            except Exception as exc:  # noqa: BLE001 - retried, never skipped
                if stopping.is_set():
                    return {}  # not committed: re-read after a restart
                log.warning("suppression feed batch failed, retrying: %r", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _apply(self, msgs: list[Any]) -> dict[tuple[str, int], int]:
        """Apply a batch: in order per customer, customers concurrently (one Redis round trip
        per step thanks to auto-pipelining). Returns the positions to commit."""
        positions: dict[tuple[str, int], int] = {}
        per_customer: dict[str, list[Action]] = {}
        for msg in msgs:
            if msg.error() is not None:
                continue
            positions[(msg.topic(), msg.partition())] = msg.offset() + 1
            try:
                event = decode_event(msg.value())
            except DecodeError as exc:
                if exc.retriable:  # registry unreachable: try the batch again
                    raise
                continue
            action = action_for(event)
            if action is not None:
                per_customer.setdefault(action.customer_id, []).append(action)
        await asyncio.gather(*(self._apply_in_order(a) for a in per_customer.values()))
        return positions

    async def _apply_in_order(self, actions: list[Action]) -> None:
        for action in actions:
            if await self.suppression.apply(action):
                self.applied += 1
                reason = action.suppress.reason if action.suppress else "consent_granted"
                SUPPRESSION_UPDATES.labels(reason).inc()


def _commit(consumer: Any, offsets: list[TopicPartition]) -> None:
    try:
        consumer.commit(offsets=offsets, asynchronous=False)
    except Exception as exc:  # noqa: BLE001 - a failed commit means re-applying, harmless
        log.warning("suppression feed commit failed: %r", exc)

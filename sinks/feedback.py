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
from sinks.suppression import SuppressionList, action_for

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
                positions = await self._apply(msgs)
                if positions:
                    offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items()]
                    await self.consumer.run(_commit, c, offsets)
        finally:
            await self.consumer.run(c.close)
            self.consumer.shutdown()

    async def _apply(self, msgs: list[Any]) -> dict[tuple[str, int], int]:
        positions: dict[tuple[str, int], int] = {}
        for msg in msgs:
            if msg.error() is not None:
                continue
            positions[(msg.topic(), msg.partition())] = msg.offset() + 1
            try:
                event = decode_event(msg.value())
            except DecodeError:
                continue
            action = action_for(event)
            if action is None:
                continue
            if await self.suppression.apply(action):
                self.applied += 1
                reason = action.suppress.reason if action.suppress else "consent_granted"
                SUPPRESSION_UPDATES.labels(reason).inc()
        return positions


def _commit(consumer: Any, offsets: list[TopicPartition]) -> None:
    try:
        consumer.commit(offsets=offsets, asynchronous=False)
    except Exception as exc:  # noqa: BLE001 - a failed commit means re-applying, harmless
        log.warning("suppression feed commit failed: %r", exc)

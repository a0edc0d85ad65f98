"""Deferred triggers: parked in Redis until due, then re-queued onto the trigger topic.

``<prefix>deferred`` is a sorted set (member trigger id, score due time in ms) and
``<prefix>deferred:payload`` a hash holding each trigger's encoded bytes (with ``not_before``
set to the due time). A pump in every sink instance (one at a time, by a short Redis lock)
moves due triggers back to Kafka: produce, flush, then remove, so a crash in between
re-queues a trigger twice at worst, which the ledger absorbs. Deferring the same trigger
twice keeps one entry.
"""

from __future__ import annotations

from sinks.store import Store


class DeferredQueue:
    """Triggers waiting for their time (budget, quiet hours, not_before)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.zkey = store.key("deferred")
        self.hkey = store.key("deferred", "payload")
        self.lock_key = store.key("deferred", "lock")

    async def add(self, trigger_id: str, payload: bytes, due_ms: int) -> None:
        """Park ``payload`` (an encoded trigger) until ``due_ms``."""

        async def op() -> None:
            pipe = self.store.redis.pipeline(transaction=True)
            pipe.hset(self.hkey, trigger_id, payload)
            pipe.zadd(self.zkey, {trigger_id: due_ms})
            await pipe.execute()

        await self.store.call(op, "deferred.add")

    async def due(self, now_ms: int, limit: int = 500) -> list[tuple[str, bytes]]:
        """Up to ``limit`` triggers due at ``now_ms``: ``(trigger id, payload)``."""

        async def op() -> list[tuple[str, bytes]]:
            found = await self.store.redis.zrangebyscore(self.zkey, "-inf", now_ms, 0, limit)
            ids = [i.decode() if isinstance(i, bytes) else str(i) for i in found]
            if not ids:
                return []
            payloads = await self.store.redis.hmget(self.hkey, ids)
            return [
                (i, p) for i, p in zip(ids, payloads, strict=True) if isinstance(p, bytes)
            ]

        return await self.store.call(op, "deferred.due")

    async def remove(self, trigger_ids: list[str]) -> None:
        """Forget triggers that are back on the topic."""
        if not trigger_ids:
            return

        async def op() -> None:
            pipe = self.store.redis.pipeline(transaction=True)
            pipe.zrem(self.zkey, *trigger_ids)
            pipe.hdel(self.hkey, *trigger_ids)
            await pipe.execute()

        await self.store.call(op, "deferred.remove")

    async def lead(self, owner: str, ttl_ms: int) -> bool:
        """Take or keep the pump lock (only one instance pumps at a time)."""

        async def op() -> bool:
            redis = self.store.redis
            if await redis.set(self.lock_key, owner, nx=True, px=ttl_ms):
                return True
            current = await redis.get(self.lock_key)
            if current in (owner, owner.encode()):
                await redis.pexpire(self.lock_key, ttl_ms)
                return True
            return False

        return await self.store.call(op, "deferred.lead")

    async def size(self) -> int:
        """How many triggers are waiting."""
        return int(await self.store.call(lambda: self.store.redis.zcard(self.zkey)))

"""Redis access shared by the sink's stores (ledger, budget, suppression, rate limit, deferred).

Every store call goes through :meth:`Store.call`: while Redis does not answer, the call waits
and tries again (exponential backoff up to ``retry_max_s``) instead of failing the trigger, so
an outage pauses the sink (no new work starts: all concurrency slots are waiting) and nothing
is lost or decided twice. Calls are idempotent, so repeating one after a lost reply is safe.
:class:`~sinks.errors.StoreUnavailableError` is raised only when ``give_up_after`` is set and
exceeded, or when the store is closed while waiting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from sinks.errors import StoreUnavailableError

log = logging.getLogger("personaflow.sink.store")
T = TypeVar("T")
_TRANSIENT = (RedisConnectionError, RedisTimeoutError, OSError)


class Store:
    """A Redis client with a key prefix and outage-tolerant calls."""

    def __init__(
        self,
        url: str,
        prefix: str = "pf:sink:",
        *,
        retry_max_s: float = 5.0,
        give_up_after: float | None = None,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.retry_max_s = retry_max_s
        self.give_up_after = give_up_after
        self.redis: aioredis.Redis = aioredis.Redis.from_url(
            url, socket_timeout=5.0, socket_connect_timeout=2.0, health_check_interval=10
        )
        self.closed = False
        self.available = True

    def key(self, *parts: str) -> str:
        """A prefixed key, e.g. ``key("ledger", trigger_id)``."""
        return self.prefix + ":".join(parts)

    async def call(self, op: Callable[[], Awaitable[T]], what: str = "redis") -> T:
        """Run ``op`` until Redis answers (see the module docs)."""
        delay = 0.05
        started = time.monotonic()
        while True:
            try:
                result = await op()
            except _TRANSIENT as exc:
                if self.closed:
                    raise StoreUnavailableError(f"{what}: store closed during outage") from exc
                waited = time.monotonic() - started
                if self.give_up_after is not None and waited > self.give_up_after:
                    raise StoreUnavailableError(f"{what}: redis unavailable") from exc
                if self.available:
                    log.warning("redis unavailable (%s: %s); pausing", what, type(exc).__name__)
                    self.available = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)
                continue
            if not self.available:
                log.warning("redis is back after %.1fs", time.monotonic() - started)
                self.available = True
            return result

    async def ping(self) -> bool:
        """True when Redis answers now (no retries): for readiness checks."""
        try:
            return bool(await self.redis.ping())
        except _TRANSIENT:
            return False

    async def close(self) -> None:
        """Stop retrying and close the connection pool."""
        self.closed = True
        await self.redis.aclose()

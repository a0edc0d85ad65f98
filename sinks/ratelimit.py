"""A rate limit per ESP adapter, shared by every sink instance: a token bucket in Redis (Lua).

Key ``<prefix>rate:<esp>`` holds the bucket (tokens, last refill ms). :meth:`RateLimiter.acquire`
takes ``n`` tokens or waits the time the script says the bucket needs to refill. Time comes
from the Redis server (``TIME``), so instance clocks do not matter.
"""

from __future__ import annotations

import asyncio

from sinks.store import Store

_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or burst
local ts = tonumber(b[2]) or now
tokens = math.min(burst, tokens + (now - ts) * rate / 1000)
local wait = 0
if tokens >= n then
  tokens = tokens - n
else
  wait = math.ceil((n - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], 60000)
return wait
"""


class RateLimiter:
    """``rate_per_s`` sends per second across all instances, bursts up to ``burst``."""

    def __init__(self, store: Store, esp: str, rate_per_s: float, burst: int) -> None:
        self.store = store
        self.rate = rate_per_s
        self.burst = burst
        self.key = store.key("rate", esp)
        self._take = store.script(_TAKE)

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    async def try_acquire(self, n: int = 1) -> float:
        """Take ``n`` tokens: 0.0 when granted, else seconds to wait before asking again."""
        if not self.enabled:
            return 0.0
        n = min(n, self.burst)
        args: list[str | int | float] = [self.rate, self.burst, n]
        wait_ms = await self.store.exec("evalsha", self._take, 1, self.key, *args)
        return int(wait_ms) / 1000.0

    async def acquire(self, n: int = 1) -> None:
        """Wait until ``n`` tokens are granted."""
        while True:
            wait = await self.try_acquire(n)
            if wait <= 0:
                return
            await asyncio.sleep(wait)

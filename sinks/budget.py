"""The frequency budget, enforced globally across sink instances with one Lua script.

One sorted set per customer (``<prefix>budget:<customer_id>``): member = trigger id, score =
send time (epoch ms). :meth:`Budget.reserve` atomically drops entries older than the longest
window, counts the sends inside each window of :class:`processors.policy.BudgetPolicy`
(``per_day`` in any 24 h, ``per_week`` in any 7 days; a send exactly one window earlier is in
a new window, as in :func:`processors.policy.budget_check`) and either records this trigger
(allowed) or returns the earliest time a send would fit. Reserving the same trigger twice is a
no-op (allowed again), so retries are safe. A send that does not happen gives its slot back
(:meth:`Budget.release`).
"""

from __future__ import annotations

from dataclasses import dataclass

from processors.policy import BudgetPolicy
from sinks.store import Store

RESERVE_FN = """
local function reserve(key, now, member, caps)
  local longest = 0
  for i = 1, #caps, 2 do longest = math.max(longest, tonumber(caps[i])) end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - longest)
  if redis.call('ZSCORE', key, member) then return {1, now} end
  local next_ok = 0
  for i = 1, #caps, 2 do
    local window = tonumber(caps[i])
    local cap = tonumber(caps[i + 1])
    if cap <= 0 then return {0, -1} end
    local inside = redis.call('ZRANGEBYSCORE', key, '(' .. (now - window), '+inf', 'WITHSCORES')
    local count = #inside / 2
    if count >= cap then
      local oldest = tonumber(inside[(count - cap) * 2 + 2])
      next_ok = math.max(next_ok, oldest + window)
    end
  end
  if next_ok > 0 then return {0, next_ok} end
  redis.call('ZADD', key, now, member)
  redis.call('PEXPIRE', key, longest)
  return {1, now}
end
"""
"""The budget reservation as a Lua function (shared with :mod:`sinks.admit`).
``caps``: a flat list ``window_ms, cap, window_ms, cap, ...``."""

_RESERVE = RESERVE_FN + """
return reserve(KEYS[1], tonumber(ARGV[1]), ARGV[2], {unpack(ARGV, 3)})
"""


@dataclass(frozen=True, slots=True)
class BudgetDecision:
    """``allowed``; else ``next_ms`` = earliest send time (None: a cap of 0 forbids sending)."""

    allowed: bool
    next_ms: int | None


def parse_budget(raw: list[int]) -> BudgetDecision:
    """The :class:`BudgetDecision` for the reply ``{ok, when}`` of the ``reserve`` function."""
    ok, when = int(raw[0]), int(raw[1])
    if ok == 1:
        return BudgetDecision(True, when)
    return BudgetDecision(False, None if when < 0 else when)


class Budget:
    """Per-customer send caps shared by every sink instance."""

    def __init__(self, store: Store, policy: BudgetPolicy) -> None:
        self.store = store
        self.policy = policy
        self._reserve = store.script(_RESERVE)
        self._caps: list[int] = []
        for window, cap in policy.caps():
            self._caps += [int(window * 1000), cap]
        self.key_prefix = store.key("budget", "")
        """Every customer's key is this prefix + the customer id."""

    def _key(self, customer_id: str) -> str:
        return self.key_prefix + customer_id

    async def reserve(self, customer_id: str, trigger_id: str, now_ms: int) -> BudgetDecision:
        """Take a send slot for ``trigger_id`` now, or say when one frees up."""
        args: list[str | int] = [now_ms, trigger_id, *self._caps]
        raw = await self.store.exec("evalsha", self._reserve, 1, self._key(customer_id), *args)
        return parse_budget(raw)

    @property
    def caps(self) -> list[int]:
        """``[window_ms, cap, ...]`` as the Lua ``reserve`` function takes them."""
        return list(self._caps)

    def key(self, customer_id: str) -> str:
        """The Redis key of ``customer_id``'s send history."""
        return self.key_prefix + customer_id

    async def release(self, customer_id: str, trigger_id: str) -> None:
        """Give back the slot of a send that did not happen."""
        await self.store.exec("zrem", self._key(customer_id), trigger_id)

    async def sent_at(self, customer_id: str) -> list[float]:
        """Recorded send times (epoch seconds), oldest first."""
        key = self._key(customer_id)
        scores = await self.store.exec("zrange", key, 0, -1, False, True)
        return [float(row[1]) / 1000.0 for row in scores if isinstance(row, tuple | list)]

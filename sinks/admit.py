"""Admission in one Redis round trip: suppression check, ledger claim and (on the common
path) the budget reservation, in one Lua script.

The script runs the same Lua functions as :mod:`sinks.ledger` (``acquire``) and
:mod:`sinks.budget` (``reserve``), in the order of the guards (suppression -> ledger ->
budget), atomically:

1. the customer's suppression blocks this trigger (``all`` scope, an unreadable value, or a
   ``marketing`` scope for a marketing trigger) -> ``suppressed``; nothing is claimed;
2. the ledger claim: ``busy`` / ``final`` are returned as they are (nothing reserved);
3. when the caller asked for it (a marketing trigger that is due now, outside quiet hours and
   not held out: the checks that need no Redis are done before), the budget reservation.

Triggers for which the budget cannot be reserved up front (deferred by ``not_before`` or
quiet hours, holdouts) take the slower path in :mod:`sinks.processor` with separate calls,
with the same outcomes as before.

:meth:`Admitter.admit_many` runs the same steps for a whole batch of triggers in **one**
script call (one round trip, one reply): the triggers are admitted one after the other
inside the script, so two triggers of one customer in a batch see each other's budget
reservation exactly as two separate calls would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from schemas.models import Trigger
from sinks.budget import RESERVE_FN, Budget, BudgetDecision, parse_budget
from sinks.ledger import ACQUIRE_FN, LEDGER_TTL_MS, Ledger, LedgerEntry, parse_entry
from sinks.suppression import Suppression, SuppressionList

_ADMIT = ACQUIRE_FN + RESERVE_FN + """
local sup = redis.call('HGET', KEYS[1], ARGV[1])
if sup and (string.sub(sup, 1, 10) ~= 'marketing|' or ARGV[2] == '1') then
  return {'suppressed', sup}
end
local now = tonumber(ARGV[4])
local entry = acquire(KEYS[2], ARGV[3], now, tonumber(ARGV[5]), ARGV[6])
if ARGV[7] ~= '1' or (entry[1] ~= 'acquired' and entry[1] ~= 'taken_over') then
  return entry
end
local b = reserve(KEYS[3], now, ARGV[8], {unpack(ARGV, 9)})
return {entry[1], 'budget', b[1], b[2]}
"""


_ADMIT_MANY = ACQUIRE_FN + RESERVE_FN + """
local now = tonumber(ARGV[1])
local lease_ms = tonumber(ARGV[2])
local ttl_ms = ARGV[3]
local ncaps = tonumber(ARGV[4])
local caps = {}
for i = 1, ncaps do caps[i] = ARGV[4 + i] end
local base = 4 + ncaps
local n = (#KEYS - 1) / 2
local out = {}
for i = 1, n do
  local a = base + (i - 1) * 5
  local marketing = ARGV[a + 2]
  local sup = redis.call('HGET', KEYS[1], ARGV[a + 1])
  if sup and (string.sub(sup, 1, 10) ~= 'marketing|' or marketing == '1') then
    out[i] = {'suppressed', sup}
  else
    local entry = acquire(KEYS[1 + i], ARGV[a + 3], now, lease_ms, ttl_ms)
    if ARGV[a + 4] ~= '1' or (entry[1] ~= 'acquired' and entry[1] ~= 'taken_over') then
      out[i] = entry
    else
      local b = reserve(KEYS[1 + n + i], now, ARGV[a + 5], caps)
      out[i] = {entry[1], 'budget', b[1], b[2]}
    end
  end
end
return out
"""


class AdmitRequest(NamedTuple):
    """One trigger of :meth:`Admitter.admit_many`: who claims it and whether to reserve (a
    named tuple: one per trigger on the hot path)."""

    trigger: Trigger
    owner: str
    reserve: bool


@dataclass(frozen=True, slots=True)
class Admission:
    """The answer of :meth:`Admitter.admit`: a blocking suppression, or the ledger entry
    (and the budget decision when a reservation was asked for and the claim succeeded)."""

    suppression: Suppression | None
    entry: LedgerEntry | None
    budget: BudgetDecision | None = None


def _s(value: bytes | str | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Admitter:
    """Runs the admission script (see the module docs) against the sink's stores."""

    def __init__(self, suppression: SuppressionList, ledger: Ledger, budget: Budget) -> None:
        self.store = ledger.store
        self.suppression = suppression
        self.ledger = ledger
        self.budget = budget
        self._sha = self.store.script(_ADMIT)
        self._many = self.store.script(_ADMIT_MANY)

    async def admit(
        self, trigger: Trigger, owner: str, now_ms: int, *, reserve: bool
    ) -> Admission:
        """Check suppression, claim the ledger entry for ``owner``, and reserve a budget slot
        when ``reserve`` (only after a successful claim)."""
        keys = (self.suppression.key, self.ledger.key(trigger.trigger_id),
                self.budget.key(trigger.customer_id))
        args: list[str | int] = [
            trigger.customer_id, "1" if trigger.marketing else "0", owner, now_ms,
            self.ledger.lease_ms, LEDGER_TTL_MS, "1" if reserve else "0", trigger.trigger_id,
            *self.budget.caps,
        ]
        raw = await self.store.exec("evalsha", self._sha, len(keys), *keys, *args)
        return _parse(raw)

    async def admit_many(self, requests: list[AdmitRequest], now_ms: int) -> list[Admission]:
        """:meth:`admit` for every request, in order, in one script call (one round trip)."""
        if not requests:
            return []
        caps = self.budget.caps
        ledger, budget = self.ledger.key_prefix, self.budget.key_prefix
        keys: list[str] = [self.suppression.key]
        keys += [ledger + r.trigger.trigger_id for r in requests]
        keys += [budget + r.trigger.customer_id for r in requests]
        args: list[str | int] = [now_ms, self.ledger.lease_ms, LEDGER_TTL_MS, len(caps), *caps]
        for trigger, owner, reserve in requests:
            args += [trigger.customer_id, "1" if trigger.marketing else "0", owner,
                     "1" if reserve else "0", trigger.trigger_id]
        raw = await self.store.exec("evalsha", self._many, len(keys), *keys, *args)
        return [_parse(reply) for reply in raw]


def _parse(raw: list[bytes | str | int]) -> Admission:
    """The :class:`Admission` for one reply of the admission script."""
    fields = [_s(v) for v in raw]
    if fields[0] == "suppressed":
        return Admission(Suppression.decode(fields[1]), None)
    if len(fields) == 4 and fields[1] == "budget":
        return Admission(None, parse_entry(fields[:1]),
                         parse_budget([int(fields[2]), int(fields[3])]))
    return Admission(None, parse_entry(fields))

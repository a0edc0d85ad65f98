"""The idempotency ledger: trigger id -> pending / final outcome, in Redis, atomic (Lua).

One hash per trigger (``<prefix>ledger:<trigger_id>``) with ``state`` (``pending`` or a final
outcome: ``sent``, ``failed``, ``capped``, ``held_out``), the ``owner`` and ``lease_until``
(epoch ms) of a pending entry, and for final entries ``reason``, ``esp_message_id``,
``attempts`` and ``published`` (1 once the Send Result is flushed to Kafka).

Protocol for one trigger (see docs/sink.md for the crash analysis):

1. :meth:`Ledger.acquire` -> ``acquired`` (new, or our own), ``taken_over`` (a pending entry
   whose lease expired: its sender died; we resend with the same Message-ID / idempotency key),
   ``busy`` (another live sender holds it: wait until it finishes or its lease ends), or
   ``final`` (already decided: re-publish that outcome if it was never published, else report
   a duplicate).
2. ESP accepts -> :meth:`Ledger.finalize` writes ``sent`` **before** the result is produced and
   the offset committed; a crash after this point can never send again.
3. After the Send Result is flushed: :meth:`Ledger.mark_published`, then the offset commit.

Deferred triggers :meth:`Ledger.release` their pending entry, so they can be acquired again.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from sinks.store import Store

LEDGER_TTL_MS = 35 * 24 * 3600 * 1000
"""Final entries are kept 35 days: longer than any trigger's lifetime and topic retention."""

ACQUIRE_FN = """
local function acquire(key, owner, now, lease_ms, ttl_ms)
  local state = redis.call('HGET', key, 'state')
  if not state then
    redis.call('HSET', key, 'state', 'pending', 'owner', owner, 'lease_until', now + lease_ms)
    redis.call('PEXPIRE', key, ttl_ms)
    return {'acquired'}
  end
  if state == 'pending' then
    local held_by = redis.call('HGET', key, 'owner')
    local lease = tonumber(redis.call('HGET', key, 'lease_until'))
    if held_by == owner or lease <= now then
      redis.call('HSET', key, 'owner', owner, 'lease_until', now + lease_ms)
      if held_by == owner then return {'acquired'} end
      redis.call('HINCRBY', key, 'takeovers', 1)
      return {'taken_over'}
    end
    return {'busy', tostring(lease)}
  end
  local f = redis.call('HMGET', key, 'reason', 'esp_message_id', 'attempts', 'published')
  return {'final', state, f[1] or '', f[2] or '', f[3] or '0', f[4] or '0'}
end
"""
"""The ledger claim as a Lua function (shared with :mod:`sinks.admit`'s one-trip script)."""

_ACQUIRE = ACQUIRE_FN + """
return acquire(KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4])
"""

_FINALIZE = """
local state = redis.call('HGET', KEYS[1], 'state')
if state and state ~= 'pending' then return {state} end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'reason', ARGV[2], 'esp_message_id', ARGV[3],
           'attempts', ARGV[4], 'published', '0')
redis.call('HDEL', KEYS[1], 'lease_until')
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {ARGV[1]}
"""

_FINALIZE_MANY = """
local out = {}
for i, key in ipairs(KEYS) do
  local a = 1 + (i - 1) * 4
  local state = redis.call('HGET', key, 'state')
  if state and state ~= 'pending' then
    out[i] = state
  else
    redis.call('HSET', key, 'state', ARGV[a + 1], 'reason', ARGV[a + 2],
               'esp_message_id', ARGV[a + 3], 'attempts', ARGV[a + 4], 'published', '0')
    redis.call('HDEL', key, 'lease_until')
    redis.call('PEXPIRE', key, ARGV[1])
    out[i] = ARGV[a + 1]
  end
end
return out
"""

_PUBLISHED_MANY = """
for _, key in ipairs(KEYS) do redis.call('HSET', key, 'published', '1') end
return #KEYS
"""

_RELEASE = """
if redis.call('HGET', KEYS[1], 'state') == 'pending' and
   redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""


class Claim(StrEnum):
    """What :meth:`Ledger.acquire` found."""

    ACQUIRED = "acquired"
    TAKEN_OVER = "taken_over"
    BUSY = "busy"
    FINAL = "final"


class Outcome(NamedTuple):
    """A final outcome to write with :meth:`Ledger.finalize_many` (a named tuple: one per
    trigger on the hot path, where a frozen dataclass costs a ``__setattr__`` per field)."""

    trigger_id: str
    state: str
    reason: str = ""
    esp_message_id: str = ""
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """The answer of :meth:`Ledger.acquire`."""

    claim: Claim
    state: str = "pending"
    reason: str = ""
    esp_message_id: str = ""
    attempts: int = 0
    published: bool = False
    lease_until_ms: int = 0


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


_PLAIN: dict[str, LedgerEntry] = {
    claim.value: LedgerEntry(claim) for claim in (Claim.ACQUIRED, Claim.TAKEN_OVER)
}
"""The entries of a successful claim, shared (they are immutable and carry nothing else)."""


def parse_entry(fields: list[str]) -> LedgerEntry:
    """The :class:`LedgerEntry` for the reply of the ``acquire`` Lua function."""
    plain = _PLAIN.get(fields[0])
    if plain is not None:
        return plain
    claim = Claim(fields[0])
    if claim is Claim.BUSY:
        return LedgerEntry(claim, lease_until_ms=int(float(fields[1])))
    if claim is Claim.FINAL:
        return LedgerEntry(
            claim,
            state=fields[1],
            reason=fields[2],
            esp_message_id=fields[3],
            attempts=int(fields[4] or 0),
            published=fields[5] == "1",
        )
    return LedgerEntry(claim)


class Ledger:
    """Trigger id -> pending / final outcome (see the module docs)."""

    def __init__(self, store: Store, lease_ms: int) -> None:
        self.store = store
        self.lease_ms = lease_ms
        self._acquire = store.script(_ACQUIRE)
        self._finalize = store.script(_FINALIZE)
        self._release = store.script(_RELEASE)
        self._finalize_many = store.script(_FINALIZE_MANY)
        self._published_many = store.script(_PUBLISHED_MANY)
        self.key_prefix = store.key("ledger", "")
        """Every entry's key is this prefix + the trigger id."""

    def _key(self, trigger_id: str) -> str:
        return self.key_prefix + trigger_id

    def key(self, trigger_id: str) -> str:
        """The Redis key of ``trigger_id``'s entry."""
        return self.key_prefix + trigger_id

    async def acquire(self, trigger_id: str, owner: str, now_ms: int) -> LedgerEntry:
        """Claim ``trigger_id`` for ``owner`` (a token unique to this attempt), or say who has
        it / how it ended."""
        args: list[str | int] = [owner, now_ms, self.lease_ms, LEDGER_TTL_MS]
        raw = await self.store.exec("evalsha", self._acquire, 1, self._key(trigger_id), *args)
        return parse_entry([_s(v) for v in raw])

    async def finalize(
        self, trigger_id: str, state: str, reason: str = "", esp_message_id: str = "",
        attempts: int = 0,
    ) -> str:
        """Record the final outcome (first writer wins); return the state now recorded."""
        args: list[str | int] = [state, reason, esp_message_id, attempts, LEDGER_TTL_MS]
        raw = await self.store.exec("evalsha", self._finalize, 1, self._key(trigger_id), *args)
        return _s(raw[0])

    async def finalize_many(self, outcomes: list[Outcome]) -> list[str]:
        """:meth:`finalize` for every outcome in one script call; the states now recorded."""
        if not outcomes:
            return []
        prefix = self.key_prefix
        keys = [prefix + o.trigger_id for o in outcomes]
        args: list[str | int] = [LEDGER_TTL_MS]
        for o in outcomes:
            args += [o.state, o.reason, o.esp_message_id, o.attempts]
        raw = await self.store.exec("evalsha", self._finalize_many, len(keys), *keys, *args)
        return [_s(v) for v in raw]

    async def mark_published_many(self, trigger_ids: list[str]) -> None:
        """:meth:`mark_published` for every trigger id in one script call."""
        if trigger_ids:
            prefix = self.key_prefix
            keys = [prefix + t for t in trigger_ids]
            await self.store.exec("evalsha", self._published_many, len(keys), *keys)

    async def mark_published(self, trigger_id: str) -> None:
        """The trigger's Send Result is durable in Kafka."""
        await self.store.exec("hset", self._key(trigger_id), "published", "1")

    async def release(self, trigger_id: str, owner: str) -> bool:
        """Drop ``owner``'s pending entry (the trigger was deferred and will come back)."""
        raw = await self.store.exec("evalsha", self._release, 1, self._key(trigger_id), owner)
        return bool(raw)

    async def get(self, trigger_id: str) -> dict[str, str]:
        """The raw entry (for tools and tests)."""
        raw = await self.store.exec("hgetall", self._key(trigger_id))
        return {_s(k): _s(v) for k, v in raw.items()}

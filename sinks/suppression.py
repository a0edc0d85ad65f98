"""Consent and suppression: the single source of truth is one Redis hash.

``<prefix>suppressed``: field = customer id, value = ``<scope>|<reason>|<epoch ms>`` where scope
is ``all`` (hard bounce, erasure request: nothing is sent, not even transactional mail) or
``marketing`` (unsubscribe, spam report, consent withdrawn: only ``marketing=False`` triggers
are sent). Writers:

- the sink's suppression feed (:mod:`sinks.feedback`), consuming ``events.identity`` and
  ``events.engagement`` (Consent Changed, Email Unsubscribed, Email Bounced hard, Email Spam
  Reported, Erasure Requested);
- the webhook endpoint and one-click unsubscribe (:mod:`sinks.webhooks`), which write here
  *before* answering and before publishing the engagement event.

A fresh ``Consent Changed`` with ``granted=true`` lifts a ``marketing`` suppression, never an
``all`` one. The guard checks this hash before the ledger and again right before the ESP call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel

from schemas.models import (
    BounceKind,
    ConsentChanged,
    EmailBounced,
    EmailSpamReported,
    EmailUnsubscribed,
    ErasureRequested,
)
from sinks.store import Store


class Scope(StrEnum):
    """How much a suppression blocks."""

    ALL = "all"
    MARKETING = "marketing"


@dataclass(frozen=True, slots=True)
class Suppression:
    """One customer's suppression record."""

    scope: Scope
    reason: str
    at_ms: int

    def blocks(self, marketing: bool) -> bool:
        """Whether this suppression stops a trigger (marketing or not)."""
        return self.scope is Scope.ALL or marketing

    def encode(self) -> str:
        return f"{self.scope.value}|{self.reason}|{self.at_ms}"

    @classmethod
    def decode(cls, raw: str) -> Suppression:
        scope, reason, at_ms = [*raw.split("|"), "", "0"][:3]
        try:
            return cls(Scope(scope), reason, int(at_ms or 0))
        except ValueError:
            return cls(Scope.ALL, "unreadable", 0)


@dataclass(frozen=True, slots=True)
class Action:
    """What an event does to the suppression list: suppress (with scope) or lift."""

    customer_id: str
    suppress: Suppression | None  # None: lift a marketing suppression


def action_for(event: BaseModel, now_ms: int | None = None) -> Action | None:
    """The suppression change an identity/engagement event implies, or None."""
    at = now_ms if now_ms is not None else int(time.time() * 1000)
    customer = getattr(event, "customer_id", None) or getattr(event, "anonymous_id", None)
    if not customer:
        return None
    if isinstance(event, ErasureRequested):
        return Action(customer, Suppression(Scope.ALL, "erasure", at))
    if isinstance(event, EmailBounced):
        if event.bounce_type is BounceKind.HARD:
            return Action(customer, Suppression(Scope.ALL, "hard_bounce", at))
        return None
    if isinstance(event, EmailSpamReported):
        return Action(customer, Suppression(Scope.MARKETING, "spam_report", at))
    if isinstance(event, EmailUnsubscribed):
        return Action(customer, Suppression(Scope.MARKETING, "unsubscribed", at))
    if isinstance(event, ConsentChanged) and event.purpose == "marketing":
        if event.granted:
            return Action(customer, None)
        return Action(customer, Suppression(Scope.MARKETING, "consent_withdrawn", at))
    return None


_APPLY = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[2] == '' then
  if current and string.sub(current, 1, 10) == 'marketing|' then
    redis.call('HDEL', KEYS[1], ARGV[1])
    return 1
  end
  return 0
end
if current and string.sub(current, 1, 4) == 'all|' then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


class SuppressionList:
    """Reads and writes the suppression hash (see the module docs)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.key = store.key("suppressed")
        self._apply = store.script(_APPLY)

    async def get(self, customer_id: str) -> Suppression | None:
        """The customer's suppression, if any."""
        raw = await self.store.exec("hget", self.key, customer_id)
        if raw is None:
            return None
        return Suppression.decode(raw.decode() if isinstance(raw, bytes) else str(raw))

    async def get_many(self, customer_ids: list[str]) -> list[Suppression | None]:
        """:meth:`get` for every customer id in one command (``HMGET``)."""
        if not customer_ids:
            return []
        raw = await self.store.exec("hmget", self.key, customer_ids)
        return [
            None if v is None else Suppression.decode(v.decode() if isinstance(v, bytes) else v)
            for v in raw
        ]

    async def apply(self, action: Action) -> bool:
        """Apply one change atomically (an ``all`` suppression is never downgraded)."""
        value = action.suppress.encode() if action.suppress else ""
        raw = await self.store.exec("evalsha", self._apply, 1, self.key, action.customer_id, value)
        return bool(raw)

    async def suppress(self, customer_id: str, scope: Scope, reason: str) -> bool:
        """Suppress ``customer_id`` now (webhooks, one-click unsubscribe, tools)."""
        at = int(time.time() * 1000)
        return await self.apply(Action(customer_id, Suppression(scope, reason, at)))

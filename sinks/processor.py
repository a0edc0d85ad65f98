"""One trigger in, one decision out: the guards in order, rendering and the ESP send.

Order (see docs/sink.md): expiry -> consent/suppression -> idempotency ledger -> not_before ->
frequency budget (marketing only) -> quiet hours (marketing only) -> holdout -> render ->
last-moment suppression re-check -> rate limit + ESP send with retries.

:meth:`Processor.process` never raises for a bad trigger: every path ends in a
:class:`Decision` holding the Send Result to publish, and optionally a dead letter (template
errors, ESP failures) or a deferral (the trigger to park and when). Redis outages make it
wait (see :mod:`sinks.store`), so it only raises when the sink is shutting down.

The final outcome is written to the ledger *before* the caller publishes the Send Result and
commits the offset; the caller then calls :meth:`Processor.published`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schemas.construct import model_from_raw
from schemas.models import SCHEMA_VERSION, SendOutcome, SendResult, Trigger
from sinks import guards
from sinks.admit import Admission, Admitter
from sinks.budget import Budget, BudgetDecision
from sinks.compose import compose
from sinks.errors import TemplateError
from sinks.esp.base import EspAdapter
from sinks.ledger import Claim, Ledger, LedgerEntry
from sinks.message import OutgoingEmail
from sinks.metrics import TRIGGER_TO_ACCEPT
from sinks.ratelimit import RateLimiter
from sinks.render import Renderer
from sinks.retry import RetryPolicy, SendFailed, send_with_retries
from sinks.settings import SinkSettings
from sinks.suppression import SuppressionList

log = logging.getLogger("personaflow.sink")


def _now_millis() -> datetime:
    """Now in UTC, truncated to milliseconds as the model's validator does (Avro keeps ms)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _send_result(values: dict[str, Any]) -> SendResult:
    """A :class:`SendResult` of trusted values without pydantic validation (a third of its
    cost per trigger); values that a model would refuse (an empty id: a trigger that was not
    decoded by the sink) go through validation and raise as before."""
    if not values["trigger_id"] or not values["customer_id"]:
        return SendResult(**values)
    result = model_from_raw("Send Result", values)
    assert isinstance(result, SendResult)
    return result


@dataclass(frozen=True, slots=True)
class DeadLetterNote:
    """Why a trigger goes to dlq.sends."""

    reason: str
    error_type: str


@dataclass(frozen=True, slots=True)
class Decision:
    """What happened to one trigger; the caller publishes ``result`` (and the rest)."""

    result: SendResult
    dead_letter: DeadLetterNote | None = None
    defer_until: float | None = None  # epoch seconds: park the trigger until then
    record_published: bool = True  # False for outcomes the ledger does not hold


@dataclass(frozen=True, slots=True)
class Parts:
    """Everything the processor needs, built once by the service."""

    settings: SinkSettings
    renderer: Renderer
    adapter: EspAdapter
    suppression: SuppressionList
    ledger: Ledger
    budget: Budget
    limiter: RateLimiter | None


def crash_here(point: str, hook: str) -> None:
    """TEST ONLY: die like ``kill -9`` at ``point`` when the crash hook names it."""
    if hook and hook == point:
        log.warning("crash hook %s: killing the process", point)
        os.kill(os.getpid(), signal.SIGKILL)


class Processor:
    """Runs one trigger through the guards and the ESP (see the module docs)."""

    def __init__(self, parts: Parts, instance: str = "sink") -> None:
        self.p = parts
        self.instance = instance
        self.s = parts.settings
        self.quiet = parts.settings.quiet_hours()
        self.retry = RetryPolicy(self.s.max_attempts, self.s.backoff_base_s, self.s.backoff_max_s)
        self.admitter = Admitter(parts.suppression, parts.ledger, parts.budget)
        self._attempts = itertools.count(1)
        if instance == "sink":  # the default name is not unique: make it so
            self.instance = f"sink-{uuid.uuid4().hex[:12]}"

    def new_owner(self) -> str:
        """A ledger owner token unique to one attempt (instance ids are unique)."""
        return f"{self.instance}:{next(self._attempts)}"

    @staticmethod
    def now() -> float:
        return time.time()

    def result(
        self, trigger: Trigger, outcome: SendOutcome, reason: str | None = None,
        message_id: str | None = None, attempts: int = 0,
    ) -> SendResult:
        """The Send Result, built without re-validating what is valid by construction (the
        trigger's fields were checked when it was decoded; see :func:`_send_result`)."""
        return _send_result({
            "type": "Send Result",
            "trigger_id": trigger.trigger_id,
            "customer_id": trigger.customer_id,
            "trigger_type": trigger.trigger_type,
            "outcome": SendOutcome(outcome),
            "reason": reason or None,
            "esp": self.p.adapter.name,
            "esp_message_id": message_id or None,
            "persona": trigger.persona,
            "variant": trigger.variant,
            "attempts": int(attempts),
            "at": _now_millis(),
            "schema_version": SCHEMA_VERSION,
        })

    async def process(self, trigger: Trigger) -> Decision:
        """Decide and (maybe) send ``trigger``; see the module docs."""
        now = self.now()
        if guards.expired(trigger, now):
            result = self.result(trigger, SendOutcome.EXPIRED, "expired")
            return Decision(result, record_published=False)
        if not trigger.recipient:
            return Decision(self.result(trigger, SendOutcome.SUPPRESSED, "no_recipient"),
                            record_published=False)
        owner = self.new_owner()
        reserve = (trigger.marketing and not trigger.holdout
                   and guards.not_before(trigger, now) is None
                   and guards.quiet_until(trigger, now, self.quiet) is None)
        admission = await self._admit(trigger, owner, now, reserve)
        if admission.suppression is not None:
            return Decision(
                self.result(trigger, SendOutcome.SUPPRESSED, admission.suppression.reason),
                record_published=False,
            )
        assert admission.entry is not None
        if admission.entry.claim is Claim.FINAL:
            return self.replay(trigger, admission.entry)
        return await self.guarded(trigger, owner, now, admission.budget)

    async def _suppressed(self, trigger: Trigger) -> str | None:
        if not trigger.recipient:
            return "no_recipient"
        sup = await self.p.suppression.get(trigger.customer_id)
        if sup is not None and sup.blocks(trigger.marketing):
            return sup.reason
        return None

    async def _admit(self, trigger: Trigger, owner: str, now: float, reserve: bool) -> Admission:
        """Suppression + ledger claim (+ budget) in one trip, waiting while another live
        sender holds the entry."""
        while True:
            admission = await self.admitter.admit(
                trigger, owner, int(now * 1000), reserve=reserve
            )
            entry = admission.entry
            if entry is None or entry.claim is not Claim.BUSY:
                if entry is not None and entry.claim is Claim.TAKEN_OVER:
                    log.warning("trigger %s: took over an expired lease", trigger.trigger_id)
                return admission
            wait = entry.lease_until_ms / 1000.0 - self.now()
            await asyncio.sleep(min(max(wait, 0.05), 0.5))
            now = self.now()

    def replay(self, trigger: Trigger, entry: LedgerEntry) -> Decision:
        """A trigger the ledger already decided: re-publish if never published, else duplicate."""
        if entry.published:
            result = self.result(trigger, SendOutcome.DUPLICATE, f"already {entry.state}")
            return Decision(result, record_published=False)
        outcome = SendOutcome(entry.state)
        result = self.result(
            trigger, outcome, entry.reason, entry.esp_message_id, entry.attempts
        )
        dead = None
        if outcome is SendOutcome.FAILED:  # its dead letter may not have been written either
            dead = DeadLetterNote(f"{entry.reason or 'failed'} (replayed)", "SendFailed")
        return Decision(result, dead)

    async def _finish(
        self, trigger: Trigger, outcome: SendOutcome, reason: str = "", message_id: str = "",
        attempts: int = 0, dead: DeadLetterNote | None = None,
    ) -> Decision:
        """Write the final outcome to the ledger, then hand it to the caller to publish."""
        state = await self.p.ledger.finalize(
            trigger.trigger_id, outcome.value, reason, message_id, attempts
        )
        if state != outcome.value:  # someone else finished first (lease takeover race)
            result = self.result(trigger, SendOutcome.DUPLICATE, f"already {state}")
            return Decision(result, record_published=False)
        return Decision(self.result(trigger, outcome, reason, message_id, attempts), dead)

    async def _defer(self, trigger: Trigger, owner: str, due: float, reason: str) -> Decision:
        await self.p.ledger.release(trigger.trigger_id, owner)
        result = self.result(trigger, SendOutcome.DEFERRED, reason)
        return Decision(result, defer_until=due, record_published=False)

    async def guarded(
        self, trigger: Trigger, owner: str, now: float, budget: BudgetDecision | None = None
    ) -> Decision:
        """Guards after the ledger claim: schedule, budget, quiet hours, holdout; then send.
        ``budget``: the reservation the admission script already made (common path)."""
        due = guards.not_before(trigger, now)
        if due is not None:
            return await self._defer(trigger, owner, due, "not_before")
        reserved = False
        if trigger.marketing:
            if budget is None:
                budget = await self.p.budget.reserve(
                    trigger.customer_id, trigger.trigger_id, int(now * 1000)
                )
            if not budget.allowed:
                if budget.next_ms is None or guards.too_late(trigger, budget.next_ms / 1000):
                    return await self._finish(trigger, SendOutcome.CAPPED, "budget")
                return await self._defer(trigger, owner, budget.next_ms / 1000, "budget")
            reserved = True
            quiet = guards.quiet_until(trigger, now, self.quiet)
            if quiet is not None:
                await self.p.budget.release(trigger.customer_id, trigger.trigger_id)
                if guards.too_late(trigger, quiet):
                    return await self._finish(trigger, SendOutcome.CAPPED, "quiet_hours")
                return await self._defer(trigger, owner, quiet, "quiet_hours")
        if trigger.holdout:
            if reserved:
                await self.p.budget.release(trigger.customer_id, trigger.trigger_id)
            return await self._finish(trigger, SendOutcome.HELD_OUT, "holdout")
        decision = await self._send(trigger)
        kept = (SendOutcome.SENT, SendOutcome.DUPLICATE)  # a duplicate's slot is the other's
        if reserved and decision.result.outcome not in kept:
            await self.p.budget.release(trigger.customer_id, trigger.trigger_id)
        return decision

    def build_email(self, trigger: Trigger) -> OutgoingEmail:
        """Render ``trigger`` into an email (raises :class:`TemplateError`)."""
        return compose(self.s, self.p.renderer, trigger)

    async def _send(self, trigger: Trigger) -> Decision:
        try:
            email = self.build_email(trigger)
        except TemplateError as exc:
            log.warning("trigger %s: %s", trigger.trigger_id, exc)
            note = DeadLetterNote(f"{exc.reason}: {exc}", "TemplateError")
            return await self._finish(trigger, SendOutcome.FAILED, exc.reason, dead=note)
        blocked = await self._suppressed(trigger)  # an opt-out that arrived meanwhile
        if blocked:
            return await self._finish(trigger, SendOutcome.SUPPRESSED, blocked)
        try:
            delivery = await send_with_retries(self.p.adapter, email, self.retry, self.p.limiter)
        except SendFailed as exc:
            log.warning("trigger %s: send failed: %s", trigger.trigger_id, exc)
            note = DeadLetterNote(f"{exc.reason} after {exc.attempts} attempt(s)",
                                  type(exc.cause).__name__)
            return await self._finish(
                trigger, SendOutcome.FAILED, exc.reason, attempts=exc.attempts, dead=note
            )
        crash_here("after_accept", self.s.crash_hook)
        TRIGGER_TO_ACCEPT.observe(max(0.0, self.now() - trigger.created_at.timestamp()))
        decision = await self._finish(
            trigger, SendOutcome.SENT, "", delivery.esp_message_id, delivery.attempts
        )
        crash_here("after_ledger", self.s.crash_hook)
        return decision

    async def published(self, trigger: Trigger, decision: Decision) -> None:
        """The Send Result is flushed to Kafka: note it in the ledger (before the commit)."""
        if decision.record_published:
            await self.p.ledger.mark_published(trigger.trigger_id)

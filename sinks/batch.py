"""The batch hot path: a list of triggers in, one :class:`~sinks.processor.Decision` per trigger
out, with the same guards, order and outcomes as :meth:`Processor.process` per trigger, but
with the Redis and ESP work done once per batch:

1. expiry and a missing recipient: decided locally (no Redis);
2. suppression + ledger claim + budget reservation of every other trigger: **one** admission
   script call (:meth:`~sinks.admit.Admitter.admit_many`);
3. the triggers that can go out now are rendered in a tight loop, re-checked against the
   suppression hash in **one** ``HMGET``, and handed to the ESP at once
   (:func:`~sinks.retry.send_all_with_retries`: the HTTP adapter packs them into as few
   requests as the v3 shape allows);
4. every final outcome (sent, failed, suppressed) is written to the ledger in **one** script
   call (:meth:`~sinks.ledger.Ledger.finalize_many`) before anything is published.

Everything off the common path (a claim held by another live sender, a replay of a decided
trigger, ``not_before`` in the future, over budget, quiet hours, holdouts) takes the
per-trigger code of :class:`~sinks.processor.Processor`, concurrently with the batch.

A batch must not hold one trigger id twice: the caller splits duplicates into later rounds
(:func:`rounds`), so a duplicate sees the first copy's published outcome, as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from schemas.models import SendOutcome, Trigger
from sinks import guards
from sinks.admit import Admission, AdmitRequest
from sinks.errors import TemplateError
from sinks.ledger import Claim, Outcome
from sinks.message import OutgoingEmail
from sinks.metrics import TRIGGER_TO_ACCEPT
from sinks.processor import DeadLetterNote, Decision, Processor, crash_here
from sinks.retry import SendFailed, send_all_with_retries

log = logging.getLogger("personaflow.sink")


async def _together(
    first: Awaitable[dict[int, Decision]], *rest: Awaitable[Decision]
) -> tuple[dict[int, Decision], list[Decision]]:
    """Run the batch send and the per-trigger paths concurrently. When one fails, the others
    are cancelled (and waited for) before the error propagates: the caller retries the round
    with the same owner tokens, so nothing of the failed attempt may still be sending."""
    tasks: list[asyncio.Future[Any]] = [asyncio.ensure_future(first)]
    tasks += [asyncio.ensure_future(a) for a in rest]
    try:
        done = await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return done[0], list(done[1:])


def rounds(triggers: list[Trigger]) -> list[list[int]]:
    """Indexes of ``triggers`` split into rounds in which each trigger id appears once (the
    first copies first, in order)."""
    out: list[list[int]] = []
    seen: dict[str, int] = {}
    for i, trigger in enumerate(triggers):
        n = seen.get(trigger.trigger_id, 0)
        seen[trigger.trigger_id] = n + 1
        if n == len(out):
            out.append([])
        out[n].append(i)
    return out


@dataclass(slots=True)
class _Final:
    """An outcome of the batch send path, to be written to the ledger."""

    index: int
    outcome: SendOutcome
    reason: str = ""
    message_id: str = ""
    attempts: int = 0
    dead: DeadLetterNote | None = None


class BatchProcessor:
    """Runs a batch of distinct triggers through the guards and the ESP (module docs)."""

    def __init__(self, processor: Processor) -> None:
        self.p = processor
        self.parts = processor.p

    async def process(self, triggers: list[Trigger], owners: list[str]) -> list[Decision]:
        """One decision per trigger; ``owners``: a ledger owner token per trigger (kept when
        the caller retries the batch, so its own pending claims are found again)."""
        now = self.p.now()
        decisions: list[Decision | None] = [None] * len(triggers)
        requests: list[tuple[int, AdmitRequest]] = []
        for i, trigger in enumerate(triggers):
            local = self._local(trigger, now)
            if local is not None:
                decisions[i] = local
            else:
                requests.append((i, AdmitRequest(trigger, owners[i], self._reserve(trigger, now))))
        admissions = await self.p.admitter.admit_many([r for _, r in requests], int(now * 1000))
        sendable: list[int] = []
        slow: list[tuple[int, Awaitable[Decision]]] = []
        for (i, request), admission in zip(requests, admissions, strict=True):
            decided = self._admitted(request, admission, now, slow, i)
            if decided is None:
                sendable.append(i)
            elif isinstance(decided, Decision):
                decisions[i] = decided
        sent, slow_decisions = await _together(
            self._send(triggers, sendable), *(c for _, c in slow)
        )
        for (i, _), decision in zip(slow, slow_decisions, strict=True):
            decisions[i] = decision
        for i, decision in sent.items():
            decisions[i] = decision
        return [d for d in decisions if d is not None]

    def _local(self, trigger: Trigger, now: float) -> Decision | None:
        """Expiry and a missing recipient: decided without Redis."""
        if guards.expired(trigger, now):
            return Decision(
                self.p.result(trigger, SendOutcome.EXPIRED, "expired"), record_published=False
            )
        if not trigger.recipient:
            return Decision(
                self.p.result(trigger, SendOutcome.SUPPRESSED, "no_recipient"),
                record_published=False,
            )
        return None

    def _reserve(self, trigger: Trigger, now: float) -> bool:
        """Whether the admission may reserve the budget (as :meth:`Processor.process`)."""
        return (
            trigger.marketing
            and not trigger.holdout
            and guards.not_before(trigger, now) is None
            and guards.quiet_until(trigger, now, self.p.quiet) is None
        )

    def _admitted(
        self,
        request: AdmitRequest,
        admission: Admission,
        now: float,
        slow: list[tuple[int, Awaitable[Decision]]],
        index: int,
    ) -> Decision | bool | None:
        """After the admission: a decision, ``None`` (send now in the batch) or ``False``
        (handed to the per-trigger path, appended to ``slow``)."""
        trigger = request.trigger
        if admission.suppression is not None:
            result = self.p.result(trigger, SendOutcome.SUPPRESSED, admission.suppression.reason)
            return Decision(result, record_published=False)
        entry = admission.entry
        assert entry is not None
        if entry.claim is Claim.FINAL:
            return self.p.replay(trigger, entry)
        if entry.claim is Claim.BUSY:  # another live sender: wait for it, one by one
            slow.append((index, self.p.process(trigger)))
            return False
        if entry.claim is Claim.TAKEN_OVER:
            log.warning("trigger %s: took over an expired lease", trigger.trigger_id)
        if trigger.marketing:
            budget = admission.budget
            if request.reserve and budget is not None and budget.allowed:
                return None
        elif guards.not_before(trigger, now) is None and not trigger.holdout:
            return None
        slow.append((index, self.p.guarded(trigger, request.owner, now, admission.budget)))
        return False

    async def _send(self, triggers: list[Trigger], sendable: list[int]) -> dict[int, Decision]:
        """Render, re-check suppression, send and write the ledger for ``sendable``."""
        if not sendable:
            return {}
        finals: list[_Final] = []
        emails: list[tuple[int, OutgoingEmail]] = []
        for i in sendable:
            try:
                emails.append((i, self.p.build_email(triggers[i])))
            except TemplateError as exc:
                log.warning("trigger %s: %s", triggers[i].trigger_id, exc)
                note = DeadLetterNote(f"{exc.reason}: {exc}", "TemplateError")
                finals.append(_Final(i, SendOutcome.FAILED, exc.reason, dead=note))
        emails = await self._not_suppressed(triggers, emails, finals)
        if emails:
            finals += await self._deliver(triggers, emails)
        return await self._finish(triggers, finals)

    async def _not_suppressed(
        self,
        triggers: list[Trigger],
        emails: list[tuple[int, OutgoingEmail]],
        finals: list[_Final],
    ) -> list[tuple[int, OutgoingEmail]]:
        """The last-moment suppression re-check (an opt-out that arrived meanwhile)."""
        customers = [triggers[i].customer_id for i, _ in emails]
        found = await self.parts.suppression.get_many(customers)
        kept = []
        for (i, email), sup in zip(emails, found, strict=True):
            if sup is not None and sup.blocks(triggers[i].marketing):
                finals.append(_Final(i, SendOutcome.SUPPRESSED, sup.reason))
            else:
                kept.append((i, email))
        return kept

    async def _deliver(
        self, triggers: list[Trigger], emails: list[tuple[int, OutgoingEmail]]
    ) -> list[_Final]:
        deliveries = await send_all_with_retries(
            self.parts.adapter, [e for _, e in emails], self.p.retry, self.parts.limiter
        )
        finals = []
        accepted = False
        for (i, _), delivery in zip(emails, deliveries, strict=True):
            if isinstance(delivery, SendFailed):
                log.warning("trigger %s: send failed: %s", triggers[i].trigger_id, delivery)
                note = DeadLetterNote(
                    f"{delivery.reason} after {delivery.attempts} attempt(s)",
                    type(delivery.cause).__name__,
                )
                finals.append(
                    _Final(
                        i,
                        SendOutcome.FAILED,
                        delivery.reason,
                        attempts=delivery.attempts,
                        dead=note,
                    )
                )
                continue
            accepted = True
            finals.append(
                _Final(i, SendOutcome.SENT, "", delivery.esp_message_id, delivery.attempts)
            )
        if accepted:
            crash_here("after_accept", self.p.s.crash_hook)
            now = self.p.now()
            for final in finals:
                if final.outcome is SendOutcome.SENT:
                    created = triggers[final.index].created_at.timestamp()
                    TRIGGER_TO_ACCEPT.observe(max(0.0, now - created))
        return finals

    async def _finish(self, triggers: list[Trigger], finals: list[_Final]) -> dict[int, Decision]:
        """Write every final outcome in one call, then build the decisions; budget slots of
        reserved triggers that were not sent are given back."""
        outcomes = [
            Outcome(
                triggers[f.index].trigger_id, f.outcome.value, f.reason, f.message_id, f.attempts
            )
            for f in finals
        ]
        states = await self.parts.ledger.finalize_many(outcomes)
        crash_here("after_ledger", self.p.s.crash_hook)
        decisions: dict[int, Decision] = {}
        releases = []
        for final, state in zip(finals, states, strict=True):
            trigger = triggers[final.index]
            if state != final.outcome.value:  # someone else finished first (lease takeover)
                result = self.p.result(trigger, SendOutcome.DUPLICATE, f"already {state}")
                decisions[final.index] = Decision(result, record_published=False)
                continue
            result = self.p.result(
                trigger, final.outcome, final.reason, final.message_id, final.attempts
            )
            decisions[final.index] = Decision(result, final.dead)
            if trigger.marketing and final.outcome is not SendOutcome.SENT:
                releases.append(self.parts.budget.release(trigger.customer_id, trigger.trigger_id))
        if releases:
            await asyncio.gather(*releases)
        return decisions

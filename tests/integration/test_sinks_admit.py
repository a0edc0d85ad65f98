"""The one-trip admission script (suppression + ledger claim + budget) against a real Redis."""

from __future__ import annotations

import time
import uuid

from processors.policy import BudgetPolicy
from schemas.models import Trigger
from sinks.admit import AdmitRequest, Admitter
from sinks.budget import Budget
from sinks.harness import make_trigger
from sinks.ledger import Claim, Ledger
from sinks.store import Store
from sinks.suppression import Action, Scope, Suppression, SuppressionList


def _admitter(redis_url: str) -> Admitter:
    store = Store(redis_url, f"t{uuid.uuid4().hex[:8]}:")
    return Admitter(SuppressionList(store), Ledger(store, 60_000),
                    Budget(store, BudgetPolicy(per_day=1, per_week=3)))


def _trigger(n: str, **fields: object) -> Trigger:
    return make_trigger(f"{n}-{uuid.uuid4().hex[:6]}", **fields)


async def test_claims_and_reserves_in_one_call_and_suppression_blocks_before_claim(redis_url):
    adm = _admitter(redis_url)
    now = int(time.time() * 1000)
    first = await adm.admit(_trigger("a", customer_id="c1"), "o1", now, reserve=True)
    assert first.entry is not None and first.entry.claim is Claim.ACQUIRED
    assert first.budget is not None and first.budget.allowed
    # same customer, another trigger: claimed, but the daily budget is used up
    second = await adm.admit(_trigger("b", customer_id="c1"), "o2", now, reserve=True)
    assert second.budget is not None and not second.budget.allowed
    assert second.budget.next_ms == now + 86_400_000
    # marketing suppression blocks marketing triggers only, and claims nothing
    await adm.suppression.suppress("c2", Scope.MARKETING, "unsubscribed")
    blocked = _trigger("c", customer_id="c2")
    out = await adm.admit(blocked, "o3", now, reserve=True)
    assert out.suppression is not None and out.suppression.reason == "unsubscribed"
    assert await adm.ledger.get(blocked.trigger_id) == {}
    transactional = await adm.admit(_trigger("d", customer_id="c2", marketing=False), "o4",
                                    now, reserve=False)
    assert transactional.suppression is None and transactional.budget is None
    await adm.store.close()


async def test_busy_or_final_entries_reserve_nothing(redis_url):
    adm = _admitter(redis_url)
    now = int(time.time() * 1000)
    t = _trigger("e", customer_id="c3")
    assert (await adm.admit(t, "o1", now, reserve=False)).budget is None
    busy = await adm.admit(t, "o2", now, reserve=True)
    assert busy.entry is not None and busy.entry.claim is Claim.BUSY and busy.budget is None
    await adm.ledger.finalize(t.trigger_id, "sent", "", "m-1", 1)
    final = await adm.admit(t, "o2", now, reserve=True)
    assert final.entry is not None and final.entry.claim is Claim.FINAL
    assert final.entry.esp_message_id == "m-1" and final.budget is None
    assert await adm.budget.sent_at("c3") == []
    await adm.store.close()


async def _scenario(adm: Admitter, prefix: str, now: int) -> list[tuple[Trigger, str, bool]]:
    """Redis state and requests covering every branch of the admission script."""
    for customer, scope, reason in ((f"{prefix}-mkt", Scope.MARKETING, "unsubscribed"),
                                    (f"{prefix}-all", Scope.ALL, "hard_bounce")):
        await adm.suppression.apply(Action(customer, Suppression(scope, reason, now)))
    busy = make_trigger(f"{prefix}-busy", customer_id=f"{prefix}-b")
    done = make_trigger(f"{prefix}-done", customer_id=f"{prefix}-d")
    await adm.ledger.acquire(busy.trigger_id, "someone-else", now)
    await adm.ledger.acquire(done.trigger_id, "earlier", now)
    await adm.ledger.finalize(done.trigger_id, "sent", "", "m-9", 2)
    return [
        (make_trigger(f"{prefix}-1", customer_id=f"{prefix}-c"), "o1", True),
        (make_trigger(f"{prefix}-2", customer_id=f"{prefix}-c"), "o2", True),  # over budget
        (make_trigger(f"{prefix}-3", customer_id=f"{prefix}-mkt"), "o3", True),
        (make_trigger(f"{prefix}-4", customer_id=f"{prefix}-mkt", marketing=False), "o4", False),
        (make_trigger(f"{prefix}-5", customer_id=f"{prefix}-all", marketing=False), "o5", False),
        (busy, "o6", True),
        (done, "o7", True),
        (make_trigger(f"{prefix}-8", customer_id=f"{prefix}-e"), "o8", False),
    ]


async def test_a_batch_call_answers_exactly_as_one_call_per_trigger(redis_url):
    one, many = _admitter(redis_url), _admitter(redis_url)
    now = int(time.time() * 1000)
    scenario = await _scenario(one, "x", now)
    single = [await one.admit(t, o, now, reserve=r) for t, o, r in scenario]
    requests = [AdmitRequest(t, o, r) for t, o, r in await _scenario(many, "x", now)]
    batched = await many.admit_many(requests, now)
    assert batched == single
    assert [a.entry.claim if a.entry else a.suppression.reason for a in batched] == [
        Claim.ACQUIRED, Claim.ACQUIRED, "unsubscribed", Claim.ACQUIRED, "hard_bounce",
        Claim.BUSY, Claim.FINAL, Claim.ACQUIRED,
    ]
    assert batched[1].budget is not None and not batched[1].budget.allowed
    for adm in (one, many):
        assert await adm.ledger.get("trg-x-3") == {}  # suppressed: nothing claimed
        await adm.store.close()

"""Two sink instances on one consumer group: they share the work, the global frequency budget
holds across them, and no trigger is sent twice."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

from schemas.models import SendOutcome
from sinks.devservers import LocalHttpEsp
from sinks.harness import make_trigger, produce, read_results, running_sink

CUSTOMERS = 24
PER_CUSTOMER = 3


async def _both_assigned(a, b):
    for _ in range(400):
        if a.service.assigned and b.service.assigned and (
            len(a.service.assigned) + len(b.service.assigned) == 4
        ):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the two sinks did not split the partitions")


async def test_two_instances_share_work_budget_holds_no_double_send(env):
    esp = LocalHttpEsp()
    await esp.start()
    expires = datetime.now(UTC) + timedelta(days=3)
    triggers = [
        make_trigger(f"{c}-{k}", customer_id=f"cust-{c}", recipient=f"p{c}@example.com",
                     expires_at=expires)
        for c in range(CUSTOMERS) for k in range(PER_CUSTOMER)
    ]
    settings = env.settings(esp="http", http_url=esp.url, budget_per_day=1, budget_per_week=3,
                            concurrency=16)
    try:
        async with running_sink(settings, env.wiring()) as a, \
                running_sink(settings, env.wiring()) as b:
            await _both_assigned(a, b)
            produce(env.bootstrap, env.topics["triggers.email"], triggers + triggers[:10])
            results = await asyncio.to_thread(
                read_results, env.bootstrap, env.topics["sends.results"],
                want=len(triggers) + 10, timeout=40,
            )
            handled = (a.service.handled, b.service.handled)
    finally:
        await esp.stop()
    assert min(handled) > 0 and sum(handled) == len(triggers) + 10  # shared
    sent = [r for r in results if r.outcome is SendOutcome.SENT]
    assert len({r.trigger_id for r in sent}) == len(sent)  # no trigger sent twice
    per_customer = Counter(r.customer_id for r in sent)
    assert per_customer == Counter({f"cust-{c}": 1 for c in range(CUSTOMERS)})  # budget 1/day
    outcomes = defaultdict(set)
    for r in results:
        outcomes[r.trigger_id].add(r.outcome)
    for trigger in triggers:
        assert outcomes[trigger.trigger_id] & {SendOutcome.SENT, SendOutcome.DEFERRED}
    deferred = [r for r in results if r.outcome is SendOutcome.DEFERRED]
    assert {r.reason for r in deferred} == {"budget"}
    assert len(esp.deliveries) == CUSTOMERS and esp.duplicates == 0

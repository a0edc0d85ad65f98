"""The sink's Redis stores against a real Redis: the budget Lua script agrees with
processors.policy.budget_check (property-based), the ledger's claims and leases, the shared
rate limit."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.policy import BudgetPolicy, budget_check
from sinks.budget import _RESERVE, Budget
from sinks.errors import StoreUnavailableError
from sinks.ledger import Claim, Ledger
from sinks.ratelimit import RateLimiter
from sinks.store import Store

DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def sync_redis(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    offsets_s=st.lists(st.integers(min_value=0, max_value=8 * 86_400), max_size=8),
    per_day=st.integers(min_value=0, max_value=3),
    per_week=st.integers(min_value=0, max_value=5),
)
def test_budget_script_agrees_with_budget_check(sync_redis, offsets_s, per_day, per_week):
    now_s = 2_000_000_000
    sends = sorted({now_s - o for o in offsets_s})
    policy = BudgetPolicy(per_day, per_week)
    key = f"prop:{uuid.uuid4().hex}"
    if sends:
        sync_redis.zadd(key, {f"s{i}": s * 1000 for i, s in enumerate(sends)})
    caps = []
    for window, cap in policy.caps():
        caps += [int(window * 1000), cap]
    ok, when = sync_redis.register_script(_RESERVE)(keys=[key],
                                                    args=[now_s * 1000, "new", *caps])
    sync_redis.delete(key)
    expected_ok, expected_when = budget_check([float(s) for s in sends], float(now_s), policy)
    assert bool(ok) == expected_ok
    if expected_ok:
        assert when == now_s * 1000
    elif expected_when is None:
        assert when == -1
    else:
        assert when == int(expected_when * 1000)


async def test_budget_reserve_is_idempotent_and_release_frees(redis_url):
    store = Store(redis_url, f"t{uuid.uuid4().hex[:8]}:")
    budget = Budget(store, BudgetPolicy(1, 3))
    now = int(time.time() * 1000)
    try:
        assert (await budget.reserve("c", "t1", now)).allowed
        assert (await budget.reserve("c", "t1", now + 5)).allowed  # same trigger again
        second = await budget.reserve("c", "t2", now + 10)
        assert not second.allowed and second.next_ms == now + DAY_MS
        await budget.release("c", "t1")
        assert (await budget.reserve("c", "t2", now + 20)).allowed
    finally:
        await store.close()


async def test_ledger_claims_leases_and_takeover(redis_url):
    store = Store(redis_url, f"t{uuid.uuid4().hex[:8]}:")
    ledger = Ledger(store, lease_ms=1000)
    now = int(time.time() * 1000)
    try:
        assert (await ledger.acquire("t", "a", now)).claim is Claim.ACQUIRED
        busy = await ledger.acquire("t", "b", now + 10)
        assert busy.claim is Claim.BUSY and busy.lease_until_ms == now + 1000
        taken = await ledger.acquire("t", "b", now + 1001)  # a's lease ran out: a died
        assert taken.claim is Claim.TAKEN_OVER
        assert not await ledger.release("t", "a")  # a no longer owns it
        assert await ledger.finalize("t", "sent", "", "m-1", 1) == "sent"
        assert await ledger.finalize("t", "failed") == "sent"  # first writer wins
        final = await ledger.acquire("t", "c", now + 2000)
        assert (final.claim, final.state, final.esp_message_id, final.published) == (
            Claim.FINAL, "sent", "m-1", False)
        await ledger.mark_published("t")
        assert (await ledger.acquire("t", "c", now + 2000)).published
        assert (await ledger.acquire("d", "x", now)).claim is Claim.ACQUIRED
        assert await ledger.release("d", "x")
        assert (await ledger.acquire("d", "y", now)).claim is Claim.ACQUIRED
    finally:
        await store.close()


async def test_rate_limit_is_shared_by_two_clients(redis_url):
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    stores = [Store(redis_url, prefix), Store(redis_url, prefix)]
    limiters = [RateLimiter(s, "http", rate_per_s=50, burst=5) for s in stores]
    try:
        started = time.monotonic()

        async def take(limiter, n):
            for _ in range(n):
                await limiter.acquire()

        await asyncio.gather(take(limiters[0], 15), take(limiters[1], 15))
        elapsed = time.monotonic() - started
        # 30 tokens at 50/s with a burst of 5: at least (30 - 5) / 50 = 0.5 s in total
        assert elapsed >= 0.45
    finally:
        for s in stores:
            await s.close()


async def test_close_finishes_issued_commands_and_fails_the_rest(redis_url):
    """Closing the store lets the commands already issued finish; one that Redis does not
    answer in time, and any issued after the close, fail with StoreUnavailableError:
    no caller is left waiting (before, close cancelled the auto-pipeline mid-batch)."""
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    store = Store(redis_url, prefix)
    key = store.key("counter")
    issued = [asyncio.create_task(store.exec("incr", key)) for _ in range(50)]
    await asyncio.sleep(0)  # the commands are queued, not yet sent
    await store.close()
    assert sorted(await asyncio.wait_for(asyncio.gather(*issued), 10)) == list(range(1, 51))
    with pytest.raises(StoreUnavailableError):
        await store.exec("get", key)

    blocked = Store(redis_url, prefix)
    waiting = asyncio.create_task(blocked.exec("blpop", blocked.key("empty"), 30))
    await asyncio.sleep(0.2)  # the blocking pop is in flight
    started = time.monotonic()
    await asyncio.wait_for(blocked.close(drain_s=0.5), 10)
    assert time.monotonic() - started < 5
    with pytest.raises(StoreUnavailableError):
        await asyncio.wait_for(waiting, 5)
    cleanup = Store(redis_url, prefix)
    await cleanup.exec("delete", key)
    await cleanup.close()

"""Per-key locks serialise work on one trigger id and let other ids run in parallel."""

from __future__ import annotations

import asyncio

from sinks.keylock import KeyLocks


async def test_same_key_runs_one_at_a_time_other_keys_in_parallel():
    locks = KeyLocks()
    log: list[str] = []

    async def work(key: str, tag: str) -> None:
        async with locks.hold(key):
            log.append(f"start {tag}")
            await asyncio.sleep(0.01)
            log.append(f"end {tag}")

    await asyncio.gather(work("a", "a1"), work("a", "a2"), work("b", "b1"))
    assert log.index("end a1") < log.index("start a2")
    assert log.index("start b1") < log.index("end a1")  # b did not wait for a
    assert len(locks) == 0  # nothing left behind

"""Quiet hours, send budget, holdout and variant assignment (processors/policy.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.errors import PolicyError
from processors.policy import (
    DAY,
    WEEK,
    BudgetPolicy,
    QuietHours,
    assign_variant,
    budget_check,
    in_holdout,
    next_allowed_time,
    zone,
)

ZONES = [None, "UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata",
         "Australia/Lord_Howe", "Pacific/Chatham", "Not/AZone", ""]
T0 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
times = st.floats(min_value=T0, max_value=T0 + 2 * 365 * DAY, allow_nan=False)
hours = st.integers(min_value=0, max_value=23)


def local_hour(t: float, tz: str | None) -> int:
    return datetime.fromtimestamp(t, zone(tz)).hour


def test_quiet_evening_defers_to_next_morning_local() -> None:
    # 22:30 in Berlin (winter, UTC+1) is 21:30 UTC -> 08:00 Berlin next day = 07:00 UTC
    now = datetime(2026, 1, 10, 21, 30, tzinfo=UTC).timestamp()
    got = next_allowed_time(now, "Europe/Berlin", QuietHours())
    assert got == datetime(2026, 1, 11, 7, 0, tzinfo=UTC).timestamp()


def test_quiet_early_morning_defers_same_day_and_daytime_passes() -> None:
    now = datetime(2026, 1, 10, 3, 0, tzinfo=UTC).timestamp()
    assert next_allowed_time(now, None, QuietHours()) == now + 5 * 3600
    noon = now + 9 * 3600
    assert next_allowed_time(noon, "UTC", QuietHours()) == noon


def test_unknown_zone_falls_back_to_utc() -> None:
    now = datetime(2026, 1, 10, 23, 0, tzinfo=UTC).timestamp()
    assert next_allowed_time(now, "Mars/Olympus", QuietHours()) == next_allowed_time(
        now, None, QuietHours()
    )


def test_equal_hours_disable_quiet_and_bad_hours_rejected() -> None:
    now = datetime(2026, 1, 10, 23, 0, tzinfo=UTC).timestamp()
    assert next_allowed_time(now, None, QuietHours(5, 5)) == now
    with pytest.raises(PolicyError):
        QuietHours(24, 8)
    assert PolicyError("x").retriable is False


@settings(max_examples=400)
@given(now=times, tz=st.sampled_from(ZONES), start=hours, end=hours)
def test_next_allowed_time_is_earliest_non_quiet(now, tz, start, end) -> None:
    quiet = QuietHours(start, end)
    got = next_allowed_time(now, tz, quiet)
    assert now <= got <= now + DAY + 3600
    assert not quiet.is_quiet(local_hour(got, tz))
    if got > now:  # one second earlier is still quiet: nothing earlier was allowed
        assert quiet.is_quiet(local_hour(got - 1, tz))
    assert next_allowed_time(got, tz, quiet) == got


def test_budget_day_cap_and_next_slot() -> None:
    policy = BudgetPolicy(per_day=1, per_week=3)
    assert budget_check([], T0, policy) == (True, T0)
    assert budget_check([T0], T0 + 3600, policy) == (False, T0 + DAY)
    assert budget_check([T0], T0 + DAY, policy) == (True, T0 + DAY)


def test_budget_week_cap_and_zero_cap() -> None:
    policy = BudgetPolicy(per_day=1, per_week=3)
    sent = [T0, T0 + DAY, T0 + 2 * DAY]
    assert budget_check(sent, T0 + 3 * DAY, policy) == (False, T0 + WEEK)
    assert budget_check(sent, T0 + 3 * DAY, BudgetPolicy(0, 3)) == (False, None)
    with pytest.raises(PolicyError):
        BudgetPolicy(per_day=-1)


def test_budget_counts_scheduled_future_sends() -> None:
    policy = BudgetPolicy(per_day=1, per_week=3)
    allowed, slot = budget_check([T0 + 3600], T0, policy)
    assert not allowed and slot == T0 + 3600 + DAY


def _max_in_window(sends: list[float], window: float) -> int:
    return max((sum(1 for s in sends if x <= s < x + window) for x in sends), default=0)


@settings(max_examples=300)
@given(
    offsets=st.lists(st.floats(min_value=0, max_value=30 * DAY), max_size=40),
    per_day=st.integers(1, 3),
    per_week=st.integers(1, 6),
)
def test_budget_greedy_sends_never_exceed_caps(offsets, per_day, per_week) -> None:
    policy = BudgetPolicy(per_day, per_week)
    sent: list[float] = []
    for now in sorted(T0 + o for o in offsets):
        allowed, slot = budget_check(sent, now, policy)
        if allowed:
            sent.append(now)
        else:
            assert slot is not None and slot > now
            assert budget_check(sent, slot, policy)[0]
            assert not budget_check(sent, (now + slot) / 2, policy)[0]
    assert _max_in_window(sent, DAY) <= per_day
    assert _max_in_window(sent, WEEK) <= per_week


@settings(max_examples=200)
@given(
    offsets=st.lists(st.floats(min_value=0, max_value=20 * DAY), max_size=25),
    order=st.randoms(use_true_random=False),
)
def test_budget_any_order_deferred_sends_respect_caps(offsets, order) -> None:
    """Sends requested out of time order (deferred ones) still never break a window."""
    policy = BudgetPolicy(1, 3)
    sent: list[float] = []
    requests = [T0 + o for o in offsets]
    order.shuffle(requests)
    for now in requests:
        allowed, slot = budget_check(sent, now, policy)
        assert slot is not None
        sent.append(now if allowed else slot)
    assert _max_in_window(sorted(sent), DAY) <= 1
    assert _max_in_window(sorted(sent), WEEK) <= 3


@given(cid=st.text(min_size=1, max_size=20), salt=st.text(max_size=10),
       a=st.floats(0, 1), b=st.floats(0, 1))
def test_holdout_deterministic_and_monotone_in_share(cid, salt, a, b) -> None:
    lo, hi = sorted((a, b))
    assert in_holdout(cid, salt, lo) == in_holdout(cid, salt, lo)
    if in_holdout(cid, salt, lo):
        assert in_holdout(cid, salt, hi)
    assert not in_holdout(cid, salt, 0.0)
    assert in_holdout(cid, salt, 1.0)


def test_holdout_share_is_close_and_salt_reshuffles() -> None:
    ids = [f"c{i}" for i in range(20_000)]
    inside = {i for i in ids if in_holdout(i, "exp1", 0.1)}
    assert 0.09 < len(inside) / len(ids) < 0.11
    other = {i for i in ids if in_holdout(i, "exp2", 0.1)}
    assert len(inside & other) < 0.2 * len(inside)
    with pytest.raises(PolicyError):
        in_holdout("c", "s", 1.5)


@given(exp=st.text(max_size=10), cid=st.text(min_size=1, max_size=20),
       variants=st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=5, unique=True))
def test_variant_deterministic_and_member(exp, cid, variants) -> None:
    got = assign_variant(exp, cid, variants)
    assert got in variants and got == assign_variant(exp, cid, list(variants))


def test_variant_weights_split_and_zero_weight_never_chosen() -> None:
    picks = [assign_variant("subject", f"c{i}", ["a", "b", "c"], [3, 1, 0]) for i in range(8000)]
    assert "c" not in picks
    assert 0.72 < picks.count("a") / len(picks) < 0.78
    with pytest.raises(PolicyError):
        assign_variant("x", "c", ["a"], [0])
    with pytest.raises(PolicyError):
        assign_variant("x", "c", [])


@settings(max_examples=300)
@given(
    offsets=st.lists(st.floats(min_value=0, max_value=30 * DAY), max_size=12),
    at=st.floats(min_value=0, max_value=30 * DAY),
    per_day=st.integers(1, 3),
    per_week=st.integers(1, 6),
)
def test_budget_fast_answer_equals_the_window_scan(offsets, at, per_day, per_week) -> None:
    """The count-based shortcut of budget_check says "fits now" exactly when the scan of
    every window holding ``now`` does."""
    from processors.policy import _fits

    policy = BudgetPolicy(per_day, per_week)
    sent, now = [T0 + o for o in offsets], T0 + at
    scanned = all(_fits(now, sent, w, c) for w, c in policy.caps())
    assert budget_check(sent, now, policy)[0] == scanned

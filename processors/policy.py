"""Pure, shared send rules: quiet hours, frequency budget, holdout and A/B assignment.

Used by the trigger rules here and by the sink (``sinks/``) so both sides agree. Every
function takes time as an argument (``now``: epoch seconds, UTC) and never reads the clock.

Budget window semantics (see :func:`budget_check`): a cap ``C`` over a window ``W`` seconds
means that no interval of length ``W`` ever holds more than ``C`` sends. Two sends at ``x``
and ``y`` share a window when ``|y - x| < W``; a send exactly ``W`` seconds after another is
in a new window. Windows slide (they are not calendar days), so "1 a day" means at least
24 h between sends, whatever the time zone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

from processors.errors import PolicyError

DAY = 86_400.0
WEEK = 7 * DAY


@lru_cache(maxsize=1024)
def zone(time_zone: str | None) -> tzinfo:
    """The tz database zone named ``time_zone``; UTC when it is None, empty or unknown."""
    if not time_zone:
        return UTC
    try:
        return ZoneInfo(time_zone)
    except (ValueError, OSError, KeyError):  # unknown key, bad path characters
        return UTC


@dataclass(frozen=True, slots=True)
class QuietHours:
    """Local hours in which no marketing email is sent: from ``start_hour`` (inclusive) to
    ``end_hour`` (exclusive), wrapping over midnight when ``start_hour > end_hour``.
    ``start_hour == end_hour`` disables quiet hours."""

    start_hour: int = 21
    end_hour: int = 8

    def __post_init__(self) -> None:
        for name in ("start_hour", "end_hour"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= 23:
                raise PolicyError(f"quiet hours: {name} must be an hour 0-23, got {value!r}")

    def is_quiet(self, hour: int) -> bool:
        """True when local ``hour`` (0-23) falls inside the quiet window."""
        start, end = self.start_hour, self.end_hour
        if start == end:
            return False
        if start < end:
            return start <= hour < end
        return hour >= start or hour < end


def next_allowed_time(now: float, time_zone: str | None, quiet: QuietHours) -> float:
    """The earliest time at or after ``now`` outside quiet hours in ``time_zone``.

    Returns ``now`` itself when it is not quiet, else the next local ``end_hour``:00 (unknown
    or missing zone -> UTC). Daylight-saving gaps resolve to the first existing instant.
    """
    tz = zone(time_zone)
    local = datetime.fromtimestamp(now, tz)
    if not quiet.is_quiet(local.hour):
        return now
    day = local.date()
    if quiet.start_hour > quiet.end_hour and local.hour >= quiet.start_hour:
        day = day + timedelta(days=1)
    wake = datetime(day.year, day.month, day.day, quiet.end_hour, tzinfo=tz).timestamp()
    return max(wake, now)


@dataclass(frozen=True, slots=True)
class BudgetPolicy:
    """Per-customer send caps: at most ``per_day`` sends in any 24 h and ``per_week`` in any
    7 days (sliding windows). A cap of 0 forbids sending."""

    per_day: int = 1
    per_week: int = 3

    def __post_init__(self) -> None:
        for name in ("per_day", "per_week"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise PolicyError(f"budget: {name} must be an integer >= 0, got {value!r}")

    def caps(self) -> tuple[tuple[float, int], ...]:
        """(window seconds, cap) pairs this policy enforces."""
        return ((DAY, self.per_day), (WEEK, self.per_week))


def _fits(t: float, sent_at: Sequence[float], window: float, cap: int) -> bool:
    """True when a send at ``t`` keeps every ``window``-long interval at or below ``cap``."""
    near = sorted(s for s in sent_at if abs(s - t) < window)
    if len(near) < cap:
        return True
    if cap <= 0:
        return False
    # every interval [x, x + window) holding t starts at t or at a send in (t - window, t]
    starts = [s for s in near if s <= t] + [t]
    return all(sum(1 for s in near if x <= s < x + window) < cap for x in starts)


def budget_check(
    sent_at: Sequence[float], now: float, policy: BudgetPolicy
) -> tuple[bool, float | None]:
    """Whether one more send at ``now`` fits the budget, and when the next one would.

    ``sent_at``: epoch seconds of sends already made (or scheduled: later times count too).
    Returns ``(True, now)`` when a send fits now, ``(False, t)`` with ``t`` the earliest
    later time it fits, and ``(False, None)`` when a cap of 0 forbids any send.
    """
    caps = policy.caps()
    if any(cap <= 0 for _, cap in caps):
        return False, None
    # fewer sends within the widest window of `now` than the smallest cap: every window that
    # holds `now` keeps room for one more (what _fits would find, without sorting)
    widest = max(w for w, _ in caps)
    near = 0
    for s in sent_at:
        if -widest < s - now < widest:
            near += 1
    if near < min(c for _, c in caps):
        return True, now
    if all(_fits(now, sent_at, w, c) for w, c in caps):
        return True, now
    # allowance only ever returns when a send leaves a window: at s + window
    candidates = sorted({s + w for s in sent_at for w, _ in caps if s + w > now})
    for t in candidates:
        if all(_fits(t, sent_at, w, c) for w, c in caps):
            return False, t
    return False, None  # unreachable with caps >= 1: past the last send + window always fits


def _unit(*parts: str) -> float:
    """A deterministic number in [0, 1) from ``parts`` (blake2b, 64 bits)."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def in_holdout(customer_id: str, experiment_or_salt: str, share: float) -> bool:
    """True when ``customer_id`` belongs to the holdout group of ``experiment_or_salt``.

    Deterministic (blake2b of salt and id): a customer stays in or out for a given salt; about
    ``share`` (0..1) of all customers are in. Changing the salt reshuffles the group.
    """
    if not 0.0 <= share <= 1.0:
        raise PolicyError(f"holdout share must be within 0..1, got {share!r}")
    return _unit("holdout", experiment_or_salt, customer_id) < share


def assign_variant(
    experiment: str,
    customer_id: str,
    variants: Sequence[str],
    weights: Sequence[float] | None = None,
) -> str:
    """The variant of ``experiment`` a customer sees: deterministic per (experiment, customer).

    ``weights`` (same length as ``variants``, >= 0, not all 0) skew the split; equal by default.
    """
    if not variants:
        raise PolicyError(f"experiment {experiment!r}: no variants")
    if weights is None:
        weights = [1.0] * len(variants)
    if len(weights) != len(variants) or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise PolicyError(f"experiment {experiment!r}: weights must match variants, be >= 0")
    point = _unit("variant", experiment, customer_id) * sum(weights)
    acc = 0.0
    for variant, weight in zip(variants, weights, strict=True):
        acc += weight
        if point < acc and weight > 0:
            return variant
    return next(v for v, w in zip(reversed(variants), reversed(weights), strict=True) if w > 0)

"""Scores: RFM, email engagement with decay, category affinity with decay.

Formulas (all times epoch seconds, ``half_life`` in seconds):

- **decay**: ``value * 0.5 ** ((now - at) / half_life)``: a score halves every half-life with
  no new activity. Scores are stored with the time they were last updated and decayed lazily.
- **engagement** (email): +1 per open, +3 per click, decayed with ``engagement_half_life``
  (default 14 days); an unsubscribe or spam complaint resets it to 0.
- **category affinity**: +1 per product view, +3 per add to cart, +5 per purchased line, per
  category, decayed with ``affinity_half_life`` (default 7 days); only the top categories
  (``limits.affinity``) are kept.
- **RFM**: three 0-5 scores. Recency by days since the last order (<=7: 5, <=30: 4, <=90: 3,
  <=180: 2, else 1), frequency by order count (1: 1, 2: 2, 3-4: 3, 5-9: 4, 10+: 5), monetary
  by lifetime net revenue (<50: 1, <150: 2, <500: 3, <1500: 4, else 5); 0 without orders.
  :func:`rfm_segment` names the combination (champion, loyal, new, at_risk, hibernating,
  promising, prospect).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from math import floor

DAY = 86_400.0

ENGAGEMENT_POINTS = {"Email Opened": 1.0, "Email Clicked": 3.0}
AFFINITY_POINTS = {"view": 1.0, "add": 3.0, "purchase": 5.0}

_RECENCY_DAYS = (7, 30, 90, 180)  # at or under each bound: 5, 4, 3, 2; above: 1
_FREQUENCY = (1, 2, 3, 5, 10)  # at or above each bound: 1..5
_MONETARY = (50.0, 150.0, 500.0, 1500.0)  # under each bound: 1..4; above: 5


def decay(value: float, at: float, now: float, half_life: float) -> float:
    """``value`` scored at ``at``, decayed to ``now`` (no growth when ``now < at``)."""
    if now <= at or value == 0.0:
        return value
    return float(value * 0.5 ** ((now - at) / half_life))


def round2(value: float) -> float:
    """``round(value, 2)``, the same float, without its decimal-string round trip (builtin
    ``round`` with digits formats and re-parses the number: ~1,500 instructions, 3 % of a
    product view). ``floor(100 * value + 0.5)`` is the decimal rounding except on an exact
    tie (where ``round`` goes to even) and for zero's sign: those, and values too large for
    the shortcut, take ``round`` itself."""
    hundred = value * 100.0
    cents = floor(hundred + 0.5) if -1e15 < hundred < 1e15 else 0
    if cents == 0 or cents - hundred == 0.5:
        return round(value, 2)
    return cents / 100.0


def bump(score: float, at: float, now: float, points: float, half_life: float) -> float:
    """Decay ``score`` from ``at`` to ``now`` and add ``points`` (rounded to 2 places)."""
    return round2(decay(score, at, now, half_life) + points)


def recency_score(last_order_at: float | None, now: float) -> int:
    """5 (bought this week) .. 1 (over 180 days ago); 0 without orders."""
    if last_order_at is None:
        return 0
    days = max(0.0, now - last_order_at) / DAY
    return 5 - bisect_left(_RECENCY_DAYS, days)


def frequency_score(orders: int) -> int:
    """1 (one order) .. 5 (ten or more); 0 without orders."""
    return bisect_right(_FREQUENCY, orders)


def monetary_score(revenue: float, orders: int) -> int:
    """1 (under 50) .. 5 (1500 or more) of net revenue; 0 without orders."""
    if orders <= 0:
        return 0
    return 1 + bisect_right(_MONETARY, revenue)


def rfm(
    last_order_at: float | None, orders: int, revenue: float, now: float
) -> tuple[int, int, int]:
    """(recency, frequency, monetary) scores; see the module docstring."""
    return (
        recency_score(last_order_at, now),
        frequency_score(orders),
        monetary_score(revenue, orders),
    )


def rfm_segment(r: int, f: int, m: int) -> str:
    """A name for an RFM combination, used as the trigger's ``segment``."""
    if f == 0:
        return "prospect"
    if r >= 4 and f >= 4:
        return "champion"
    if r >= 3 and f >= 3:
        return "loyal"
    if r >= 4:
        return "new"
    if r <= 2 and (f >= 3 or m >= 4):
        return "at_risk"
    if r <= 2:
        return "hibernating"
    return "promising"


def top_categories(
    affinity: dict[str, tuple[float, int]], now: float, half_life: float, n: int
) -> list[str]:
    """The ``n`` categories with the highest decayed affinity, best first (ties by name)."""
    scored = sorted(
        ((-decay(s, at, now, half_life), cat) for cat, (s, at) in affinity.items()),
    )
    return [cat for _, cat in scored[:n]]

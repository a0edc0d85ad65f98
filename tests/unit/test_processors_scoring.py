"""Scores: decay, RFM and segments, category ranking."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from processors.scoring import (
    DAY,
    bump,
    decay,
    frequency_score,
    monetary_score,
    recency_score,
    rfm,
    rfm_segment,
    round2,
    top_categories,
)

T = 1_770_000_000.0
HALF = 7 * DAY


def test_decay_halves_every_half_life_and_never_grows() -> None:
    assert decay(8.0, T, T + HALF, HALF) == 4.0
    assert decay(8.0, T, T + 3 * HALF, HALF) == 1.0
    assert decay(8.0, T, T - DAY, HALF) == 8.0
    assert bump(4.0, T, T + HALF, 3.0, HALF) == 5.0


@given(v=st.floats(0, 1e6), a=st.floats(0, 400 * DAY), b=st.floats(0, 400 * DAY))
def test_decay_is_monotone_in_time(v: float, a: float, b: float) -> None:
    early, late = sorted((a, b))
    assert decay(v, T, T + late, HALF) <= decay(v, T, T + early, HALF) <= v


def test_rfm_bands() -> None:
    assert rfm(None, 0, 0.0, T) == (0, 0, 0)
    assert [recency_score(T - d * DAY, T) for d in (0, 7, 8, 30, 31, 90, 180, 181)] == [
        5, 5, 4, 4, 3, 3, 2, 1]
    assert [frequency_score(n) for n in (0, 1, 2, 3, 4, 5, 9, 10, 50)] == [
        0, 1, 2, 3, 3, 4, 4, 5, 5]
    assert [monetary_score(r, 1) for r in (10, 50, 149, 150, 499, 500, 1499, 1500)] == [
        1, 2, 2, 3, 3, 4, 4, 5]


@given(r=st.integers(0, 5), f=st.integers(0, 5), m=st.integers(0, 5))
def test_every_rfm_combination_has_a_segment(r: int, f: int, m: int) -> None:
    assert rfm_segment(r, f, m) in {"prospect", "champion", "loyal", "new", "at_risk",
                                    "hibernating", "promising"}


def test_segments_examples() -> None:
    assert rfm_segment(5, 5, 5) == "champion"
    assert rfm_segment(3, 3, 2) == "loyal"
    assert rfm_segment(5, 1, 1) == "new"
    assert rfm_segment(1, 4, 5) == "at_risk"
    assert rfm_segment(2, 1, 1) == "hibernating"
    assert rfm_segment(3, 1, 1) == "promising"


def test_top_categories_rank_by_decayed_score() -> None:
    affinity = {"shoes": (10.0, int(T)), "home": (6.0, int(T + 14 * DAY)), "toys": (1.0, int(T))}
    assert top_categories(affinity, T + 14 * DAY, HALF, 2) == ["home", "shoes"]
    assert top_categories(affinity, T, HALF, 5) == ["shoes", "home", "toys"]


def _same_float(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1, a) == math.copysign(1, b)


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_round2_is_round_to_two_places(value: float) -> None:
    assert _same_float(round2(value), round(value, 2))


@given(st.integers(min_value=-10**9, max_value=10**9), st.sampled_from([0, 1, 3, 5, 7, 9]))
def test_round2_on_ties_and_near_ties_is_round(cents: int, thousandth: int) -> None:
    """Values at and next to ``x.xx5`` (where rounding half-even and half-up differ)."""
    value = cents / 100 + thousandth / 1000
    for near in (math.nextafter(value, -math.inf), value, math.nextafter(value, math.inf)):
        assert _same_float(round2(near), round(near, 2))
    for tie in (0.125, 0.375, 2.675, 1.005, -0.125, -0.001, 0.0, -0.0):
        assert _same_float(round2(tie), round(tie, 2))

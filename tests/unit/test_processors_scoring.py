"""Scores: decay, RFM and segments, category ranking."""

from __future__ import annotations

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

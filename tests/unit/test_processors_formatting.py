"""The hot path's value formatting gives what the plain expressions give: ``utc`` skips
``round(ts, 3)`` for whole-millisecond times, ``describe`` tests collections against a tuple,
``stable_id`` joins a list."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from hypothesis import example, given, settings
from hypothesis import strategies as st

from processors import machine
from processors.facts import describe
from processors.machine import stable_id, utc


def _reference(ts: float) -> datetime:
    return datetime.fromtimestamp(round(ts, 3), UTC)


@settings(max_examples=3000)
@given(st.floats(min_value=0.0, max_value=2e11, allow_nan=False))
@example(1767615001.0005)  # half a millisecond: decimal rounding needed
@example(1767615001.1235)
@example(99_999_999_999.999)
@example(1e11)
def test_utc_equals_fromtimestamp_of_rounded(ts: float) -> None:
    machine._last_utc[0] = (-1.0, _reference(0.0))  # no remembered value
    assert utc(ts) == _reference(ts)


@settings(max_examples=3000)
@given(st.integers(min_value=0, max_value=10**14 - 1))
def test_utc_of_whole_milliseconds(ms: int) -> None:
    ts = ms / 1000
    machine._last_utc[0] = (-1.0, _reference(0.0))
    assert machine._whole_ms(ts) == (ts < 1e11)
    assert utc(ts) == _reference(ts)
    if ts < 2**32:  # below, the float is within 0.5 us of the milliseconds
        assert utc(ts).microsecond == ms % 1000 * 1000


def test_whole_ms_refuses_other_times() -> None:
    assert not machine._whole_ms(1767615001.0005)
    assert not machine._whole_ms(-1.0)
    assert not machine._whole_ms(2e11)
    assert machine._whole_ms(1767615001.123) and machine._whole_ms(0.0)


def test_describe_values() -> None:
    assert describe(1.0 / 3) == "0.333333"
    assert describe(["b", "a"]) == "a,b" and describe(("b", 1)) == "1,b"
    assert describe(frozenset({"y", "x"})) == "x,y" and describe({"z"}) == "z"
    assert describe(3) == "3" and describe(True) == "True" and describe(None) == "None"
    assert describe("a,b") == "a,b" and describe({"k": 1}) == "{'k': 1}"  # a dict: str()


def test_stable_id_is_blake2b_of_joined_parts() -> None:
    text = "c1\x1fr1\x1fNone\x1f1.5\x1f2"
    assert stable_id("c1", "r1", None, 1.5, 2) == hashlib.blake2b(
        text.encode(), digest_size=16).hexdigest()

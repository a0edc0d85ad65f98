"""Parking (streams/parking.py): which customers' records are resumed without their merge
answer. ``stale`` stops at the first customer not overdue (they are kept in the order they
began to wait); checked against the plain rule over random waits, answers and clocks."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.parking import Parking
from streams.records import InRecord

MAX_WAIT = 5.0


def _record(customer: str, offset: int) -> InRecord:
    return InRecord("t", 0, offset, customer.encode(), b"")


steps = st.lists(
    st.tuples(
        st.sampled_from(["wait", "park", "answer", "stale"]),
        st.sampled_from(["c1", "c2", "c3", "c4"]),
        st.floats(min_value=0.0, max_value=4.0),  # how far the clock moves first
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(steps=steps)
def test_stale_resumes_exactly_the_overdue_customers_records(
    steps: list[tuple[str, str, float]],
) -> None:
    parking = Parking(max_wait_s=MAX_WAIT)
    began: dict[str, float] = {}  # the model: when each waiting customer began to wait
    parked: dict[str, list[InRecord]] = {}
    now = 0.0
    for offset, (action, customer, step) in enumerate(steps):
        now += step
        if action == "wait":
            parking.wait(customer, "anon", now)
            began.setdefault(customer, now)
        elif action == "park" and parking.waiting(customer):
            record = _record(customer, offset)
            parking.park(customer, record)
            parked.setdefault(customer, []).append(record)
        elif action == "answer":
            resumed = parking.arrived(customer, "anon")
            assert resumed == parked.pop(customer, [])
            began.pop(customer, None)
        elif action == "stale":
            overdue = [c for c, at in began.items() if now - at >= MAX_WAIT]
            expected = [r for c in overdue for r in parked.pop(c, [])]
            assert parking.stale(now) == expected
            for c in overdue:
                del began[c]
            assert all(parking.waiting(c) == (c in began) for c in ("c1", "c2", "c3", "c4"))


def test_a_customer_not_overdue_stops_the_scan_but_keeps_its_records() -> None:
    parking = Parking(max_wait_s=MAX_WAIT)
    parking.wait("early", "a", 0.0)
    parking.wait("late", "b", 3.0)
    first, second = _record("early", 1), _record("late", 2)
    parking.park("early", first)
    parking.park("late", second)
    assert parking.stale(4.0) == []
    assert parking.stale(5.0) == [first]
    assert parking.waiting("late") and not parking.waiting("early")
    assert parking.stale(8.0) == [second]

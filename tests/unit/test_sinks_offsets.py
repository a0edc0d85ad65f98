"""Offsets are committed only behind a prefix of finished records."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sinks.offsets import OffsetTracker

TP = ("triggers", 0)


def test_out_of_order_completion_commits_only_the_finished_prefix():
    t = OffsetTracker()
    for off in (10, 11, 12):
        t.add(TP, off)
    t.done(TP, 11)
    assert t.take_committable() == {}
    t.done(TP, 10)
    assert t.take_committable() == {TP: 12}
    assert t.take_committable() == {}
    t.done(TP, 12)
    assert t.take_committable() == {TP: 13}
    assert t.in_flight() == 0


def test_revoked_partitions_are_forgotten_and_late_completions_ignored():
    t = OffsetTracker()
    t.add(TP, 1)
    t.add(("triggers", 1), 5)
    t.done(("triggers", 1), 5)
    assert t.take_committable({("triggers", 1)}) == {("triggers", 1): 6}
    t.forget({TP})
    t.done(TP, 1)
    assert t.take_committable() == {}


@given(st.permutations(list(range(20))), st.integers(min_value=0, max_value=20))
def test_committed_position_never_passes_an_unfinished_record(order, finished):
    t = OffsetTracker()
    for off in range(20):
        t.add(TP, off)
    done = set(order[:finished])
    for off in order[:finished]:
        t.done(TP, off)
    pos = t.take_committable().get(TP, 0)
    assert all(off in done for off in range(pos))  # everything below is finished
    assert pos == 20 or pos not in done  # and it stops at the first unfinished one

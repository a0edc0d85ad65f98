"""Event-time batches: partitions merged by record time, each partition kept in offset order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.records import InRecord
from streams.worker import _in_time_order

batches = st.lists(
    st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 2), st.floats(0, 100)), max_size=40
)


@given(batches)
def test_every_partition_keeps_its_offset_order(rows) -> None:
    records = [InRecord(t, p, i, None, None, ts) for i, (t, p, ts) in enumerate(rows)]
    merged = _in_time_order(records)
    assert sorted(merged, key=lambda r: r.offset) == records
    for tp in {(r.topic, r.partition) for r in records}:
        offsets = [r.offset for r in merged if (r.topic, r.partition) == tp]
        assert offsets == sorted(offsets)


@given(batches)
def test_time_sorted_partitions_merge_into_time_order(rows) -> None:
    rows = sorted(rows, key=lambda row: row[2])
    records = [InRecord(t, p, i, None, None, ts) for i, (t, p, ts) in enumerate(rows)]
    stamps = [r.timestamp for r in _in_time_order(records)]
    assert stamps == sorted(stamps)

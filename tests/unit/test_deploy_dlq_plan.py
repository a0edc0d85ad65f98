"""The pure part of ``personaflow dlq``: reading a dead-letter topic's records into dead letters
and re-publish markers, and choosing what to re-publish. Property-based: whatever the topic
holds, a dead letter is re-published at most once and nothing is chosen that cannot be."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from personaflow import dlq

TOPIC = "dlq.events"
REASONS = ["payload is not Avro", "cart_id: field required", "state store unavailable"]


def letter(partition: int, offset: int, reason: str, *, origin: bool = True,
           truncated: bool = False) -> dlq.DeadLetterRecord:  # fmt: skip
    headers = {dlq.HEADER_REASON: reason.encode(), dlq.HEADER_ERROR_TYPE: b"ValidationFailed"}
    if origin:
        headers |= {dlq.HEADER_ORIGINAL_TOPIC: b"events.cart", dlq.HEADER_ORIGINAL_PARTITION:
                    str(partition).encode(), dlq.HEADER_ORIGINAL_OFFSET: b"7"}  # fmt: skip
    if truncated:
        headers[dlq.HEADER_TRUNCATED] = b"2000000"
    return dlq.DeadLetterRecord(TOPIC, dlq.DlqRef(partition, offset), b"k", b"x", headers)


def marker(of: dlq.DeadLetterRecord, offset: int) -> dlq.DeadLetterRecord:
    headers = {
        dlq.HEADER_MARKER: dlq.MARKER_REPUBLISHED,
        dlq.HEADER_REPUBLISHED_FROM: of.source_id.encode(),
    }
    return dlq.DeadLetterRecord(TOPIC, dlq.DlqRef(of.ref.partition, offset), b"k", b"", headers)


letters = st.lists(
    st.builds(
        letter,
        st.integers(0, 3),
        st.integers(0, 10_000),
        st.sampled_from(REASONS),
        origin=st.booleans(),
        truncated=st.booleans(),
    ),
    max_size=30,
    unique_by=lambda x: x.ref,
)


def with_markers(data: st.DataObject, found: list[dlq.DeadLetterRecord]) -> dlq.DlqSnapshot:
    done = data.draw(st.lists(st.sampled_from(found), unique_by=lambda x: x.ref)) if found else []
    records = found + [marker(x, 20_000 + n) for n, x in enumerate(done)]
    return dlq.build_snapshot(TOPIC, data.draw(st.permutations(records)))


@given(letters, st.data(), st.sampled_from(["", "store", "CART_ID", "nothing matches"]))
def test_bulk_plan_never_repeats_and_second_plan_is_empty(found, data, needle):
    snapshot = with_markers(data, found)
    plan = dlq.plan_republish(snapshot, where_reason=needle)
    chosen = {x.ref for x in plan.todo} | {x.ref for x, _ in plan.skipped}
    assert chosen == {x.ref for x in found if needle.lower() in x.reason.lower()}
    for chosen_letter in plan.todo:
        assert not snapshot.is_republished(chosen_letter)
        assert chosen_letter.original_topic and not chosen_letter.truncated
    after = dlq.build_snapshot(
        TOPIC,
        [
            *found,
            *snapshot.republished.values(),
            *(marker(x, 30_000 + n) for n, x in enumerate(plan.todo)),
        ],
    )
    assert dlq.plan_republish(after, where_reason=needle).todo == []  # fmt: skip


@given(letters, st.data())
def test_markers_are_not_letters(found, data):
    snapshot = with_markers(data, found)
    assert sorted(x.ref for x in snapshot.letters) == sorted(x.ref for x in found)
    assert set(snapshot.republished) <= {x.source_id for x in found}


@given(st.integers(0, 10**6), st.integers(0, 10**12))
def test_refs_round_trip(partition, offset):
    assert dlq.DlqRef.parse(str(dlq.DlqRef(partition, offset))) == (partition, offset)
    assert dlq.DlqRef.parse(str(offset)) == (None, offset)


def test_named_dead_letter_refusals():
    ok, gone = letter(0, 5, REASONS[0]), letter(1, 5, REASONS[1])
    cut, lost = letter(2, 9, REASONS[2], truncated=True), letter(3, 1, REASONS[2], origin=False)
    snapshot = dlq.build_snapshot(TOPIC, [ok, gone, cut, lost, marker(gone, 6)])
    assert dlq.plan_republish(snapshot, ref="0:5").todo == [ok]
    with pytest.raises(dlq.DeadLetterNotFound, match="several partitions"):
        dlq.plan_republish(snapshot, ref="5")
    with pytest.raises(dlq.AlreadyRepublished):
        dlq.plan_republish(snapshot, ref="1:5")
    with pytest.raises(dlq.NotRepublishable, match="truncated"):
        dlq.plan_republish(snapshot, ref="2:9")
    assert dlq.plan_republish(snapshot, ref="2:9", fixed=True).todo == [cut]
    with pytest.raises(dlq.NotRepublishable, match="x-original-topic"):
        dlq.plan_republish(snapshot, ref="3:1")
    with pytest.raises(dlq.DeadLetterNotFound, match="does not contain"):
        dlq.plan_republish(snapshot, ref="0:5", where_reason="store")
    with pytest.raises(dlq.DeadLetterNotFound, match="not a dead-letter reference"):
        dlq.plan_republish(snapshot, ref="zero")
    assert snapshot.reason_counts() == {REASONS[2]: 2, REASONS[0]: 1, REASONS[1]: 1}


def test_retriable_flags():
    assert dlq.DlqKafkaError("x").retriable
    assert not any(
        cls("x").retriable
        for cls in (
            dlq.AlreadyRepublished,
            dlq.InvalidFix,
            dlq.NotRepublishable,
            dlq.DeadLetterNotFound,
        )
    )

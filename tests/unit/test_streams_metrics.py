"""The worker's batched histogram updates and its fetch-delay metric."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from streams import metrics
from streams.intake import _waited, observe_fetch_delay

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
values = st.lists(
    st.one_of(
        st.floats(min_value=0.0, max_value=20.0, allow_nan=False),
        st.sampled_from(BUCKETS),  # exactly on a bound: observe counts it in that bucket
    ),
    max_size=60,
)


def samples(histogram: Histogram) -> dict[tuple[str, str], float]:
    """Every sample of ``histogram`` (bucket counts by ``le``, count and sum)."""
    out = {}
    for family in histogram.collect():
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            out[(sample.name, sample.labels.get("le", ""))] = sample.value
    return out


def fresh() -> Histogram:
    return Histogram("h_seconds", "test", buckets=BUCKETS, registry=CollectorRegistry())


@given(values)
def test_observe_many_equals_observe_one_by_one(batch: list[float]) -> None:
    one, many = fresh(), fresh()
    for value in batch:
        one.observe(value)
    metrics.observe_many(many, batch)
    got, want = samples(many), samples(one)
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert abs(got[key] - value) <= 1e-9 * max(1.0, abs(value)), key


def test_observe_many_falls_back_when_the_histogram_has_another_shape() -> None:
    class Plain:
        seen: list[float] = []

        def observe(self, value: float) -> None:
            self.seen.append(value)

    histogram: Any = Plain()
    metrics.observe_many(histogram, [0.2, 3.0])
    assert histogram.seen == [0.2, 3.0]


def message(topic: str, timestamp: float) -> Any:
    return SimpleNamespace(topic=topic, timestamp=timestamp)


def grown(histogram: Histogram, before: dict[tuple[str, str], float]) -> dict[str, float]:
    """How much each bucket (by ``le``), the count and the sum of ``histogram`` grew."""
    out = {}
    for (name, le), value in samples(histogram).items():
        if value != before[(name, le)]:
            out[le or name.rsplit("_", 1)[1]] = value - before[(name, le)]
    return out


def test_fetch_delay_counts_input_records_only() -> None:
    before = samples(metrics.FETCH_DELAY)
    messages = [
        message("events.site", 99.97),  # 30 ms
        message("events.cart", 99.75),  # 250 ms
        message("internal.ticks", 50.0),  # internal: not an input's latency
        message("events.site", 0.0),  # no timestamp: nothing to say
    ]
    observe_fetch_delay(messages, frozenset({"events.site", "events.cart"}), 100.0)
    grew = grown(metrics.FETCH_DELAY, before)
    assert grew.pop("count") == 2
    assert abs(grew.pop("sum") - 0.28) < 1e-6
    # cumulative buckets: 30 ms counts from le=0.05 up, 250 ms from le=0.3 up
    assert grew == {"0.05": 1, "0.075": 1, "0.1": 1, "0.15": 1, "0.2": 1, "0.3": 2, "0.5": 2,
                    "1.0": 2, "2.5": 2, "5.0": 2, "10.0": 2, "+Inf": 2}  # fmt: skip


def test_intake_wait_per_record_and_batches_kept_in_order() -> None:
    before = samples(metrics.INTAKE_WAIT)
    first, second = [message("a", 1.0), message("a", 2.0)], [message("b", 3.0)]
    assert _waited([(9.9, first), (9.96, second)], 10.0) == [*first, *second]
    grew = grown(metrics.INTAKE_WAIT, before)
    assert grew["count"] == 3
    assert abs(grew["sum"] - (0.1 + 0.1 + 0.04)) < 1e-6
    assert grew["0.05"] == 1 and grew["0.1"] == 3

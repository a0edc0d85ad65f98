"""Prometheus metrics of the stream workers (names shared with dashboards and alerts).

Counts are aggregated per batch and added once per label set, so metrics cost little per event.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Sequence

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter("personaflow_events", "input events applied, by event type", ["type"])
DECODE_ERRORS = Counter(
    "personaflow_decode_errors", "input records that failed decoding", ["topic", "reason"]
)
DEAD_LETTERS = Counter(
    "personaflow_dead_letters", "records sent to the dead-letter topic, by source", ["topic"]
)
TRANSITIONS = Counter(
    "personaflow_transitions", "persona transitions", ["from_persona", "to_persona"]
)
TRIGGERS = Counter("personaflow_triggers", "triggers emitted", ["trigger_type"])
EVENT_TO_TRIGGER = Histogram(
    "personaflow_event_to_trigger_seconds",
    "input record timestamp -> trigger produced",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0)
FETCH_DELAY = Histogram(
    "personaflow_fetch_delay_seconds",
    "input record timestamp (producer create time) -> fetched into the worker's intake: the "
    "producer's, the broker's and the consumer's part of event->trigger latency",
    buckets=_LATENCY_BUCKETS,
)
INTAKE_WAIT = Histogram(
    "personaflow_intake_wait_seconds",
    "fetched -> taken by the processing task (queued behind the batches before it), per record",
    buckets=_LATENCY_BUCKETS,
)
DEADLINE_LAG = Histogram(
    "personaflow_deadline_lag_seconds",
    "deadline due time -> tick applied (in the worker clock's time)",
    buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0),
)
TABLE_CUSTOMERS = Gauge(
    "personaflow_table_customers", "customer states held by this worker's active partitions"
)
BATCH_SECONDS = Histogram(
    "personaflow_batch_seconds",
    "time to process and persist one batch",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)

GC_PAUSE = Histogram(
    "personaflow_gc_pause_seconds",
    "garbage-collector pauses of the worker process (the event loop stops meanwhile)",
    ["generation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
_GC_PAUSE_BY_GENERATION = [GC_PAUSE.labels(str(generation)) for generation in range(3)]


def observe_many(histogram: Histogram, values: Sequence[float]) -> None:
    """``histogram.observe(value)`` for each of ``values``, counted into the buckets first: one
    locked increment per bucket hit instead of two per value (a batch of records costs a few
    increments). Falls back to ``observe`` if prometheus-client's histogram changed shape."""
    if not values:
        return
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in values:
            histogram.observe(value)
        return
    counts = [0] * len(bounds)
    for value in values:
        counts[bisect_left(bounds, value)] += 1  # the first bound >= value, as observe picks
    for bucket, count in zip(buckets, counts, strict=True):
        if count:
            bucket.inc(count)
    total.inc(sum(values))


def observe_gc_pause(generation: int, seconds: float) -> None:
    """Record one collection's pause (called from ``gc.callbacks``)."""
    _GC_PAUSE_BY_GENERATION[generation].observe(seconds)


class BatchTally:
    """Counts of one batch, flushed into the Prometheus metrics at the end of the batch."""

    def __init__(self) -> None:
        self.events: Tally[str] = Tally()
        self.decode_errors: Tally[tuple[str, str]] = Tally()
        self.dead_letters: Tally[str] = Tally()
        self.transitions: Tally[tuple[str, str]] = Tally()
        self.triggers: Tally[str] = Tally()
        self.e2t: list[float] = []
        self.deadline_lag: list[float] = []

    def flush(self) -> None:
        """Add this batch's counts to the process metrics."""
        for kind, n in self.events.items():
            EVENTS.labels(kind).inc(n)
        for (topic, reason), n in self.decode_errors.items():
            DECODE_ERRORS.labels(topic, reason).inc(n)
        for topic, n in self.dead_letters.items():
            DEAD_LETTERS.labels(topic).inc(n)
        for (src, dst), n in self.transitions.items():
            TRANSITIONS.labels(src, dst).inc(n)
        for kind, n in self.triggers.items():
            TRIGGERS.labels(kind).inc(n)
        observe_many(EVENT_TO_TRIGGER, self.e2t)
        observe_many(DEADLINE_LAG, self.deadline_lag)

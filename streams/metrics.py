"""Prometheus metrics of the stream workers (names shared with dashboards and alerts).

Counts are aggregated per batch and added once per label set, so metrics cost little per event.
"""

from __future__ import annotations

from collections import Counter as Tally

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
        for seconds in self.e2t:
            EVENT_TO_TRIGGER.observe(seconds)
        for seconds in self.deadline_lag:
            DEADLINE_LAG.observe(seconds)

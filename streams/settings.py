"""Settings of the stream workers: one frozen object read from ``PERSONAFLOW_*`` variables.

:class:`StreamSettings` extends the shared :class:`personaflow.settings.Settings` (bootstrap
servers, topic prefix, partitions, data dir, rules file, ...) with what a worker needs. Every
field below is documented where it is defined; the environment variable is the field name in
upper case with the ``PERSONAFLOW_`` prefix (``clock`` -> ``PERSONAFLOW_CLOCK``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from personaflow.settings import Settings

ClockMode = Literal["wall", "event", "accelerated"]


class StreamSettings(Settings):
    """Everything a stream worker reads at start-up (frozen: build a new one to change it)."""

    app_id: str = Field(
        default="personaflow-streams",
        description="Faust app id: the consumer group and the prefix of changelog topics",
    )
    standby_replicas: int = Field(
        default=0, ge=0, description="standby copies of each table partition on other workers"
    )
    session_timeout_s: float = Field(
        default=6.0,
        gt=0,
        description="consumer group session timeout; joins wait half of it on Tansu (keep 3-6)",
    )
    heartbeat_interval_s: float = Field(default=1.0, gt=0, description="group heartbeat period")
    commit_interval_s: float = Field(
        default=1.0, gt=0, description="how often acknowledged offsets are committed"
    )
    worker_web_port: int = Field(
        default=6066, ge=0, le=65535, description="HTTP port of /metrics, /healthz, /readyz, views"
    )
    worker_web_bind: str = Field(default="0.0.0.0", description="interface the web server binds")
    worker_web_host: str = Field(
        default="127.0.0.1", description="host name other workers use to reach this one"
    )
    producer_max_batch_size: int = Field(
        default=16384, ge=1, description="batch size in bytes of Faust's own (aiokafka) producer"
    )
    producer_linger_ms: int = Field(
        default=2, ge=0, description="linger of the output/changelog producer (librdkafka)"
    )
    changelog_single_tail: bool = Field(
        default=True,
        description=(
            "write the last changelog record of each partition in a batch alone, so brokers "
            "that report the end offset of a partition as the first offset of its last batch "
            "(Tansu) still let table recovery read everything; harmless on Apache Kafka"
        ),
    )
    batch_max_events: int = Field(
        default=300,
        ge=1,
        description=(
            "largest batch processed at once: smaller keeps event->trigger latency low (the "
            "loop is busy for a whole batch), larger amortises flushes (measured: 300 vs 2000 "
            "took the p99 at 2,000 ev/s from ~1.1 s to ~0.3 s on a loaded 2-core machine)"
        ),
    )
    batch_within_s: float = Field(
        default=0.02, gt=0, description="longest wait to fill a batch before processing it"
    )
    intake: Literal["batch", "take"] = Field(
        default="batch",
        description=(
            "how records reach the processor: batch (fetched batches handed over directly, "
            "bypassing Faust's per-event stream path: fastest) or take (a Faust agent with "
            "stream.take_events: Faust's own path, slower)"
        ),
    )
    persist_interval_s: float = Field(
        default=0.5,
        ge=0,
        description=(
            "batch intake: table writes (and the commit of the inputs behind them) are "
            "persisted at most this often; a customer updated by several batches meanwhile is "
            "encoded once. Outputs are still produced per batch. 0: persist every batch"
        ),
    )
    max_poll_records: int = Field(
        default=300, ge=1, description="records per consumer fetch (see batch_max_events)"
    )
    fetch_max_wait_ms: int = Field(
        default=20,
        ge=1,
        le=1500,
        description=(
            "longest time the broker may hold a fetch open when it has nothing new. Faust "
            "fixes 1500 ms; a broker that does not answer a parked fetch as soon as records "
            "arrive (Tansu) then adds up to that to every event's latency (measured at 300 "
            "ev/s: e2t p50 342 ms with Faust's wait, 17 ms with 20 ms). Costs one empty fetch "
            "per broker per wait when idle"
        ),
    )
    align_hold_ms: int = Field(
        default=300,
        ge=0,
        description=(
            "event-time alignment of the co-partitioned input topics: records of a partition "
            "number are released in (event time, topic, offset) order, and a record waits "
            "until every input topic of its partition has a buffered record or has fetched "
            "nothing for this long (ms). Makes the order a customer's events are applied in "
            "independent of fetch timing and of how partitions are split; costs up to this "
            "much latency when a topic is quiet. 0: no alignment"
        ),
    )
    align_release_caught_up: bool = Field(
        default=True,
        description=(
            "alignment: an input topic with nothing buffered stops holding its partition back "
            "as soon as the broker shows nothing more for it, as of a fetch sent after the "
            "waiting records arrived (everything appended before them was fetched), instead "
            "of after align_hold_ms. The hold then only applies while records are known to "
            "wait on the broker. False: the hold always applies (cuts event->trigger latency "
            "by most of the hold at live rates; docs/bench/alignment.md)"
        ),
    )
    clock: ClockMode = Field(
        default="wall",
        description=(
            "time source of decisions: wall (production), event (the highest event time "
            "seen: replay and tests), accelerated (wall time sped up, for demos)"
        ),
    )
    clock_speed: float = Field(
        default=60.0, gt=0, description="accelerated clock: simulated seconds per real second"
    )
    ticker_interval_s: float = Field(
        default=0.5, gt=0, description="how often the ticker looks for due deadlines"
    )
    tick_retry_s: float = Field(
        default=10.0, gt=0, description="resend a tick if its customer is still due after this"
    )
    store: str = Field(
        default="rocksdb://", description="table store URL (rocksdb://, or memory:// in tests)"
    )
    cache_max_customers: int = Field(
        default=100_000, ge=0, description="decoded customer states kept in memory per worker"
    )
    gc_young_threshold: int = Field(
        default=20_000,
        ge=0,
        description=(
            "garbage collector: allocations between young-generation collections once the "
            "worker has started (CPython's default is 700); objects alive at start-up are "
            "frozen out of later collections (personaflow.gctuning). 0 keeps the "
            "interpreter's settings. Measured: docs/bench/streams.md, session 6"
        ),
    )
    input_topics: str = Field(
        default="events.site,events.cart,events.purchase,events.engagement,events.identity",
        description="comma-separated catalogue names of the input topics the worker reads",
    )

    def topic(self, catalogue_name: str) -> str:
        """Full name of a catalogue topic (prefix applied)."""
        return f"{self.topic_prefix}{catalogue_name}"

    def input_topic_names(self) -> list[str]:
        """Full names of the input topics."""
        return [self.topic(name.strip()) for name in self.input_topics.split(",") if name.strip()]

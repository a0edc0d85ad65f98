"""The Faust app of the stream workers.

``create_app(settings)`` builds a configured app (aiokafka driver, RocksDB tables, the customer
agent, the ticker and the web views); ``faust -A streams.app worker`` uses the module-level
``app`` (created on first access from the environment), ``personaflow worker`` calls
:func:`create_app` itself.

Design (measured; see docs/streams.md): one agent reads every co-partitioned input topic plus
internal.rekeyed and internal.ticks as raw bytes, in batches (``take_events``), and hands each
batch to :class:`streams.core.CustomerProcessor`; decoded states stay cached in memory over the
RocksDB tables; outputs are produced and acknowledged, then table writes are persisted with
their changelog, and only then are the input offsets acknowledged for commit.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import faust

import processors
from personaflow import gctuning
from schemas.codec import native_readers_status, native_writers_status
from streams import metrics
from streams.clock import make_clock
from streams.domain import Domain, load_domain
from streams.faust_tables import FaustTables
from streams.intake import BatchIntake
from streams.producer import BatchProducer
from streams.settings import StreamSettings
from streams.topics import TopicNames
from streams.web import register_views
from streams.worker import StreamWorker

log = logging.getLogger("personaflow.streams")


def resolve_bootstrap(settings: StreamSettings) -> str:
    """The bootstrap servers: configured, else the running local stack's."""
    if settings.kafka_bootstrap_servers:
        return settings.kafka_bootstrap_servers
    from personaflow.devstack import resolve_endpoints

    return resolve_endpoints(settings, need_redis=False).bootstrap


def _faust_config(settings: StreamSettings, bootstrap: str) -> dict[str, Any]:
    brokers = ";".join(f"kafka://{host.strip()}" for host in bootstrap.split(",") if host)
    return {
        "broker": brokers,
        "store": settings.store,
        "datadir": str(Path(settings.data_dir) / "streams"),
        "topic_partitions": settings.partitions,
        "topic_replication_factor": settings.replication_factor,
        "table_standby_replicas": settings.standby_replicas,
        "broker_session_timeout": settings.session_timeout_s,
        "broker_heartbeat_interval": settings.heartbeat_interval_s,
        "broker_rebalance_timeout": max(settings.session_timeout_s * 2, 10.0),
        "broker_commit_interval": settings.commit_interval_s,
        "broker_max_poll_records": settings.max_poll_records,
        "consumer_auto_offset_reset": "earliest",
        "producer_max_batch_size": settings.producer_max_batch_size,
        "producer_linger": settings.producer_linger_ms / 1000.0,
        "producer_acks": -1,
        "stream_buffer_maxsize": max(4096, settings.batch_max_events * 2),
        "key_serializer": "raw",
        "value_serializer": "raw",
        "web_port": settings.worker_web_port,
        "web_bind": settings.worker_web_bind,
        "web_host": settings.worker_web_host,
        "web_enabled": True,
        "topic_allow_declare": True,
    }


def create_app(
    settings: StreamSettings | None = None,
    *,
    domain: Domain | None = None,
    bootstrap: str | None = None,
) -> faust.App:
    """A configured Faust app; ``app.personaflow`` is its :class:`StreamWorker`."""
    settings = settings or StreamSettings()
    if settings.intake == "take" and settings.persist_interval_s:
        # take_events acknowledges each batch when the next is taken: persist every batch
        settings = settings.model_copy(update={"persist_interval_s": 0.0})
    bootstrap = bootstrap or resolve_bootstrap(settings)
    domain = domain or load_domain(settings.rules_file)
    (Path(settings.data_dir) / "streams").mkdir(parents=True, exist_ok=True)
    app = faust.App(settings.app_id, **_faust_config(settings, bootstrap))
    customers = app.Table(
        "customers", partitions=settings.partitions, key_type=bytes, value_type=bytes
    )
    identity = app.Table(
        "identity", partitions=settings.partitions, key_type=bytes, value_type=bytes
    )
    producer = BatchProducer(bootstrap, **{"linger.ms": settings.producer_linger_ms})
    tables = FaustTables(customers, identity, producer, single_tail=settings.changelog_single_tail)
    worker = StreamWorker(app, settings, domain, make_clock(settings.clock, settings.clock_speed),
                          tables)  # fmt: skip
    app.personaflow = worker  # type: ignore[attr-defined]
    _set_fetch_wait(app, settings.fetch_max_wait_ms)
    _register_agent(app, settings, worker)
    _register_ticker(app, settings, worker)
    register_views(app, worker)
    _register_gc_tuning(app, settings)
    _register_native_log(app)
    return app


def _register_native_log(app: faust.App) -> None:
    async def log_native() -> None:
        """Once the worker has started (its logging set up): which parts run compiled."""
        log.info("compiled code (make native): processors %s; avro readers %s; avro writers %s",
                 processors.NATIVE, native_readers_status(), native_writers_status())  # fmt: skip

    app.task(log_native)


def _set_fetch_wait(app: faust.App, wait_ms: int) -> None:
    """Give the worker's aiokafka consumer ``fetch_max_wait_ms`` (Faust hard-codes 1500)."""
    thread = app.consumer._thread  # type: ignore[attr-defined]
    create = thread._create_worker_consumer

    def create_worker_consumer(transport: Any) -> Any:
        consumer = create(transport)
        consumer._fetch_max_wait_ms = wait_ms  # read when the consumer starts its fetcher
        return consumer

    thread._create_worker_consumer = create_worker_consumer


def _register_agent(app: faust.App, settings: StreamSettings, worker: StreamWorker) -> None:
    topics = TopicNames(settings.topic_prefix)
    names = [*topics.inputs, topics.rekeyed, topics.ticks]
    channel = app.topic(*names, key_type=bytes, value_type=bytes, internal=False)

    async def customers_agent(stream: Any) -> None:
        """Every co-partitioned input, in batches, through the processor.

        With the batch intake (default) records never reach this stream: the agent only
        declares the subscription; :class:`streams.intake.BatchIntake` feeds the worker."""
        async for events in stream.take_events(
            settings.batch_max_events, within=settings.batch_within_s
        ):
            await worker.handle(events)  # take mode persists every batch (see create_app)

    app.agent(channel, name="customers")(customers_agent)
    if settings.intake == "batch":
        idle = max(0.05, settings.persist_interval_s / 2)
        if settings.align_hold_ms:  # held records are released on the idle rounds too
            idle = min(idle, max(0.02, settings.align_hold_ms / 3000))
        intake = BatchIntake(app, set(names), worker.handle, settings.batch_max_events, idle,
                             more=lambda: worker.more, inputs=frozenset(topics.inputs))  # fmt: skip
        intake.install()
        app.task(intake.run)

    async def _on_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        unacked = app.consumer._unacked_messages  # type: ignore[attr-defined]
        for message in await worker.revoke(revoked):
            unacked.discard(message)

    app.on_partitions_revoked.connect(_on_revoked)  # type: ignore[arg-type]


def _register_ticker(app: faust.App, settings: StreamSettings, worker: StreamWorker) -> None:
    async def ticker() -> None:
        """Feed due deadlines back to the agent through internal.ticks."""
        sent = await worker.tick_due()
        if sent:
            log.debug("ticks sent: %d", sent)

    app.timer(interval=settings.ticker_interval_s, name="personaflow.ticker")(ticker)


def _register_gc_tuning(app: faust.App, settings: StreamSettings) -> None:
    async def tune_gc() -> None:
        """Once the worker has started: collector settings and its pause metric."""
        if gctuning.tune_gc(settings.gc_young_threshold):
            log.info("gc tuned: young threshold %d, start-up objects frozen",
                     settings.gc_young_threshold)  # fmt: skip
        gctuning.observe_pauses(metrics.observe_gc_pause)

    app.task(tune_gc)


_app: faust.App | None = None


def __getattr__(name: str) -> Any:
    """``streams.app.app``: the app configured from the environment, built on first access."""
    global _app
    if name == "app":
        if _app is None:
            _app = create_app()
        return _app
    raise AttributeError(name)

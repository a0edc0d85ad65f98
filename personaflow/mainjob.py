"""The main job (``personaflow run``): the whole pipeline on the embedded default, then a summary.

Steps: local broker + Redis (or the ones named by KAFKA_BOOTSTRAP_SERVERS / REDIS_URL), topics
under a fresh per-run prefix, N stream workers and the sink (file outbox) as child processes,
a bounded run of generated shoppers, a wait until the pipeline is quiet, a summary read back
from the output topics and the outbox, and a clean stop of everything it started.
"""

from __future__ import annotations

import email
import email.policy
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from personaflow.devstack import Endpoints, free_port, local_stack
from personaflow.procs import Service, personaflow_argv, wait_until
from personaflow.settings import Settings
from schemas.models import Envelope, PersonaTransition, SendResult, Trigger
from schemas.topics import INPUT_TOPICS, SEND_RESULTS, TRANSITIONS, TRIGGERS


@dataclass(frozen=True)
class RunOptions:
    """What one main-job run does; the CLI's options map onto these fields."""

    events: int = 20_000
    customers: int = 1_500
    seed: int = 7
    workers: int = 2
    partitions: int = 6
    rate: float = 0.0
    quiet_s: float = 6.0
    settle_timeout_s: float = 180.0
    workdir: Path = Path(".personaflow/run")
    history_end: datetime | None = None  # None: now
    report: Path | None = None


@dataclass
class OutputTally:
    """What the output topics said so far (filled by :class:`OutputMonitor`)."""

    transitions: int = 0
    transitions_by_edge: Counter[str] = field(default_factory=Counter)
    lifecycle_persona: dict[str, str] = field(default_factory=dict)
    triggers: set[str] = field(default_factory=set)
    triggers_by_type: Counter[str] = field(default_factory=Counter)
    trigger_persona: dict[str, str] = field(default_factory=dict)
    results: dict[str, str] = field(default_factory=dict)
    decode_errors: int = 0
    last_change: float = field(default_factory=time.monotonic)

    def outcomes(self) -> Counter[str]:
        return Counter(self.results.values())


class OutputMonitor(threading.Thread):
    """Reads transitions, triggers and send results from the start, live, into a tally."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        super().__init__(name="output-monitor", daemon=True)
        self.tally = OutputTally()
        self.lock = threading.Lock()
        self._stop_event = threading.Event()
        self._servers = bootstrap
        self._topics = [spec.full_name(prefix) for spec in (TRANSITIONS, TRIGGERS, SEND_RESULTS)]

    def run(self) -> None:
        from confluent_kafka import Consumer

        from personaflow.kafka import consumer_config

        group = f"personaflow-run-monitor-{time.time_ns()}"
        consumer = Consumer(
            consumer_config(self._servers, group, **{"auto.offset.reset": "earliest"})
        )
        consumer.subscribe(self._topics)
        try:
            while not self._stop_event.is_set():
                for message in consumer.consume(500, timeout=0.2):
                    if message.error() is None:
                        self._count(message.value())
        finally:
            consumer.close()

    def _count(self, value: bytes | None) -> None:
        from schemas.codec import decode_event
        from schemas.errors import DecodeError

        try:
            event = decode_event(value or b"")
        except DecodeError:
            with self.lock:
                self.tally.decode_errors += 1
            return
        with self.lock:
            _tally_event(self.tally, event)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)


def _tally_event(tally: OutputTally, event: Any) -> None:
    tally.last_change = time.monotonic()
    if isinstance(event, PersonaTransition):
        tally.transitions += 1
        edge = f"{event.dimension}: {event.from_persona or '-'} -> {event.to_persona}"
        tally.transitions_by_edge[edge] += 1
        if event.dimension == "lifecycle":
            tally.lifecycle_persona[event.customer_id] = event.to_persona
    elif isinstance(event, Trigger):
        if event.trigger_id not in tally.triggers:
            tally.triggers.add(event.trigger_id)
            tally.triggers_by_type[event.trigger_type] += 1
        tally.trigger_persona[event.trigger_id] = event.persona or "-"
    elif isinstance(event, SendResult):
        tally.results[event.trigger_id] = event.outcome.value


@dataclass
class Pipeline:
    """The child services of one run and where they write."""

    workdir: Path
    prefix: str
    endpoints: Endpoints
    services: list[Service] = field(default_factory=list)

    @property
    def outbox(self) -> Path:
        return self.workdir / "outbox"

    def env(self) -> dict[str, str]:
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.endpoints.bootstrap,
            "REDIS_URL": self.endpoints.redis_url,
            "PERSONAFLOW_TOPIC_PREFIX": self.prefix,
        }

    @property
    def worker_group(self) -> str:
        """The workers' app id: their consumer group."""
        return f"personaflow-{self.prefix.rstrip('.')}"

    def start_workers(self, count: int, partitions: int) -> list[int]:
        ports = []
        for index in range(count):
            port = free_port()
            argv = personaflow_argv(
                "worker",
                "--web-port", str(port),
                "--data-dir", str(self.workdir / f"worker-{index}"),
                "--clock", "event",
                "--app-id", self.worker_group,
                "--topic-prefix", self.prefix,
                "--partitions", str(partitions),
                "--no-create-topics",
                "--loglevel", "warning",
            )  # fmt: skip
            self._start(f"worker-{index}", argv, {})
            ports.append(port)
        return ports

    def start_sink(self) -> int:
        port = free_port()
        env = {
            "PERSONAFLOW_SINK_ESP": "outbox",
            "PERSONAFLOW_SINK_OUTBOX_DIR": str(self.outbox),
            "PERSONAFLOW_SINK_GROUP_ID": f"personaflow-sink-{self.prefix.rstrip('.')}",
            "PERSONAFLOW_SINK_FEEDBACK_GROUP_ID": f"personaflow-feedback-{self.prefix.rstrip('.')}",
        }
        self._start("sink", personaflow_argv("sink", "--port", str(port)), env)
        return port

    def _start(self, name: str, argv: list[str], extra_env: dict[str, str]) -> None:
        service = Service(
            name, argv, self.workdir / "logs" / f"{name}.log", {**self.env(), **extra_env}
        )
        service.start()
        self.services.append(service)

    def dead_services(self) -> list[Service]:
        return [service for service in self.services if not service.running]

    def stop(self) -> dict[str, int | None]:
        return {service.name: service.stop() for service in reversed(self.services)}


def http_ok(port: int, path: str) -> bool:
    """Whether ``GET http://127.0.0.1:port/path`` answers 2xx."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as response:
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


@contextmanager
def running_pipeline(options: RunOptions, settings: Settings) -> Iterator[Pipeline]:
    """The stack, topics and child services of one run; everything stopped on exit."""
    from personaflow.admin import create_topics

    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    prefix = f"run{stamp}."
    workdir = options.workdir / stamp
    with ExitStack() as stack:
        endpoints = stack.enter_context(local_stack(settings, provision=False))
        create_topics(endpoints.bootstrap, prefix, options.partitions, 1).raise_for_errors()
        pipeline = Pipeline(workdir, prefix, endpoints)
        stack.callback(pipeline.stop)
        yield pipeline


def subjects_by_persona(outbox: Path, trigger_persona: dict[str, str]) -> dict[str, Counter[str]]:
    """Subject lines of the outbox's emails, grouped by the persona their trigger carried."""
    subjects: dict[str, Counter[str]] = defaultdict(Counter)
    for path in sorted(outbox.rglob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        trigger_id = str(message.get("X-Personaflow-Trigger", ""))
        persona = trigger_persona.get(trigger_id, "-")
        subjects[persona][str(message.get("Subject", ""))] += 1
    return subjects


class PipelineFailed(RuntimeError):
    """A child service died or never became ready; the message names it and its log."""


def wait_ready(
    pipeline: Pipeline, worker_ports: list[int], sink_port: int, timeout_s: float
) -> None:
    """Block until every worker answers /readyz and the sink /healthz, or raise."""
    checks = [(port, "/readyz") for port in worker_ports] + [(sink_port, "/healthz")]

    def all_ready() -> bool:
        if pipeline.dead_services():
            return True
        return all(http_ok(port, path) for port, path in checks)

    ready = wait_until(all_ready, timeout_s, interval_s=0.5)
    dead = pipeline.dead_services()
    if dead or not ready:
        failed = dead[0] if dead else pipeline.services[0]
        raise PipelineFailed(
            f"{failed.name} {'exited' if dead else 'not ready'}; log {failed.log_path}:\n"
            f"{failed.tail()}"
        )


class InputProgress:
    """Whether a consumer group has committed every record of some topics published so far.

    The workers commit an input's offset only after its outputs and table writes are durable,
    so "every input committed" means every event was processed. A consumer that never
    subscribes only reads the group's committed offsets (it does not join the group).

    On Tansu (the local broker) a partition's end offset is reported as the first offset of
    its last produced batch + 1 (DESIGN.md), so there the check can pass while the last batch
    is still being processed; it never waits for an offset that does not exist, and the
    quiet period that follows still applies. On Kafka it is exact."""

    def __init__(self, bootstrap: str, group: str, topics: list[str]) -> None:
        from confluent_kafka import Consumer

        from personaflow.kafka import consumer_config

        self._consumer = Consumer(consumer_config(bootstrap, group))
        self._topics = topics
        self._parts: list[Any] = []
        """The topics' partitions, listed once (every topic found)."""

    def _partitions(self) -> list[Any]:
        """The partitions of the topics (listed until every topic exists, then kept)."""
        from confluent_kafka import TopicPartition

        if not self._parts:
            listed = self._consumer.list_topics(timeout=5).topics
            parts = [TopicPartition(name, p) for name in self._topics if name in listed
                     for p in listed[name].partitions]
            if all(name in listed for name in self._topics):
                self._parts = parts
            return parts
        return self._parts

    def done(self) -> bool:
        """True when every partition of the topics has its end offset committed (a broker
        that does not answer in time counts as not done)."""
        from confluent_kafka import KafkaException

        try:
            for tp in self._consumer.committed(self._partitions(), timeout=5):
                _, end = self._consumer.get_watermark_offsets(tp, timeout=5, cached=False)
                if end > 0 and tp.offset < end:  # tp.offset < 0: nothing committed yet
                    return False
        except KafkaException:
            return False
        return True

    def close(self) -> None:
        self._consumer.close()


def wait_settled(monitor: OutputMonitor, pipeline: Pipeline, options: RunOptions) -> bool:
    """Wait until the workers have committed every published event, the outputs have not
    changed for ``quiet_s`` and every trigger has a result.

    (Quiet outputs alone are not enough: workers that wait for each other at start-up or
    through a rebalance can be silent for longer than ``quiet_s`` before their first output.)
    """
    progress = InputProgress(pipeline.endpoints.bootstrap, pipeline.worker_group,
                             [spec.full_name(pipeline.prefix) for spec in INPUT_TOPICS])
    consumed_at: list[float] = []  # when every input was first seen committed

    def settled() -> bool:
        if pipeline.dead_services():
            return True
        if not consumed_at:
            if not progress.done():
                return False
            consumed_at.append(time.monotonic())
        with monitor.lock:
            tally = monitor.tally
            since = time.monotonic() - max(tally.last_change, consumed_at[0])
            return since >= options.quiet_s and tally.triggers.issubset(tally.results.keys())

    try:
        done = wait_until(settled, options.settle_timeout_s, interval_s=0.5)
    finally:
        progress.close()
    dead = pipeline.dead_services()
    if dead:
        raise PipelineFailed(f"{dead[0].name} exited; log {dead[0].log_path}:\n{dead[0].tail()}")
    return done


def ending_now(
    events: list[Envelope], margin_s: float = 60.0, end: datetime | None = None
) -> list[Envelope]:
    """The same history shifted in time so its last event happened ``margin_s`` ago.

    The main job replays a few days of generated shopping in event time; shifting it to end
    now (or at ``end``, to make runs comparable) makes the triggers it produces fresh (not
    expired) when the sink sees them with the wall clock, as they would be in a live shop.
    """
    if not events:
        return events
    end = end or datetime.now(UTC) - timedelta(seconds=margin_s)
    shift = end - events[-1].occurred_at
    return [
        event.model_copy(
            update={
                "occurred_at": event.occurred_at + shift,
                "received_at": event.received_at + shift,
            }
        )
        for event in events
    ]


def write_report(path: Path, stats_by_type: dict[str, int], tally: OutputTally) -> None:
    """The run's outcome as JSON: counts, and every trigger id (for comparing runs)."""
    import orjson

    report = {
        "events_by_type": dict(stats_by_type),
        "transitions": tally.transitions,
        "persona_distribution": dict(Counter(tally.lifecycle_persona.values())),
        "triggers_by_type": dict(tally.triggers_by_type),
        "trigger_ids": sorted(tally.triggers),
        "sends_by_outcome": dict(tally.outcomes()),
        "decode_errors": tally.decode_errors,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))

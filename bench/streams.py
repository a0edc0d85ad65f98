"""Stream worker benchmark: ``python -m bench.streams`` (``BENCH_QUICK=1`` for a < 2 min run;
``python -m bench.streams --inproc`` for the in-process cost per event, no broker).

In one run, on the generator's event mix, on the same broker (a local Tansu unless
KAFKA_BOOTSTRAP_SERVERS is set), 6 partitions:

(a) raw ceiling: confluent-kafka consume + Avro decode (``decode_raw``), nothing else;
(b) idiomatic Faust: one agent, per-event JSON decode, one table update per event;
(c) personaflow's worker (``personaflow worker``: decode, identity, engine, outputs, tables);
(d) Faust's no-op path: ``stream.take_events(2000, within=0.05)``, events dropped;
(e) personaflow's intake alone: the worker's own app (Faust group, aiokafka fetch in Faust's
    consumer thread, the batch intake, acknowledgements and commits) with the processing
    replaced by "acknowledge at once": the ceiling of the worker's transport, and with (c)
    the share of a worker's time that is transport rather than processing;

then the transport floor (the same paced load read by a bare aiokafka consumer: producer ->
broker -> consumer, no processing: the part of e2t no worker can remove), and on the worker:
event->trigger latency at a fixed 2,000 events/s (wall clock; a welcome trigger fires on a
customer's first Identify: latency = trigger record time - Identify sent),
deadline->trigger lag (cart deadlines falling due during the run),
recovery time of a fresh worker (empty data dir: the table comes back from its changelog) and
memory per customer. Throughput is measured from committed offsets (commit interval 0.2 s)
between the first commit and the last; each variant is repeated and the median reported.
Prints human lines, then one JSON object as the last line.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

QUICK = os.environ.get("BENCH_QUICK") == "1"
PARTITIONS = 6
EVENTS = int(os.environ.get("BENCH_EVENTS", 15_000 if QUICK else 100_000))
REPEATS = int(os.environ.get("BENCH_REPEATS", 1 if QUICK else 3))
RECOVERY_CUSTOMERS = int(os.environ.get("BENCH_RECOVERY", 10_000 if QUICK else 100_000))
RATE = 2000
RATE_SECONDS = 5 if QUICK else 15
BENCH_RULES = """\
version: 1
settings:
  budget: {per_day: 6, per_week: 6}
  holdout: {salt: bench, share: 0.0}
  quiet_hours: {start: 0, end: 0}
"""


def say(line: str) -> None:
    print(line, flush=True)


# ---------------------------------------------------------------- baselines (subprocess)


def baseline_main(mode: str) -> None:
    """A minimal Faust app: ``idiomatic`` (JSON + one table update per event) or ``noop``."""
    import faust

    env = os.environ
    prefix, partitions = env["BENCH_PREFIX"], int(env["BENCH_PARTITIONS"])
    topics = [f"{prefix}events.{n}" for n in ("site", "cart", "purchase", "engagement", "identity")]
    app = faust.App(
        env["BENCH_APP_ID"],
        broker=f"kafka://{env['KAFKA_BOOTSTRAP_SERVERS']}",
        store="rocksdb://",
        datadir=env["BENCH_DATA"],
        topic_partitions=partitions,
        broker_session_timeout=4.0,
        broker_heartbeat_interval=1.0,
        broker_commit_interval=0.2,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
    )
    if mode == "idiomatic":
        channel = app.topic(*topics, key_type=bytes, value_serializer="json")
        table = app.Table("visits", default=int, partitions=partitions)

        async def idiomatic(stream: Any) -> None:
            async for value in stream:
                table[value.get("customer_id") or value.get("anonymous_id")] += 1

        app.agent(channel, name="idiomatic")(idiomatic)
    else:
        channel = app.topic(*topics, key_type=bytes, value_type=bytes, value_serializer="raw")

        async def noop(stream: Any) -> None:
            async for _events in stream.take_events(2000, within=0.05):
                pass

        app.agent(channel, name="noop")(noop)
    app.main()


def intake_main() -> None:
    """(e): ``personaflow worker``'s app with every batch acknowledged unprocessed."""
    from streams.app import create_app
    from streams.worker import StreamWorker

    async def acknowledge(self: StreamWorker, events: Any) -> list[Any]:
        return list(events)

    StreamWorker.handle = acknowledge  # type: ignore[method-assign]  # before the intake binds it
    create_app().main()


# ---------------------------------------------------------------- helpers


def events_mix(n: int, seed: int = 7) -> list[Any]:
    from personaflow.generator.stream import generate_events

    return list(generate_events(seed, max(50, n // 20), n, datetime(2026, 1, 5, tzinfo=UTC)))


def produce(bootstrap: str, prefix: str, events: list[Any], *, as_json: bool = False) -> float:
    from confluent_kafka import Producer

    from personaflow.kafka import producer_config
    from schemas.codec import encode_event
    from schemas.topics import EVENT_TOPIC

    producer = Producer(producer_config(bootstrap))
    started = time.perf_counter()
    for i, event in enumerate(events):
        value = event.model_dump_json().encode() if as_json else encode_event(event)
        topic = prefix + EVENT_TOPIC[event.type].name
        producer.produce(topic, key=event.key.encode(), value=value)
        if i % 5000 == 0:
            producer.poll(0)
    producer.flush(60)
    return time.perf_counter() - started


def measure(bootstrap: str, group: str, prefix: str, total: int, proc: Any,
            timeout: float = 600.0) -> float:  # fmt: skip
    """Events/s between the first and the last commit of ``group``."""
    from streams.harness import committed_total
    from streams.topics import TopicNames

    topics = TopicNames(prefix).inputs
    first: tuple[float, int] | None = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{group} exited with {proc.returncode}")
        done = committed_total(bootstrap, group, topics, PARTITIONS)
        now = time.monotonic()
        if done and first is None:
            first = (now, done)
        if done >= total and first is not None:
            if now - first[0] < 0.5:
                raise RuntimeError(f"{group}: run too short to measure; raise BENCH_EVENTS")
            return (total - first[1]) / (now - first[0])
        time.sleep(0.05)
    raise TimeoutError(f"{group} did not finish")


def stop(proc: Any) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def new_topics(bootstrap: str) -> str:
    from personaflow.admin import create_topics

    prefix = f"bs{uuid.uuid4().hex[:8]}-"
    create_topics(bootstrap, prefix, PARTITIONS, 1).raise_for_errors()
    return prefix


# ---------------------------------------------------------------- variants


def raw_ceiling(bootstrap: str, prefix: str, total: int) -> float:
    from confluent_kafka import Consumer

    from personaflow.kafka import consumer_config
    from schemas.codec import decode_raw
    from streams.topics import TopicNames

    consumer = Consumer(consumer_config(bootstrap, f"{prefix}raw-{uuid.uuid4().hex[:6]}"))
    consumer.subscribe(TopicNames(prefix).inputs)
    seen, started = 0, None
    while seen < total:
        for msg in consumer.consume(1000, 0.5):
            if msg.error() is None:
                if started is None:
                    started = time.perf_counter()
                decode_raw(msg.value())
                seen += 1
    elapsed = time.perf_counter() - (started or time.perf_counter())
    consumer.close()
    return total / elapsed


def faust_baseline(bootstrap: str, prefix: str, total: int, mode: str, work: Path) -> float:
    app_id = f"{prefix}{mode}-{uuid.uuid4().hex[:4]}"
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "BENCH_PREFIX": prefix,
           "BENCH_PARTITIONS": str(PARTITIONS), "BENCH_APP_ID": app_id,
           "BENCH_DATA": str(work / app_id)}  # fmt: skip
    log = (work / f"{app_id}.log").open("wb")
    argv = [sys.executable, "-m", "bench.streams", "--baseline", mode, "worker", "-l", "warn"]
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    try:
        return measure(bootstrap, app_id, prefix, total, proc)
    finally:
        stop(proc)


def worker(bootstrap: str, prefix: str, work: Path, name: str, **env: str) -> Any:
    from streams.harness import WorkerProcess

    rules = work / "bench-rules.yaml"
    rules.write_text(BENCH_RULES)
    settings = {"PERSONAFLOW_RULES_FILE": str(rules), "PERSONAFLOW_COMMIT_INTERVAL_S": "0.2",
                "PERSONAFLOW_SESSION_TIMEOUT_S": "4", **env}  # fmt: skip
    # the wall clock, as in production: with the event clock (replaying history through the
    # stack) a worker waits for the partitions' bounds (docs/streams.md), and draining the
    # 100k backlog took over 7 minutes (session 3) - that is the cost of replay-identical
    # ordering, not of processing
    clock = settings.pop("clock", "wall")
    app_id = f"{prefix}{name}-{uuid.uuid4().hex[:4]}"
    return WorkerProcess(bootstrap, prefix, app_id, work / app_id, partitions=PARTITIONS,
                         clock=clock, env=settings)  # fmt: skip


def worker_eps(bootstrap: str, prefix: str, total: int, work: Path, *, intake_only: bool = False,
               **env: str) -> float:  # fmt: skip
    proc = worker(bootstrap, prefix, work, "intake" if intake_only else "worker", **env)
    if intake_only:
        proc.argv = [sys.executable, "-m", "bench.streams", "--intake-only", "worker", "-l", "warn"]
    proc.start()
    try:
        assert proc.process is not None
        return measure(bootstrap, proc.app_id, prefix, total, proc.process)
    finally:
        proc.stop()


# ---------------------------------------------------------------- latency


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def paced(events: list[Any], rate: int, send: Callable[[Any], None]) -> None:
    started = time.perf_counter()
    for i, event in enumerate(events):
        wait = started + i / rate - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        send(event)


def latency(bootstrap: str, work: Path, **env: str) -> dict[str, float]:
    """e2t at RATE events/s (wall clock), and the lag of cart deadlines falling due."""
    from confluent_kafka import Producer

    from personaflow.kafka import producer_config
    from schemas import models as m
    from schemas.codec import decode_event, encode_event
    from schemas.topics import EVENT_TOPIC
    from streams.harness import read_topic
    from streams.topics import TopicNames

    prefix = new_topics(bootstrap)
    proc = worker(bootstrap, prefix, work, "latency", clock="wall", **env).start()
    producer = Producer(producer_config(bootstrap, linger_ms=1))
    sent: dict[str, float] = {}
    identified: dict[str, float] = {}  # customer -> first Identify sent (welcome triggers)
    due: dict[str, float] = {}
    try:
        proc.wait_ready(60)
        now = time.time()
        # cart deadlines (1 h after the add) falling due over the measurement window
        carts = []
        for i in range(200):
            cid = f"lag-{i}"
            added = datetime.fromtimestamp(now - 3600 + 5 + i * RATE_SECONDS / 200, UTC)
            shoe = m.Product(product_id="p", name="p", category="c", price=1.0)
            carts += [
                m.Identify(event_id=f"{cid}-i", occurred_at=added - timedelta(seconds=1),
                           customer_id=cid, traits=m.Traits(email=f"{cid}@example.com")),
                m.ProductAdded(event_id=f"{cid}-a", occurred_at=added, customer_id=cid,
                               cart_id="k", product=shoe),
            ]  # fmt: skip
            due[cid] = added.timestamp() + 3600
        for event in carts:
            topic = prefix + EVENT_TOPIC[event.type].name  # type: ignore[attr-defined]
            producer.produce(topic, key=event.key.encode(), value=encode_event(event))
        producer.flush(10)
        # encoded ahead, each stamped with the moment it is due to be sent: the paced loop
        # only hands bytes to librdkafka, so the producer does not take the worker's CPU
        mix = events_mix(RATE * RATE_SECONDS, seed=99)
        start = time.time() + 2.0
        planned = [
            (event, prefix + EVENT_TOPIC[event.type].name, event.key.encode(),
             encode_event(event.model_copy(update={
                 "occurred_at": datetime.fromtimestamp(start + i / RATE, UTC)})))
            for i, event in enumerate(mix)
        ]  # fmt: skip
        time.sleep(max(0.0, start - time.time()))

        def send(item: Any) -> None:
            event, topic, key, value = item
            sent[event.event_id] = time.time()
            if event.type == "Identify":
                identified.setdefault(event.customer_id, sent[event.event_id])
            producer.produce(topic, key=key, value=value)
            producer.poll(0)

        assert proc.process is not None
        cpu_before, wall_before = _cpu_seconds(proc.process.pid), time.monotonic()
        paced(planned, RATE, send)
        producer.flush(10)
        cpu_share = (_cpu_seconds(proc.process.pid) - cpu_before) / (time.monotonic() - wall_before)
        time.sleep(3)
        records = read_topic(bootstrap, TopicNames(prefix).triggers, idle=2, timeout=30)
        metrics_text = proc.get("/metrics")[1].decode()
    finally:
        proc.stop()
    fetch, wait = ({q: histogram_quantile(metrics_text, f"personaflow_{name}_seconds", q)
                    for q in (0.5, 0.99)} for name in ("fetch_delay", "intake_wait"))  # fmt: skip
    e2t, lag = [], []
    by_type: dict[str, list[float]] = {}
    for record in records:
        trigger: Any = decode_event(record.value())
        at = record.timestamp()[1] / 1000.0
        if trigger.cause_event_id in sent:
            e2t.append(at - sent[trigger.cause_event_id])
        elif trigger.trigger_type == "welcome" and trigger.customer_id in identified:
            e2t.append(at - identified[trigger.customer_id])
        elif trigger.trigger_type == "cart_abandonment" and trigger.customer_id in due:
            lag.append(at - due[trigger.customer_id])
            continue
        else:
            continue
        by_type.setdefault(trigger.trigger_type, []).append(e2t[-1])
    for kind, values in sorted(by_type.items()):
        say(f"  {kind}: {len(values)} triggers, p50 {percentile(values, 0.5) * 1e3:.1f} ms, "
            f"p99 {percentile(values, 0.99) * 1e3:.1f} ms")  # fmt: skip
    say(f"e2t at {RATE} ev/s: {len(e2t)} triggers, p50 {percentile(e2t, 0.5) * 1e3:.1f} ms, "
        f"p99 {percentile(e2t, 0.99) * 1e3:.1f} ms")  # fmt: skip
    say(f"  every input record, from the worker's histograms (bucket-interpolated): fetch delay "
        f"(record timestamp -> fetched into the intake) p50 {fetch[0.5] * 1e3:.0f} ms, p99 "
        f"{fetch[0.99] * 1e3:.0f} ms; intake wait (-> taken by the processing task) p50 "
        f"{wait[0.5] * 1e3:.0f} ms, p99 {wait[0.99] * 1e3:.0f} ms")  # fmt: skip
    say(f"deadline lag: {len(lag)} of {len(due)} cart deadlines, p99 {percentile(lag, 0.99):.2f} s")
    say(f"worker CPU while paced: {cpu_share:.2f} of a core")
    return {"e2t_p50_ms": percentile(e2t, 0.5) * 1e3, "e2t_p99_ms": percentile(e2t, 0.99) * 1e3,
            "e2t_triggers": len(e2t), "deadline_lag_p99_s": percentile(lag, 0.99),
            "deadline_lag_n": len(lag), "worker_cpu_share": cpu_share,
            "fetch_delay_p50_ms": fetch[0.5] * 1e3,
            "fetch_delay_p99_ms": fetch[0.99] * 1e3,
            "intake_wait_p99_ms": wait[0.99] * 1e3}  # fmt: skip


def histogram_quantile(text: str, name: str, q: float) -> float:
    """Quantile ``q`` of Prometheus histogram ``name`` in a ``/metrics`` page, interpolated
    linearly inside its bucket (as PromQL's histogram_quantile); nan without samples."""
    bounds: list[tuple[float, float]] = []
    for line in text.splitlines():
        if line.startswith(name + "_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            bounds.append((float(le), float(line.rsplit(" ", 1)[1])))
    bounds.sort()
    total = bounds[-1][1] if bounds else 0.0
    if not total:
        return float("nan")
    rank, lower, below = q * total, 0.0, 0.0
    for upper, count in bounds:
        if count >= rank:
            if upper == float("inf"):
                return lower
            share = (rank - below) / (count - below) if count > below else 1.0
            return lower + (upper - lower) * share
        lower, below = upper, count
    return lower


def _floor_consumer(bootstrap: str, topics: list[str], total: int, out: Any) -> None:
    """Subprocess of :func:`transport_floor`: a bare aiokafka consumer (the client Faust
    uses, same fetch wait as the worker), no processing; puts each record's latency."""
    import asyncio

    from aiokafka import AIOKafkaConsumer

    from streams.settings import StreamSettings

    async def consume() -> list[float]:
        consumer = AIOKafkaConsumer(
            *topics, bootstrap_servers=bootstrap, group_id=f"floor-{uuid.uuid4().hex[:6]}",
            auto_offset_reset="earliest", enable_auto_commit=False,
            fetch_max_wait_ms=StreamSettings().fetch_max_wait_ms,
            session_timeout_ms=4000, heartbeat_interval_ms=1000,
        )  # fmt: skip
        await consumer.start()
        latencies: list[float] = []
        deadline, ready = time.time() + RATE_SECONDS + 90, False
        try:
            while len(latencies) < total and time.time() < deadline:
                batch = await consumer.getmany(timeout_ms=50, max_records=500)
                now = time.time()
                for part in batch.values():
                    for message in part:
                        if not message.value.startswith(b"warm"):
                            latencies.append(now - float(message.value))
                        elif not ready:  # joined and fetching: the paced load may start
                            out.put("ready")
                            ready = True
        finally:
            await consumer.stop()
        return latencies

    out.put(asyncio.run(consume()))


def transport_floor(bootstrap: str) -> dict[str, float]:
    """The producer -> broker -> consumer part of e2t, as a floor measured in the same run: the
    latency part's rate over the input topics, read by a bare aiokafka consumer."""
    import multiprocessing
    import queue

    from confluent_kafka import Producer

    from personaflow.kafka import producer_config
    from streams.topics import TopicNames

    prefix = new_topics(bootstrap)
    topics = list(TopicNames(prefix).inputs)
    total = RATE * RATE_SECONDS
    spawn = multiprocessing.get_context("spawn")
    out = spawn.Queue()
    reader = spawn.Process(target=_floor_consumer, args=(bootstrap, topics, total, out))
    reader.start()
    try:
        producer = Producer(producer_config(bootstrap, linger_ms=1))
        for _ in range(600):  # until the consumer joined its group and fetches (warm-up)
            for topic in topics:
                producer.produce(topic, value=b"warm")
            producer.flush(5)
            try:
                if out.get(timeout=0.1) == "ready":
                    break
            except queue.Empty:
                continue
        time.sleep(0.5)  # the remaining warm-up records drain

        def send(i: int) -> None:
            producer.produce(topics[i % len(topics)], key=str(i).encode(),
                             value=repr(time.time()).encode())  # fmt: skip
            producer.poll(0)

        paced(list(range(total)), RATE, send)
        producer.flush(10)
        latencies: list[float] = out.get(timeout=RATE_SECONDS + 90)
    finally:
        reader.join(10)
        if reader.is_alive():
            reader.kill()
    say(f"transport floor at {RATE} ev/s (producer -> broker -> bare aiokafka consumer, no "
        f"processing): {len(latencies)} records, p50 {percentile(latencies, 0.5) * 1e3:.1f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1e3:.1f} ms")  # fmt: skip
    return {"p50_ms": percentile(latencies, 0.5) * 1e3, "p99_ms": percentile(latencies, 0.99) * 1e3}


def _native() -> str:
    """What the workers ran: the domain core compiled (``make native``) or interpreted."""
    import processors

    return processors.NATIVE


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` and its children so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- recovery


def recovery(bootstrap: str, work: Path, customers: int) -> dict[str, float]:
    """Fill a table with ``customers`` states, then time a fresh worker's recovery."""
    from schemas import models as m
    from streams.harness import wait_committed
    from streams.topics import TopicNames

    prefix = new_topics(bootstrap)
    at = datetime(2026, 1, 5, 10, tzinfo=UTC)
    shoe = m.Product(product_id="p", name="shoe", category="shoes", price=1.0)
    events = [m.ProductViewed(event_id=f"r{i}", occurred_at=at, customer_id=f"r{i:07d}",
                              product=shoe) for i in range(customers)]  # fmt: skip
    produce(bootstrap, prefix, events)
    first = worker(bootstrap, prefix, work, "fill").start()
    try:
        empty_start = first.wait_ready(120)
        rss_empty = first.rss_bytes()
        wait_committed(bootstrap, first.app_id, TopicNames(prefix).inputs, PARTITIONS,
                       customers, timeout=900)  # fmt: skip
        time.sleep(1.0)
        rss_full = first.rss_bytes()
    finally:
        first.stop()
    records = _end_offsets(bootstrap, f"{first.app_id}-customers-changelog")
    second = worker(bootstrap, prefix, work, "fill")
    second.app_id = first.app_id  # same group and changelog, empty data dir
    second.data_dir = work / f"{first.app_id}-fresh"
    second.start()
    try:
        recovered = second.wait_ready(900)
        status, body = second.get("/personas")
        held = json.loads(body)["customers"] if status == 200 else -1
    finally:
        second.stop()
    per_customer = (rss_full - rss_empty) / customers
    say(f"recovery of {customers} customers from the changelog: ready in {recovered:.1f} s "
        f"(empty table: {empty_start:.1f} s), {held} states back from {records} changelog "
        f"records ({records / customers:.2f} per customer: recovery time follows them); "
        f"memory ~{per_customer:.0f} B/customer (RSS, cache included)")  # fmt: skip
    return {"recovery_s": recovered, "recovery_empty_start_s": empty_start,
            "recovered_customers": held, "bytes_per_customer": per_customer,
            "changelog_records": records}  # fmt: skip


def _end_offsets(bootstrap: str, topic: str) -> int:
    """Records in ``topic`` (sum of its partitions' end offsets). Exact on Tansu too for a
    changelog: every persist ends each partition with a one-record batch (single tail)."""
    from confluent_kafka import Consumer, TopicPartition

    from personaflow.kafka import consumer_config

    consumer = Consumer(consumer_config(bootstrap, f"ends-{uuid.uuid4().hex[:6]}"))
    try:
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                   for p in range(PARTITIONS))  # fmt: skip
    finally:
        consumer.close()


# ---------------------------------------------------------------- main


def main() -> None:
    from personaflow.devstack import BrokerProcess

    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
    broker = None
    if not bootstrap:
        broker = BrokerProcess()
        broker.start()
        bootstrap = broker.bootstrap
    work = Path(tempfile.mkdtemp(prefix="bench-streams-"))
    try:
        results = run(bootstrap, work)
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(work, ignore_errors=True)  # RocksDB tables of every variant: ~30 MB
    print(json.dumps(results), flush=True)


def run(bootstrap: str, work: Path) -> dict[str, Any]:
    from streams.settings import StreamSettings

    say(f"bench.streams: {EVENTS} events of the generator's mix, {PARTITIONS} partitions, "
        f"{REPEATS} repeat(s), broker {'Tansu (local)' if 'KAFKA_BOOTSTRAP_SERVERS' not in os.environ else bootstrap}")  # noqa: E501
    events = events_mix(EVENTS)
    avro, js = new_topics(bootstrap), new_topics(bootstrap)
    say(f"produced Avro in {produce(bootstrap, avro, events):.1f} s, "
        f"JSON in {produce(bootstrap, js, events, as_json=True):.1f} s")
    names = ("raw", "idiomatic", "noop", "intake", "worker")
    runs: dict[str, list[float]] = {k: [] for k in names}
    for n in range(REPEATS):
        runs["raw"].append(raw_ceiling(bootstrap, avro, EVENTS))
        runs["idiomatic"].append(faust_baseline(bootstrap, js, EVENTS, "idiomatic", work))
        runs["noop"].append(faust_baseline(bootstrap, avro, EVENTS, "noop", work))
        runs["intake"].append(worker_eps(bootstrap, avro, EVENTS, work, intake_only=True))
        # the worker also writes internal topics it reads back: a fresh topic set per run
        fresh = avro if n == 0 else new_topics(bootstrap)
        if n:
            produce(bootstrap, fresh, events)
        runs["worker"].append(worker_eps(bootstrap, fresh, EVENTS, work))
        say(f"run {n + 1}: " + ", ".join(f"{k} {v[-1]:,.0f} ev/s" for k, v in runs.items()))
    med = {k: statistics.median(v) for k, v in runs.items()}
    say(f"medians: worker {med['worker']:,.0f} ev/s = {med['worker'] / med['idiomatic']:.2f}x "
        f"idiomatic Faust ({med['idiomatic']:,.0f}), {med['worker'] / med['noop']:.2f}x Faust "
        f"no-op ({med['noop']:,.0f}), {med['worker'] / med['raw']:.2f}x raw ceiling "
        f"({med['raw']:,.0f})")  # fmt: skip
    say(f"intake alone (fetch, acks, commits; nothing processed) {med['intake']:,.0f} ev/s: "
        f"{1e6 / med['intake']:.0f} us of a worker's {1e6 / med['worker']:.0f} us per event")
    floor = transport_floor(bootstrap)
    lat = latency(bootstrap, work)
    say("e2t again with the hold alone (PERSONAFLOW_ALIGN_RELEASE_CAUGHT_UP=false):")
    hold_only = latency(bootstrap, work, PERSONAFLOW_ALIGN_RELEASE_CAUGHT_UP="false")
    say("e2t again without event-time alignment (PERSONAFLOW_ALIGN_HOLD_MS=0):")
    unaligned = latency(bootstrap, work, PERSONAFLOW_ALIGN_HOLD_MS="0")
    rec = recovery(bootstrap, work, RECOVERY_CUSTOMERS)
    key = f"recovery_s_{RECOVERY_CUSTOMERS // 1000}k"
    return {
        "worker_eps": round(med["worker"]),
        "idiomatic_faust_eps": round(med["idiomatic"]),
        "faust_noop_eps": round(med["noop"]),
        "raw_ceiling_eps": round(med["raw"]),
        "intake_noop_eps": round(med["intake"]),
        "worker_vs_idiomatic": round(med["worker"] / med["idiomatic"], 2),
        "e2t_p50_ms": round(lat["e2t_p50_ms"], 1),
        "e2t_p99_ms": round(lat["e2t_p99_ms"], 1),
        "fetch_delay_p50_ms": round(lat["fetch_delay_p50_ms"], 1),
        "fetch_delay_p99_ms": round(lat["fetch_delay_p99_ms"], 1),
        "intake_wait_p99_ms": round(lat["intake_wait_p99_ms"], 1),
        "deadline_lag_p99_s": round(lat["deadline_lag_p99_s"], 2),
        "transport_p50_ms": round(floor["p50_ms"], 1),
        "transport_p99_ms": round(floor["p99_ms"], 1),
        "e2t_p50_ms_hold_only": round(hold_only["e2t_p50_ms"], 1),
        "e2t_p99_ms_hold_only": round(hold_only["e2t_p99_ms"], 1),
        "e2t_p50_ms_unaligned": round(unaligned["e2t_p50_ms"], 1),
        "e2t_p99_ms_unaligned": round(unaligned["e2t_p99_ms"], 1),
        "worker_cpu_share_at_rate": round(lat["worker_cpu_share"], 2),
        "align_hold_ms": StreamSettings().align_hold_ms,
        "fetch_max_wait_ms": StreamSettings().fetch_max_wait_ms,
        "recovery_s_100k": round(rec["recovery_s"], 2) if RECOVERY_CUSTOMERS == 100_000 else None,
        key: round(rec["recovery_s"], 2),
        "recovery_empty_start_s": round(rec["recovery_empty_start_s"], 2),
        "recovery_changelog_records": rec["changelog_records"],
        "bytes_per_customer": round(rec["bytes_per_customer"]),
        "events": EVENTS,
        "native": _native(),
        "repeats": REPEATS,
        "quick": QUICK,
    }


class _Message:
    """What the batch intake hands the worker (an aiokafka ConsumerRecord's fields)."""

    __slots__ = ("headers", "key", "offset", "partition", "timestamp", "topic", "value")

    def __init__(self, topic: str, partition: int, offset: int, key: bytes, value: bytes) -> None:
        self.topic, self.partition, self.offset = topic, partition, offset
        self.key, self.value, self.timestamp, self.headers = key, value, 0.0, ()


def _messages(events: list[Any]) -> list[_Message]:
    from schemas.codec import encode_event
    from schemas.topics import EVENT_TOPIC
    from streams.replay import partition_for

    offsets: dict[tuple[str, int], int] = {}
    out = []
    for event in events:
        topic, key = EVENT_TOPIC[event.type].name, event.key.encode()
        partition = partition_for(key, PARTITIONS)
        offset = offsets[(topic, partition)] = offsets.get((topic, partition), -1) + 1
        out.append(_Message(topic, partition, offset, key, encode_event(event)))
    return out


def _read_back(outputs: list[Any], topic: str, base: int) -> list[_Message]:
    from streams.replay import partition_for

    back = []
    for n, out in enumerate(o for o in outputs if o.topic == topic):
        message = _Message(topic, partition_for(out.key, PARTITIONS), base + n, out.key, out.value)
        message.headers = tuple(out.headers)
        back.append(message)
    return back


class _CaughtUpConsumer:
    """Stands in for the worker's consumer in the in-process run: the broker holds exactly
    what was fed so far (high watermark = the next offset of each topic-partition) and every
    partition was answered by a fetch after the latest records arrived. That is the live
    worker keeping up with its input, so the aligner releases records as it does live
    (caught-up release), instead of holding every topic that has nothing buffered for the
    whole hold (and, with the event clock, waiting for bounds no peer ever sends)."""

    def __init__(self) -> None:
        self.next: dict[tuple[str, int], int] = {}
        self._thread = SimpleNamespace(_ensure_consumer=lambda: self)
        self._committed_offset: dict[Any, int] = {}

    def fed(self, messages: list[Any]) -> None:
        for m in messages:
            self.next[(m.topic, m.partition)] = m.offset + 1

    def highwater(self, tp: Any) -> int:
        return self.next.get((tp.topic, tp.partition), 0)

    def last_poll_timestamp(self, tp: Any) -> int:
        return int(time.time() * 1000) + 1


def _inproc_worker(hold_ms: int) -> Any:
    from streams.clock import WallClock
    from streams.domain import load_domain
    from streams.replay import MemoryTables
    from streams.settings import StreamSettings
    from streams.worker import StreamWorker

    with tempfile.TemporaryDirectory(prefix="bench-rules-") as folder:
        rules = Path(folder) / "rules.yaml"
        rules.write_text(BENCH_RULES)
        domain = load_domain(rules)
    # the wall clock, as the live bench's worker runs (no bounds across partitions)
    settings = StreamSettings(align_hold_ms=hold_ms, partitions=PARTITIONS, clock="wall")
    app = SimpleNamespace(consumer=_CaughtUpConsumer())
    # the in-process path never persists (the bench calls _admit and process, not handle), so
    # the replay's in-memory tables stand in for the Faust tables' reads
    tables: Any = MemoryTables(domain.encode_state)
    return StreamWorker(app, settings, domain, WallClock(), tables)


def _inproc_once(messages: list[Any], hold_ms: int, batch: int) -> dict[str, float]:
    """Seconds spent admitting (decode + alignment) and processing ``messages``, and how
    many records were processed (all of them: the caught-up consumer lets every one go)."""
    worker = _inproc_worker(hold_ms)
    consumer = worker.app.consumer
    admit = process = 0.0
    count = 0
    back: list[Any] = []  # internal.rekeyed outputs, read back with the next batch
    for i in range(0, len(messages), batch):
        fed = [*back, *messages[i : i + batch]]
        consumer.fed(fed)
        t0 = time.perf_counter()
        records = worker._admit(fed)
        while worker.more and worker.aligner is not None and len(worker.aligner):
            records += worker._admit([])  # as the intake does: again at once when more wait
        t1 = time.perf_counter()
        effects = worker.processor.process(records)
        t2 = time.perf_counter()
        admit, process = admit + t1 - t0, process + t2 - t1
        count += sum(1 for r in records if r.topic in worker.topics.inputs)
        back = _read_back(effects.outputs, worker.topics.rekeyed, i)
    if worker.aligner is not None and len(worker.aligner):  # what the last hold still keeps
        worker._busy_s -= 3600.0
        t0 = time.perf_counter()
        records = worker._admit([])
        t1 = time.perf_counter()
        worker.processor.process(records)
        t2 = time.perf_counter()
        admit, process = admit + t1 - t0, process + t2 - t1
        count += sum(1 for r in records if r.topic in worker.topics.inputs)
    return {"admit": admit, "process": process, "count": count}


def inproc() -> dict[str, Any]:
    """In-process cost per event of the worker's path (no broker): decode alone, then
    admission + processing with alignment on and off; medians of BENCH_REPEATS."""
    from streams.wire import decode_input

    n = int(os.environ.get("BENCH_EVENTS", 20_000))
    messages = _messages(events_mix(n))
    names = ("decode", "aligned", "unaligned", "aligned_admit", "aligned_process")
    rows: dict[str, list[float]] = {k: [] for k in names}
    for _ in range(max(REPEATS, 3)):
        t0 = time.perf_counter()
        for m in messages:
            decode_input(m.value)
        rows["decode"].append(time.perf_counter() - t0)
        on = _inproc_once(messages, 300, 300)
        off = _inproc_once(messages, 0, 300)
        for name, part in (("aligned", on), ("unaligned", off)):
            if part["count"] != len(messages):  # a figure for fewer records is no figure
                raise RuntimeError(f"{name}: {part['count']} of {len(messages)} processed")
        rows["aligned"].append(on["admit"] + on["process"])
        rows["aligned_admit"].append(on["admit"])
        rows["aligned_process"].append(on["process"])
        rows["unaligned"].append(off["admit"] + off["process"])
    us = {k: statistics.median(v) / len(messages) * 1e6 for k, v in rows.items()}
    say(f"in-process, {len(messages)} events, 300-record batches, medians of "
        f"{len(rows['decode'])}: decode {us['decode']:.1f} us/event; aligned path "
        f"{us['aligned']:.1f} us/event (admit+decode {us['aligned_admit']:.1f}, process "
        f"{us['aligned_process']:.1f}) = {1e6 / us['aligned']:,.0f} ev/s; unaligned "
        f"{us['unaligned']:.1f} us/event = {1e6 / us['unaligned']:,.0f} ev/s")  # fmt: skip
    return {
        "inproc_decode_us": round(us["decode"], 1),
        "inproc_aligned_us": round(us["aligned"], 1),
        "inproc_aligned_admit_us": round(us["aligned_admit"], 1),
        "inproc_aligned_process_us": round(us["aligned_process"], 1),
        "inproc_unaligned_us": round(us["unaligned"], 1),
        "inproc_aligned_eps": round(1e6 / us["aligned"]),
        "alignment_cost_ratio": round(us["aligned"] / us["unaligned"], 3),
        "events": len(messages),
    }


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):
        print(__doc__)
    elif len(sys.argv) > 1 and sys.argv[1] == "--inproc":
        print(json.dumps(inproc()), flush=True)
    elif len(sys.argv) > 2 and sys.argv[1] == "--baseline":
        mode = sys.argv[2]
        sys.argv = [sys.argv[0], *sys.argv[3:]]
        baseline_main(mode)
    elif len(sys.argv) > 1 and sys.argv[1] == "--intake-only":
        sys.argv = [sys.argv[0], *sys.argv[2:]]
        intake_main()
    else:
        main()

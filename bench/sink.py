"""Benchmark of the ESP sink: ``python -m bench.sink [--repeat 3] [--n 20000]``.

Measures, per sink process (the sink runs in this process; the local ESPs run in their own
processes), against a real broker and Redis (``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL``, else
a Tansu broker and a redis-server started here):

- ``http_sends_per_s``: triggers pre-produced, the full sink (consume, guards with Redis,
  render, batched SendGrid-shaped HTTP, Send Result produced, offsets committed) until all
  are handled; the sink's batch hot path with batches of up to 1,000 triggers (one request
  of up to 1,000 personalizations each, SendGrid's cap) and 2,048 triggers in flight;
- ``smtp_sends_per_s``: the same into a local SMTP server (aiosmtpd);
- ``naive_sends_per_s``: the baseline in the same run: consume, render, one synchronous HTTP
  request per trigger (no batching, no concurrency, no guards, no results);
- ``serial_sink_sends_per_s``: the full sink with concurrency 1 and no batching (one
  synchronous request per trigger, same guarantees as the measured sink);
- ``t2a_p50_ms`` / ``t2a_p99_ms``: triggers produced at a fixed rate (500/s), latency from
  the trigger's ``created_at`` to the ESP accepting it (ESP clock, same machine).

Each measurement is repeated (``--repeat``) and the median reported. Human lines first, the
last line is one JSON object. ``*_cpu_ms_per_send``: process CPU per handled trigger (all
threads of the sink's process; ``http_esp_cpu_ms_per_send``: the local HTTP ESP's process).
``--http-only`` runs just the HTTP throughput measurement (a quick check, same settings);
``--latency-only`` just the t2a measurement at ``--rate`` (``--repeat`` times).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import Consumer, Producer

from personaflow.kafka import consumer_config, producer_config
from schemas.codec import encode_event
from schemas.models import Trigger
from sinks.codec import decode_trigger
from sinks.compose import compose
from sinks.esp.http import build_payload
from sinks.harness import FAST_GROUP, Env, make_trigger, produce, running_sink
from sinks.render import Renderer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open")


ESP_PIDS: dict[str, int] = {}
"""Process id of each local ESP (for its CPU time)."""


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _spawn_esp(kind: str, stack: ExitStack) -> int:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "sinks.devservers", kind, str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ESP_PIDS[kind] = proc.pid
    stack.callback(proc.wait, 5)
    stack.callback(proc.terminate)
    _wait_port(port)
    return port


def _endpoints(stack: ExitStack) -> tuple[str, str]:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
    redis_url = os.environ.get("REDIS_URL", "")
    if not bootstrap:
        from personaflow.devstack import BrokerProcess

        broker = BrokerProcess()
        broker.start()
        stack.callback(broker.stop)
        bootstrap = broker.bootstrap
    if not redis_url:
        from personaflow.devstack import RedisProcess

        server = RedisProcess()
        server.start()
        stack.callback(server.stop)
        redis_url = server.url
    return bootstrap, redis_url


def _new_env(bootstrap: str, redis_url: str) -> Env:
    from personaflow.admin import create_topics

    prefix = f"b{uuid.uuid4().hex[:8]}-"
    report = create_topics(bootstrap, prefix, 4, 1).raise_for_errors()
    return Env(bootstrap, redis_url, prefix, dict(report.names))


def _triggers(n: int, tag: str) -> list[Trigger]:
    tag = f"{tag}{uuid.uuid4().hex[:6]}"
    return [make_trigger(f"{tag}-{i}", customer_id=f"c{tag}-{i}") for i in range(n)]


CPU_MS: dict[str, list[float]] = {}
"""Process CPU milliseconds per trigger of each measured sink run (all threads)."""


async def _drain(env: Env, settings, n: int, label: str = "") -> float:
    """Run the sink until ``n`` triggers are handled; sends/s from the moment the first
    fetched batch is taken up (after the group join) to the last trigger handled. (Counting
    from the first *handled* trigger instead, as before, credits the run with the batches
    already in flight at that moment: with thousands in flight, a third of a 6,000 run.)"""
    async with running_sink(settings, env.wiring()) as app:
        service = app.service
        first = None
        while service.handled < n:
            if first is None and (service.inflight or service.handled):
                first = (time.perf_counter(), service.handled, time.process_time())
            await asyncio.sleep(0.001 if first is None else 0.005)
        end, cpu_end = time.perf_counter(), time.process_time()
    assert first is not None
    if label:
        CPU_MS.setdefault(label, []).append((cpu_end - first[2]) * 1000 / (n - first[1]))
    return (n - first[1]) / (end - first[0])


HTTP_CONCURRENCY = 2048
"""Triggers in flight in the HTTP throughput run: two batches being rendered and sent while
others wait for Redis, the ESP or the broker (with 512 the loop sat idle a third of the time)."""
HTTP_BATCH = 1000
"""Triggers per batch and personalizations per request (SendGrid's cap per request)."""


def bench_http(bootstrap: str, redis_url: str, port: int, n: int) -> float:
    env = _new_env(bootstrap, redis_url)
    produce(bootstrap, env.topics["triggers.email"], _triggers(n, "h"))
    settings = env.settings(esp="http", http_url=f"http://127.0.0.1:{port}/v3/mail/send",
                            concurrency=HTTP_CONCURRENCY, batch_size=HTTP_BATCH,
                            http_batch_size=HTTP_BATCH, http_batch_wait_ms=5)
    esp_before = _cpu_s(ESP_PIDS.get("http", 0))
    rate = asyncio.run(_drain(env, settings, n, "http"))
    CPU_MS.setdefault("esp", []).append((_cpu_s(ESP_PIDS.get("http", 0)) - esp_before) * 1000 / n)
    return rate


def http_only(args: argparse.Namespace) -> None:
    """``--http-only``: just the HTTP throughput run, ``--repeat`` times (a quick check)."""
    rates = []
    with ExitStack() as stack:
        bootstrap, redis_url = _endpoints(stack)
        port = _spawn_esp("http", stack)
        for r in range(args.repeat):
            rates.append(bench_http(bootstrap, redis_url, port, args.n))
            print(f"run {r + 1}: http {rates[-1]:.0f}/s, sink CPU "
                  f"{CPU_MS['http'][-1]:.3f} ms/send, local ESP CPU {CPU_MS['esp'][-1]:.3f} "
                  "ms/send", flush=True)
    print(json.dumps({
        "http_sends_per_s": round(statistics.median(rates), 1),
        "http_cpu_ms_per_send": round(statistics.median(CPU_MS["http"]), 3),
        "http_esp_cpu_ms_per_send": round(statistics.median(CPU_MS["esp"]), 3),
        "http_runs": [round(r) for r in rates],
        "repeat": args.repeat,
        "n_http": args.n,
    }))


def latency_only(args: argparse.Namespace) -> None:
    """``--latency-only``: just the t2a measurement at ``--rate``, ``--repeat`` times."""
    p50s, p99s = [], []
    with ExitStack() as stack:
        bootstrap, redis_url = _endpoints(stack)
        port = _spawn_esp("http", stack)
        for r in range(args.repeat):
            p50, p99, count = bench_latency(bootstrap, redis_url, port, args.rate, args.seconds)
            p50s.append(p50)
            p99s.append(p99)
            print(f"run {r + 1}: t2a p50 {p50:.1f} ms p99 {p99:.1f} ms ({count} at "
                  f"{args.rate}/s)", flush=True)
    print(json.dumps({
        "t2a_p50_ms": round(statistics.median(p50s), 2),
        "t2a_p99_ms": round(statistics.median(p99s), 2),
        "t2a_p50_runs": [round(v, 1) for v in p50s],
        "t2a_p99_runs": [round(v, 1) for v in p99s],
        "rate_per_s": args.rate,
        "repeat": args.repeat,
    }))


def bench_smtp(bootstrap: str, redis_url: str, port: int, n: int) -> float:
    env = _new_env(bootstrap, redis_url)
    produce(bootstrap, env.topics["triggers.email"], _triggers(n, "s"))
    settings = env.settings(esp="smtp", smtp_port=port, concurrency=64, smtp_connections=8)
    return asyncio.run(_drain(env, settings, n, "smtp"))


def bench_serial(bootstrap: str, redis_url: str, port: int, n: int) -> float:
    """The same sink (all guards, ledger, results) with no concurrency and no batching: one
    synchronous request per trigger."""
    env = _new_env(bootstrap, redis_url)
    produce(bootstrap, env.topics["triggers.email"], _triggers(n, "q"))
    settings = env.settings(esp="http", http_url=f"http://127.0.0.1:{port}/v3/mail/send",
                            concurrency=1, http_batch_size=1)
    return asyncio.run(_drain(env, settings, n))


def bench_naive(bootstrap: str, port: int, n: int) -> float:
    """Consume, render, one blocking POST per trigger, no guards, no results: the floor of
    what a first sink would do."""
    env = _new_env(bootstrap, "")
    produce(bootstrap, env.topics["triggers.email"], _triggers(n, "n"))
    settings = env.settings()
    renderer = Renderer(settings.templates_dir)
    consumer = Consumer(consumer_config(bootstrap, f"{env.prefix}naive", **FAST_GROUP))
    consumer.subscribe([env.topics["triggers.email"]])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    done, started = 0, None
    try:
        while done < n:
            msg = consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            started = started or time.perf_counter()
            email = compose(settings, renderer, decode_trigger(msg.value()))
            conn.request("POST", "/v3/mail/send", json.dumps(build_payload([email])),
                         {"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 202, resp.status
            consumer.commit(message=msg, asynchronous=False)
            done += 1
    finally:
        conn.close()
        consumer.close()
    assert started is not None
    return n / (time.perf_counter() - started)


def _esp_stats(port: int) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/stats")
    data: dict[str, Any] = json.loads(conn.getresponse().read())
    conn.close()
    return data


def paced_producer(bootstrap: str, topic: str, rate: int, seconds: float, tag: str) -> None:
    """Produce ``rate`` triggers/s for ``seconds`` (run in its own process so it does not take
    CPU from the sink); prints ``{trigger id: created_at epoch s}`` as JSON at the end."""
    producer = Producer(producer_config(bootstrap, **{"linger.ms": 1}))
    # warm up first (metadata, idempotent producer id: about a second on Tansu), so the
    # producer's own start-up is not counted as sink latency; this trigger is not measured
    warm = make_trigger(f"{tag}warmup", customer_id=f"cp-{tag}warmup")
    producer.produce(topic, encode_event(warm), key=warm.customer_id)
    producer.flush(30)
    created: dict[str, float] = {}
    start = time.time()
    for i in range(int(rate * seconds)):
        delay = start + i / rate - time.time()
        if delay > 0:
            time.sleep(delay)
        now = datetime.now(UTC)
        t = make_trigger(f"{tag}p{i}", customer_id=f"cp-{tag}{i}", created_at=now,
                         expires_at=now + timedelta(hours=1))
        created[t.trigger_id] = t.created_at.timestamp()
        producer.produce(topic, encode_event(t), key=t.customer_id)
        producer.poll(0)
    producer.flush(10)
    print(json.dumps(created))


async def _paced(env: Env, settings, rate: int, seconds: float, esp_port: int) -> list[float]:
    total = int(rate * seconds) + 1  # + the producer's warm-up trigger
    async with running_sink(settings, env.wiring()) as app:
        for _ in range(1000):
            if app.service.assigned:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.sink", "--paced-producer", env.bootstrap,
            env.topics["triggers.email"], str(rate), str(seconds), env.prefix,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await proc.communicate()
        created: dict[str, float] = json.loads(out.decode().strip().splitlines()[-1])
        for _ in range(2400):  # at most 120 s
            if app.service.handled >= total:
                break
            await asyncio.sleep(0.05)
    accepted = _esp_stats(esp_port)["accepted"]
    return sorted((accepted[k] - v) * 1000 for k, v in created.items() if k in accepted)


def bench_latency(bootstrap: str, redis_url: str, port: int, rate: int, seconds: float):
    env = _new_env(bootstrap, redis_url)
    settings = env.settings(esp="http", http_url=f"http://127.0.0.1:{port}/v3/mail/send",
                            concurrency=256, http_batch_size=100, http_batch_wait_ms=2)
    lat = asyncio.run(_paced(env, settings, rate, seconds, port))
    return lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))], len(lat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20_000, help="triggers per HTTP run")
    parser.add_argument("--smtp-n", type=int, default=4_000, help="triggers per SMTP run")
    parser.add_argument("--naive-n", type=int, default=2_000, help="triggers per naive run")
    parser.add_argument("--rate", type=int, default=500, help="triggers/s for latency")
    parser.add_argument("--seconds", type=float, default=10.0, help="latency run length")
    parser.add_argument("--low-rate", type=int, default=200, help="second latency rate")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--http-only", action="store_true",
                        help="only the HTTP throughput run (--repeat times, --n triggers)")
    parser.add_argument("--latency-only", action="store_true",
                        help="only the t2a measurement at --rate (--repeat times)")
    parser.add_argument("--paced-producer", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.paced_producer:
        b, topic, rate, seconds, tag = args.paced_producer
        paced_producer(b, topic, int(rate), float(seconds), tag)
        return
    import logging
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanups on SIGTERM

    logging.basicConfig(level=logging.WARNING)
    from sinks.app import tune_gc

    tune_gc()  # as a sink process does (sinks.app.serve): the sink runs in this process
    if args.http_only:
        http_only(args)
        return
    if args.latency_only:
        latency_only(args)
        return
    with ExitStack() as stack, tempfile.TemporaryDirectory():
        bootstrap, redis_url = _endpoints(stack)
        http_port = _spawn_esp("http", stack)
        smtp_port = _spawn_esp("smtp", stack)
        runs: dict[str, list[float]] = {
            k: [] for k in ("http", "smtp", "naive", "serial", "p50", "p99", "lp50", "lp99")
        }
        for r in range(args.repeat):
            runs["naive"].append(bench_naive(bootstrap, http_port, args.naive_n))
            runs["serial"].append(bench_serial(bootstrap, redis_url, http_port, args.naive_n))
            runs["http"].append(bench_http(bootstrap, redis_url, http_port, args.n))
            runs["smtp"].append(bench_smtp(bootstrap, redis_url, smtp_port, args.smtp_n))
            p50, p99, count = bench_latency(bootstrap, redis_url, http_port, args.rate,
                                            args.seconds)
            runs["p50"].append(p50)
            runs["p99"].append(p99)
            lp50, lp99, _ = bench_latency(bootstrap, redis_url, http_port, args.low_rate,
                                          args.seconds)
            runs["lp50"].append(lp50)
            runs["lp99"].append(lp99)
            print(f"run {r + 1}: http {runs['http'][-1]:.0f}/s, smtp {runs['smtp'][-1]:.0f}/s, "
                  f"naive {runs['naive'][-1]:.0f}/s, serial sink {runs['serial'][-1]:.0f}/s, "
                  f"t2a p50 {p50:.1f} ms p99 {p99:.1f} ms "
                  f"({count} at {args.rate}/s); at {args.low_rate}/s p50 {lp50:.1f} ms "
                  f"p99 {lp99:.1f} ms", flush=True)
    med = {k: statistics.median(v) for k, v in runs.items()}
    print(f"median: http {med['http']:.0f}/s ({med['http'] / med['naive']:.1f}x naive, "
          f"{med['http'] / med['serial']:.1f}x serial sink), smtp {med['smtp']:.0f}/s, "
          f"naive {med['naive']:.0f}/s, serial sink {med['serial']:.0f}/s, "
          f"t2a p50 {med['p50']:.1f} ms, p99 {med['p99']:.1f} ms; sink CPU per send: "
          f"http {statistics.median(CPU_MS['http']):.2f} ms, "
          f"smtp {statistics.median(CPU_MS['smtp']):.2f} ms")
    print(json.dumps({
        "http_sends_per_s": round(med["http"], 1),
        "smtp_sends_per_s": round(med["smtp"], 1),
        "naive_sends_per_s": round(med["naive"], 1),
        "serial_sink_sends_per_s": round(med["serial"], 1),
        "http_vs_naive": round(med["http"] / med["naive"], 2),
        "http_vs_serial_sink": round(med["http"] / med["serial"], 2),
        "http_cpu_ms_per_send": round(statistics.median(CPU_MS["http"]), 3),
        "http_esp_cpu_ms_per_send": round(statistics.median(CPU_MS["esp"]), 3),
        "smtp_cpu_ms_per_send": round(statistics.median(CPU_MS["smtp"]), 3),
        "t2a_p50_ms": round(med["p50"], 2),
        "t2a_p99_ms": round(med["p99"], 2),
        "t2a_p50_ms_low_rate": round(med["lp50"], 2),
        "t2a_p99_ms_low_rate": round(med["lp99"], 2),
        "low_rate_per_s": args.low_rate,
        "repeat": args.repeat,
        "n_http": args.n,
        "rate_per_s": args.rate,
    }))


if __name__ == "__main__":
    main()

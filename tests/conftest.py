"""Shared fixtures: real services, started once per test session on free loopback ports.

- ``kafka_bootstrap`` (session, str ``host:port``): ``KAFKA_BOOTSTRAP_SERVERS`` when set,
  else a Tansu broker (in-memory) started here and stopped at session end.
- ``redis_url`` (session, str): ``REDIS_URL`` when set, else a local ``redis-server``.
- ``redis_server`` (session): a dedicated local ``redis-server`` (append-only persistence)
  with ``.url``, ``.stop()`` and ``.start()`` (same port, same data) for outage tests; it is
  always local, since an outage cannot be simulated on a server we do not own. It is
  restarted after each test that left it stopped.
- ``unique`` (function, str): a short unique prefix for topic names and group ids, e.g.
  ``"t1a2b3c4d5-"``.
- ``make_topics(prefix, partitions=4)`` (function): creates every catalogue topic with that
  prefix and returns ``{catalogue name: full topic name}``.
- ``consume(topics, count, timeout=30, linger=1)`` (function): reads the records of
  ``topics`` from the start with a fresh consumer group, until ``count`` arrived and then
  ``linger`` seconds more (so extra records show up too), or ``timeout`` ran out.

Servers run in their own process groups, die with the test process (Linux parent-death
signal) and are stopped at interpreter exit, so an interrupted run leaves nothing behind.
"""

from __future__ import annotations

import gc
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Message

from personaflow.devstack import (
    BrokerProcess,
    RedisProcess,
    ServerProcess,
    ServerStartError,
    StackError,
)
from personaflow.kafka import consumer_config

_STARTED_REDIS: list[RedisProcess] = []


def _env(*names: str) -> str:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return ""


def _start_with_retries(make: Callable[[], ServerProcess], attempts: int = 3) -> ServerProcess:
    """Start a server on a fresh free port; retry when another process took the port first."""
    for attempt in range(attempts):
        server = make()
        try:
            server.start()
            return server
        except ServerStartError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by folder: tests/integration -> integration, tests/e2e -> e2e."""
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "integration" in parts:
            item.add_marker(pytest.mark.integration)
        elif "e2e" in parts:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Kafka-protocol broker: the configured one, or a Tansu started for this session."""
    configured = _env("KAFKA_BOOTSTRAP_SERVERS", "PERSONAFLOW_KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
        return
    log = tmp_path_factory.mktemp("tansu") / "tansu.log"
    broker = _start_with_retries(lambda: BrokerProcess(log_path=log))
    assert isinstance(broker, BrokerProcess)
    try:
        yield broker.bootstrap
    finally:
        # clients the tests dropped are destroyed while the broker still answers, so they do
        # not log reconnect failures after the run's summary
        gc.collect()
        broker.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis: the configured one, or a ``redis-server`` started for this session."""
    configured = _env("REDIS_URL", "PERSONAFLOW_REDIS_URL")
    if configured:
        yield configured
        return
    log = tmp_path_factory.mktemp("redis") / "redis.log"
    server = _start_with_retries(lambda: RedisProcess(log_path=log))
    assert isinstance(server, RedisProcess)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """A dedicated local Redis that tests may stop and start again (same port, same data)."""
    base = tmp_path_factory.mktemp("redis-outage")
    try:
        server = _start_with_retries(
            lambda: RedisProcess(log_path=base / "redis.log", data_dir=base / "data")
        )
    except StackError as exc:
        pytest.skip(f"no local redis-server to control: {exc}")
    assert isinstance(server, RedisProcess)
    _STARTED_REDIS.append(server)
    try:
        yield server
    finally:
        _STARTED_REDIS.remove(server)
        server.stop()


@pytest.fixture(autouse=True)
def _restart_stopped_redis() -> Iterator[None]:
    """After each test, bring back a ``redis_server`` the test left stopped."""
    yield
    for server in _STARTED_REDIS:
        if not server.running():
            server.start()


@pytest.fixture
def unique() -> str:
    """A short unique prefix for topic names and consumer group ids (ends with ``-``)."""
    return f"t{uuid.uuid4().hex[:10]}-"


@pytest.fixture
def make_topics(kafka_bootstrap: str) -> Callable[..., dict[str, str]]:
    """Create every catalogue topic under a prefix; returns {catalogue name: full name}."""
    from personaflow.admin import create_topics

    def make(prefix: str, partitions: int = 4) -> dict[str, str]:
        report = create_topics(kafka_bootstrap, prefix, partitions, 1).raise_for_errors()
        return dict(report.names)

    return make


@pytest.fixture
def consume(kafka_bootstrap: str, unique: str) -> Callable[..., list[Message]]:
    """Read ``count`` records from the beginning of ``topics`` (fresh group each call)."""
    calls = iter(range(1_000_000))

    def read(
        topics: list[str], count: int, timeout: float = 30.0, linger: float = 1.0
    ) -> list[Message]:
        group = f"{unique}consume-{next(calls)}"
        consumer = Consumer(consumer_config(kafka_bootstrap, group, session_timeout_ms=3000))
        consumer.subscribe(topics)
        got: list[Message] = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                for msg in consumer.consume(num_messages=500, timeout=0.5):
                    if msg.error() is None:
                        got.append(msg)
                if len(got) >= count:  # keep reading a little: extra records must show
                    deadline = min(deadline, time.monotonic() + linger)
        finally:
            consumer.close()
        return got

    return read


@pytest.fixture
def env(
    kafka_bootstrap: str, redis_url: str, unique: str, make_topics: Callable[..., dict[str, str]]
) -> object:
    """The sink tests' environment (topics of a fresh prefix, the session broker and Redis);
    a module that needs another kind of ``env`` defines its own."""
    from sinks.harness import Env

    return Env(kafka_bootstrap, redis_url, unique, make_topics(unique))


@pytest.fixture
async def esp() -> AsyncIterator[object]:
    """A local SendGrid-shaped HTTP ESP on a free loopback port."""
    from sinks.devservers import LocalHttpEsp

    server = LocalHttpEsp()
    await server.start()
    yield server
    await server.stop()

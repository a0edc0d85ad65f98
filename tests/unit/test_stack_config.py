"""Kafka client configs, endpoint resolution and small stack helpers (no services)."""

from __future__ import annotations

import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from personaflow.devstack import Endpoints, StackNotRunning, free_port, resolve_endpoints
from personaflow.generator import publish
from personaflow.generator.publish import Pacer
from personaflow.kafka import consumer_config, producer_config
from personaflow.settings import Settings


def test_producer_config_is_durable_and_murmur2():
    config = producer_config("h:1")
    assert config["bootstrap.servers"] == "h:1"
    assert config["acks"] == "all"
    assert config["enable.idempotence"] is True
    assert config["partitioner"] == "murmur2_random"


def test_overrides_accept_python_names_and_win():
    config = consumer_config("h:1", "g", session_timeout_ms=3000, **{"auto.offset.reset": "latest"})
    assert config["session.timeout.ms"] == 3000
    assert config["auto.offset.reset"] == "latest"
    assert config["group.id"] == "g"
    assert config["enable.auto.commit"] is False


def test_callbacks_keep_their_names():
    def on_error(_err):
        return None

    config = producer_config("h:1", error_cb=on_error, linger_ms=1)
    assert config["error_cb"] is on_error and config["linger.ms"] == 1


def test_confluent_kafka_accepts_the_configs():
    from confluent_kafka import Consumer, Producer

    Producer(producer_config("127.0.0.1:1")).flush(0)
    Consumer(consumer_config("127.0.0.1:1", "g")).close()


@given(bootstrap=st.from_regex(r"[a-z]{1,10}:[0-9]{2,5}", fullmatch=True))
def test_configured_endpoints_are_returned_as_given(tmp_path_factory, bootstrap):
    data_dir = tmp_path_factory.mktemp("d")
    settings = Settings(kafka_bootstrap_servers=bootstrap, redis_url="redis://r:1/0",
                        data_dir=data_dir)  # fmt: skip
    assert resolve_endpoints(settings) == Endpoints(bootstrap, "redis://r:1/0")


def test_missing_endpoints_say_what_to_do(tmp_path):
    settings = Settings(kafka_bootstrap_servers="", redis_url="", data_dir=tmp_path)
    with pytest.raises(StackNotRunning) as caught:
        resolve_endpoints(settings)
    message = str(caught.value)
    assert "personaflow dev up" in message and "KAFKA_BOOTSTRAP_SERVERS" in message
    assert caught.value.retriable is False


def test_redis_may_be_optional(tmp_path):
    settings = Settings(kafka_bootstrap_servers="k:1", redis_url="", data_dir=tmp_path)
    assert resolve_endpoints(settings, need_redis=False) == Endpoints("k:1", "")
    with pytest.raises(StackNotRunning, match="REDIS_URL"):
        resolve_endpoints(settings)


def test_endpoints_as_env():
    assert Endpoints("k:1", "redis://r/0").as_env() == {
        "KAFKA_BOOTSTRAP_SERVERS": "k:1", "REDIS_URL": "redis://r/0"}  # fmt: skip


def test_free_port_is_bindable():
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_pacer_spaces_items(monkeypatch: pytest.MonkeyPatch):
    now = [100.0]  # an injected clock; the pacer's sleeps advance it instead of waiting

    def sleep(seconds: float) -> None:
        now[0] += seconds

    monkeypatch.setattr(publish.time, "sleep", sleep)
    pacer = Pacer(200, clock=lambda: now[0])
    slept = [pacer.wait(i) for i in range(21)]
    assert now[0] == pytest.approx(100.0 + 20 / 200)  # item i at start + i / rate
    assert slept[0] == 0.0 and slept[1:] == pytest.approx([1 / 200] * 20)
    now[0] += 1.0  # late: nothing to wait for, and no drift after
    assert pacer.wait(21) == 0.0
    assert pacer.wait(300) == pytest.approx(0.4) and now[0] == pytest.approx(101.5)
    unlimited = Pacer(0)
    assert all(unlimited.wait(i) == 0.0 for i in range(1000))

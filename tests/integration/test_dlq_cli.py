"""``personaflow dlq`` end to end against the real broker: listings hide payloads unless asked,
``show --show-payload`` gives an editable event, and a fix re-published through the CLI reaches
the original topic once; a second re-publish of the same dead letter is refused."""

from __future__ import annotations

import pytest
import typer
from confluent_kafka import Consumer, Producer
from typer.testing import CliRunner

from personaflow import dlq
from personaflow.commands import ops
from personaflow.kafka import consumer_config, producer_config
from schemas.codec import decode_event
from schemas.deadletter import dead_letter_for, dead_letter_record
from schemas.errors import DecodeError
from tests.integration.test_dlq_republish import (
    _added,
    _consume,
    _contract_breaking_avro,
    _produce,
)


@pytest.fixture
def topics(make_topics, unique):
    return make_topics(unique)


@pytest.fixture(scope="module")
def producer(kafka_bootstrap):
    producer = Producer(producer_config(kafka_bootstrap))
    yield producer
    producer.flush(5)


@pytest.fixture
def app(kafka_bootstrap, unique, monkeypatch) -> typer.Typer:
    """A CLI with only the ops commands, pointed at the test broker and topic prefix."""
    app = typer.Typer()
    app.callback()(lambda: None)
    ops.register(app)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("PERSONAFLOW_TOPIC_PREFIX", unique)
    return app


def test_cli_lists_without_payload_and_republishes(app, kafka_bootstrap, producer, topics):
    secret = b'{"email": "jane@example.com"}'
    value, headers = dead_letter_record(secret, "payload is not Avro", "BadMagicByte",
                                        topics["events.identity"], 2, 41, b"cust-9")  # fmt: skip
    _produce(producer, topics["dlq.events"], value, b"cust-9", headers)
    runner = CliRunner()

    listed = runner.invoke(app, ["dlq", "list", "--topic", "dlq.events"])
    assert listed.exit_code == 0, listed.output
    assert "payload is not Avro" in listed.output and "jane@example.com" not in listed.output
    with_payload = runner.invoke(app, ["dlq", "list", "--show-payload"])
    assert "jane@example.com" in with_payload.output
    [letter] = dlq.read_dlq(kafka_bootstrap, topics["dlq.events"]).letters
    shown = runner.invoke(app, ["dlq", "show", str(letter.ref.offset)])
    assert shown.exit_code == 0 and "BadMagicByte" in shown.output
    assert f"{topics['events.identity']}[2]@41" in shown.output

    first = runner.invoke(app, ["dlq", "republish", "--offset", str(letter.ref)])
    assert first.exit_code == 0 and "re-published: 1" in first.output
    second = runner.invoke(app, ["dlq", "republish", "--offset", str(letter.ref)])
    assert second.exit_code == 1 and "already re-published" in second.output
    missing = runner.invoke(app, ["dlq", "show", "999"])
    assert missing.exit_code == 1 and "no dead letter" in missing.output


def test_cli_show_payload_fix_and_republish(app, kafka_bootstrap, producer, topics, unique,
                                            tmp_path):  # fmt: skip
    good = _added("cust-5")
    raw = _contract_breaking_avro(good)
    try:
        decode_event(raw)
    except DecodeError as exc:
        value, headers = dead_letter_for(exc, topics["events.cart"], 1, 5, b"cust-5")
    _produce(producer, topics["dlq.events"], value, b"cust-5", headers)
    runner = CliRunner()
    [letter] = dlq.read_dlq(kafka_bootstrap, topics["dlq.events"]).letters
    shown = runner.invoke(app, ["dlq", "show", str(letter.ref), "--show-payload"])
    assert shown.exit_code == 0 and "ValidationFailed" in shown.output
    payload = shown.output.strip().splitlines()[-1]
    fix = tmp_path / "fixed.json"
    fix.write_text(payload.replace('"cart_id":""', '"cart_id":"cart-1"'))
    done = runner.invoke(app, ["dlq", "republish", "--offset", str(letter.ref), "--fix-json",
                               str(fix)])  # fmt: skip
    assert done.exit_code == 0 and "(fixed payload)" in done.output, done.output
    consumer = Consumer(consumer_config(kafka_bootstrap, f"{unique}reader"))
    consumer.subscribe([topics["events.cart"]])
    try:
        [message] = _consume(consumer, 1)
        assert decode_event(message.value()) == good and message.key() == b"cust-5"
    finally:
        consumer.close()

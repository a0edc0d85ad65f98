"""Topic provisioning against the real broker: idempotent, mismatches named, CLI included."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from personaflow.admin import TopicProvisioningError, create_topics, list_topics
from personaflow.devstack import free_port
from personaflow.kafka import KafkaClientError
from schemas.topics import ALL_TOPICS

CO_PARTITIONED = {spec.name for spec in ALL_TOPICS if spec.co_partitioned}


def test_second_run_changes_nothing(kafka_bootstrap, unique):
    first = create_topics(kafka_bootstrap, unique, 3)
    second = create_topics(kafka_bootstrap, unique, 3)
    assert sorted(first.created) == sorted(f"{unique}{s.name}" for s in ALL_TOPICS)
    assert first.errors == {} and second.errors == {}
    assert second.created == [] and not second.changed
    assert sorted(second.present) == sorted(first.created)


def test_partition_mismatch_is_an_error_naming_each_co_partitioned_topic(kafka_bootstrap, unique):
    create_topics(kafka_bootstrap, unique, 2)
    report = create_topics(kafka_bootstrap, unique, 5)
    assert set(report.errors) == {f"{unique}{name}" for name in CO_PARTITIONED}
    assert all("has 2 partitions" in why for why in report.errors.values())
    assert any("dlq.events" in note for note in report.notes)  # not co-partitioned: a note
    with pytest.raises(TopicProvisioningError, match=f"{unique}events.site") as caught:
        report.raise_for_errors()
    assert caught.value.retriable is False


def test_list_topics_marks_catalogue_topics(kafka_bootstrap, unique):
    create_topics(kafka_bootstrap, unique, 2)
    infos = {info.name: info for info in list_topics(kafka_bootstrap, unique)}
    assert set(infos) == {f"{unique}{s.name}" for s in ALL_TOPICS}
    assert all(info.in_catalogue and info.partitions == 2 for info in infos.values())


def test_unreachable_broker_is_a_retriable_error():
    with pytest.raises(KafkaClientError) as caught:
        create_topics(f"127.0.0.1:{free_port()}", "x-", 1, timeout=1.5)
    assert caught.value.retriable is True


def _cli(kafka_bootstrap: str, prefix: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
           "PERSONAFLOW_TOPIC_PREFIX": prefix, "COLUMNS": "200"}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "personaflow.cli", *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )


def test_cli_topics_create_twice_then_list(kafka_bootstrap, unique):
    first = _cli(kafka_bootstrap, unique, "topics", "create", "--partitions", "3")
    second = _cli(kafka_bootstrap, unique, "topics", "create", "--partitions", "3")
    assert first.returncode == 0, first.stderr
    assert f"{len(ALL_TOPICS)} created, 0 already present" in first.stdout
    assert second.returncode == 0, second.stderr
    assert f"0 created, {len(ALL_TOPICS)} already present - nothing changed" in second.stdout
    listed = _cli(kafka_bootstrap, unique, "topics", "list")
    assert listed.returncode == 0
    assert all(f"{unique}{s.name}" in listed.stdout for s in ALL_TOPICS)


def test_cli_topics_create_mismatch_exits_non_zero(kafka_bootstrap, unique):
    create_topics(kafka_bootstrap, unique, 2)
    result = _cli(kafka_bootstrap, unique, "topics", "create", "--partitions", "4")
    assert result.returncode == 1
    assert f"{unique}events.cart" in result.stdout and "error" in result.stdout

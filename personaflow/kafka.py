"""confluent-kafka client configuration shared by every service we run our own loop for.

Producers of customer-keyed topics must hash keys like the Java client and aiokafka/Faust
(murmur2), or one customer's events land on different partitions in different topics; so
:func:`producer_config` sets ``partitioner=murmur2_random`` (see DESIGN.md, "Flow of data").

Overrides are librdkafka property names; Python-style keyword names are accepted too and
translated (``session_timeout_ms=3000`` means ``session.timeout.ms``).
"""

from __future__ import annotations

from typing import Any

from schemas.topics import PRODUCER_PARTITIONER

PRODUCER_DEFAULTS: dict[str, Any] = {
    "acks": "all",
    "enable.idempotence": True,
    "partitioner": PRODUCER_PARTITIONER,
    "linger.ms": 5,
    "message.timeout.ms": 30_000,
}
"""Durable, ordered, co-partitioned: every write acknowledged by all in-sync replicas."""

CONSUMER_DEFAULTS: dict[str, Any] = {
    "auto.offset.reset": "earliest",
    "enable.auto.commit": False,
    "session.timeout.ms": 6_000,
    "heartbeat.interval.ms": 1_500,
}
"""At-least-once: the caller commits after processing. Short sessions because group joins
wait half the session timeout on some brokers (Tansu); raise it for slow processing."""


class KafkaClientError(Exception):
    """A Kafka client operation failed; ``retriable`` says whether trying again may help."""

    def __init__(self, message: str, *, retriable: bool) -> None:
        super().__init__(message)
        self.retriable = retriable


_PYTHON_ONLY_KEYS = frozenset({"on_delivery", "on_commit", "logger"})
"""confluent-kafka's own (callback) settings, whose names keep their underscores."""


def _normalise(overrides: dict[str, Any]) -> dict[str, Any]:
    """Translate ``session_timeout_ms`` style keys to librdkafka's ``session.timeout.ms``;
    callbacks (``error_cb``, ``on_delivery``, ...) keep their names."""
    return {
        key if key in _PYTHON_ONLY_KEYS or key.endswith("_cb") else key.replace("_", "."): value
        for key, value in overrides.items()
    }


def producer_config(bootstrap: str, **overrides: Any) -> dict[str, Any]:
    """Config for a ``confluent_kafka.Producer``: acks=all, idempotence, murmur2 partitioner."""
    return {"bootstrap.servers": bootstrap, **PRODUCER_DEFAULTS, **_normalise(overrides)}


def consumer_config(bootstrap: str, group: str, **overrides: Any) -> dict[str, Any]:
    """Config for a ``confluent_kafka.Consumer`` in consumer group ``group``.

    Reads from the earliest offset when the group has none, and never auto-commits: commit
    after the effect of a record is durable (at-least-once).
    """
    return {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        **CONSUMER_DEFAULTS,
        **_normalise(overrides),
    }


def admin_config(bootstrap: str, **overrides: Any) -> dict[str, Any]:
    """Config for a ``confluent_kafka.admin.AdminClient``."""
    return {"bootstrap.servers": bootstrap, **_normalise(overrides)}


def wait_for_broker(bootstrap: str, timeout: float = 15.0) -> int:
    """Block until the cluster at ``bootstrap`` answers a metadata request; return its broker
    count. Raises :class:`KafkaClientError` (retriable) when it does not answer in time."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(admin_config(bootstrap, **{"socket.connection.setup.timeout.ms": 1000}))
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise KafkaClientError(
            f"Kafka at {bootstrap} did not answer metadata within {timeout:.0f}s: {exc}",
            retriable=True,
        ) from exc
    return len(metadata.brokers)

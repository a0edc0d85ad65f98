"""Topic provisioning from the catalogue (``schemas.topics.ALL_TOPICS``), idempotently.

:func:`create_topics` creates what is missing with the catalogue's configs, leaves what exists
alone, and reports a partition-count mismatch of a co-partitioned topic as an error naming the
topic (co-partitioning is what keeps a customer's whole state on one worker).

Brokers differ in what topic configs they accept: when a create is refused because of its
configs, the topic is created without them and the report says so. Tansu (the local broker)
accepts and stores ``retention.ms`` and ``cleanup.policy`` but does not enforce retention or
compaction; the report carries a note when the cluster looks like Tansu.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from personaflow.kafka import KafkaClientError, admin_config
from schemas.topics import ALL_TOPICS, TopicSpec

_CONFIG_ERRORS = frozenset(
    {"INVALID_CONFIG", "POLICY_VIOLATION", "UNSUPPORTED_VERSION", "INVALID_REQUEST"}
)


class TopicProvisioningError(KafkaClientError):
    """One or more topics are missing or wrongly shaped; the message names each of them."""


@dataclass
class TopicReport:
    """What :func:`create_topics` did, topic by topic (full names, prefix included)."""

    created: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    configs_skipped: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)
    """Catalogue name -> full topic name."""

    @property
    def changed(self) -> bool:
        """Whether this run created anything."""
        return bool(self.created)

    def raise_for_errors(self) -> TopicReport:
        """Raise :class:`TopicProvisioningError` naming each failed topic; else return self."""
        if self.errors:
            detail = "; ".join(f"{topic}: {why}" for topic, why in sorted(self.errors.items()))
            raise TopicProvisioningError(f"topic provisioning failed: {detail}", retriable=False)
        return self


@dataclass(frozen=True)
class TopicInfo:
    """One topic on the cluster, as listed by :func:`list_topics`."""

    name: str
    partitions: int
    in_catalogue: bool


def _admin(bootstrap: str) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient(admin_config(bootstrap))


def _existing(admin: Any, timeout: float) -> tuple[dict[str, int], str]:
    """Topic name -> partition count, and the cluster id."""
    from confluent_kafka import KafkaException

    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise KafkaClientError(f"cannot list topics: {exc}", retriable=True) from exc
    topics = {name: len(meta.partitions) for name, meta in metadata.topics.items()}
    return topics, str(metadata.cluster_id or "")


def _check_existing(
    report: TopicReport, spec: TopicSpec, name: str, have: int, partitions: int
) -> None:
    report.present.append(name)
    if have == partitions:
        return
    why = f"has {have} partitions, the catalogue wants {partitions}"
    if spec.co_partitioned:
        report.errors[name] = f"{why} (co-partitioned topics must match; recreate it)"
    else:
        report.notes.append(f"{name} {why} (not co-partitioned: left as is)")


def _create(admin: Any, specs: list[tuple[TopicSpec, str]], partitions: int,
            replication: int, with_configs: bool) -> dict[str, Any]:  # fmt: skip
    """Create topics; return name -> None on success or the KafkaError."""
    from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

    if not specs:
        return {}
    new = [
        NewTopic(name, partitions, replication, config=dict(spec.configs) if with_configs else {})
        for spec, name in specs
    ]
    outcome: dict[str, Any] = {}
    for name, future in admin.create_topics(new, operation_timeout=15).items():
        try:
            future.result()
            outcome[name] = None
        except Exception as exc:  # noqa: BLE001 - KafkaException carries the KafkaError
            outcome[name] = exc.args[0] if exc.args else exc
    return outcome


def _error_name(error: Any) -> str:
    name = getattr(error, "name", None)
    return str(name()) if callable(name) else type(error).__name__


def create_topics(
    bootstrap: str,
    prefix: str = "",
    partitions: int = 12,
    replication: int = 1,
    *,
    specs: Iterable[TopicSpec] = ALL_TOPICS,
    timeout: float = 15.0,
) -> TopicReport:
    """Create every catalogue topic (``prefix`` + name) that is missing; idempotent.

    Errors (a mismatched partition count, a refused create) are collected in the report, not
    raised: call :meth:`TopicReport.raise_for_errors` to fail on them.
    """
    admin = _admin(bootstrap)
    existing, cluster_id = _existing(admin, timeout)
    report = TopicReport()
    missing: list[tuple[TopicSpec, str]] = []
    for spec in specs:
        name = spec.full_name(prefix)
        report.names[spec.name] = name
        if name in existing:
            _check_existing(report, spec, name, existing[name], partitions)
        else:
            missing.append((spec, name))
    _create_missing(admin, report, missing, partitions, replication)
    if "tansu" in cluster_id.lower():
        report.notes.append(
            "broker is Tansu: topic configs (retention.ms, cleanup.policy) are stored "
            "but retention and compaction are not enforced"
        )
    return report


def _create_missing(admin: Any, report: TopicReport, missing: list[tuple[TopicSpec, str]],
                    partitions: int, replication: int) -> None:  # fmt: skip
    by_name = {name: spec for spec, name in missing}
    retry: list[tuple[TopicSpec, str]] = []
    for name, error in _create(admin, missing, partitions, replication, True).items():
        kind = _error_name(error) if error is not None else ""
        if error is None:
            report.created.append(name)
        elif kind == "TOPIC_ALREADY_EXISTS":  # created concurrently by someone else
            report.present.append(name)
        elif kind in _CONFIG_ERRORS and by_name[name].configs:
            report.configs_skipped[name] = f"{kind}: {error}"
            retry.append((by_name[name], name))
        else:
            report.errors[name] = f"{kind}: {error}"
    for name, error in _create(admin, retry, partitions, replication, False).items():
        if error is None or _error_name(error) == "TOPIC_ALREADY_EXISTS":
            report.created.append(name)
        else:
            report.errors[name] = f"{_error_name(error)}: {error}"


def list_topics(bootstrap: str, prefix: str = "", timeout: float = 15.0) -> list[TopicInfo]:
    """Topics on the cluster whose name starts with ``prefix`` (internal ones hidden)."""
    existing, _ = _existing(_admin(bootstrap), timeout)
    catalogue = {spec.full_name(prefix) for spec in ALL_TOPICS}
    return [
        TopicInfo(name, count, name in catalogue)
        for name, count in sorted(existing.items())
        if name.startswith(prefix) and not name.startswith("__")
    ]

"""Dead-letter topics: read them, explain them, and re-publish dead letters after a fix.

A dead letter (written by the workers to ``dlq.events`` and by the sink to ``dlq.sends``, see
:mod:`schemas.deadletter`) is a ``Dead Letter`` event keeping the original bytes and key, and
says why in its headers: ``x-dlq-reason``, ``x-dlq-error-type``, ``x-original-topic``,
``x-original-partition`` and ``x-original-offset``. A record whose value is not a ``Dead
Letter`` event is taken as the original bytes themselves (its own key is the original key).

Re-publishing writes the original payload (or a fixed one) to its original topic with its
original key, tagged with ``x-dlq-republished-from: <dlq topic>:<partition>:<offset>``, and in
the *same Kafka transaction* appends a marker record to the dead-letter topic naming the dead
letter it re-published. Reading the dead-letter topic therefore tells which dead letters were
already re-published, and a second re-publish of the same dead letter is refused: both records
are written or neither. One ``transactional.id`` per dead-letter topic fences a concurrent
second run.

Nothing here logs payloads: they hold customer data. The CLI prints them only when asked.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from personaflow.kafka import consumer_config, producer_config

HEADER_REASON = "x-dlq-reason"
HEADER_ERROR_TYPE = "x-dlq-error-type"
HEADER_ORIGINAL_TOPIC = "x-original-topic"
HEADER_ORIGINAL_PARTITION = "x-original-partition"
HEADER_ORIGINAL_OFFSET = "x-original-offset"
HEADER_TRUNCATED = "x-dlq-payload-truncated"
HEADER_REPUBLISHED_FROM = "x-dlq-republished-from"
"""On a re-published record, and on the marker in the DLQ topic: which dead letter it was."""
HEADER_MARKER = "x-dlq-marker"
"""Present (value ``republished``) only on marker records, which are not dead letters."""
HEADER_REPUBLISHED_TO = "x-dlq-republished-to"
HEADER_FIXED = "x-dlq-fixed"
"""``true`` on a marker when a fixed payload, not the original, was re-published."""

MARKER_REPUBLISHED = b"republished"
DEAD_LETTER = "Dead Letter"
"""Event name of dead-letter record values (schemas.models.DeadLetter)."""
TRANSACTIONAL_ID_PREFIX = "personaflow-dlq-republish-"
"""Every re-publisher of one dead-letter topic uses ``prefix + topic`` as its transactional id,
so a second concurrent run on the same topic fences the first."""


class DlqError(Exception):
    """A dead-letter operation failed; ``retriable`` says whether trying again may help."""

    retriable = False


class DeadLetterNotFound(DlqError):
    """No dead letter at the given partition/offset (or the reference is ambiguous)."""


class AlreadyRepublished(DlqError):
    """The dead letter was re-published before; doing it again would duplicate the event."""


class NotRepublishable(DlqError):
    """The dead letter cannot be re-published as it is: it does not say where it came from
    (no ``x-original-topic``), or its payload was truncated (only a fix can replace it)."""


class InvalidFix(DlqError):
    """A fixed payload does not pass the event contract, or targets more than one record."""


class DlqKafkaError(DlqError):
    """The broker could not be read from or written to in time. Retriable."""

    retriable = True


class DlqStoreError(DlqError):
    """Redis (the sink's ledger) could not be reached. Retriable."""

    retriable = True


@dataclass(frozen=True, order=True)
class DlqRef:
    """Where a dead letter sits in its topic: ``PARTITION:OFFSET``."""

    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.partition}:{self.offset}"

    @classmethod
    def parse(cls, text: str) -> tuple[int | None, int]:
        """``"3:17"`` -> (3, 17); a bare ``"17"`` -> (None, 17): any partition."""
        head, sep, tail = text.strip().partition(":")
        try:
            if sep:
                return int(head), int(tail)
            return None, int(head)
        except ValueError:
            raise DeadLetterNotFound(
                f"not a dead-letter reference: {text!r} (use OFFSET or PARTITION:OFFSET)"
            ) from None


@dataclass(frozen=True)
class DeadLetterRecord:
    """One record of a dead-letter topic, with its reason headers decoded.

    ``value`` and ``record_key`` are the record as stored; ``payload`` and ``key`` are the
    original record's, unwrapped from the Dead Letter event on first use (listing thousands of
    dead letters reads only headers).
    """

    topic: str
    ref: DlqRef
    record_key: bytes | None
    value: bytes
    headers: dict[str, bytes]
    timestamp_ms: int | None = None

    @cached_property
    def _original(self) -> tuple[bytes, bytes | None]:
        if self.is_marker:
            return self.value, self.record_key
        return unwrap(self.value, self.record_key)

    @property
    def payload(self) -> bytes:
        """The original record's bytes (as far as kept: see :attr:`truncated`)."""
        return self._original[0]

    @property
    def key(self) -> bytes | None:
        """The original record's key."""
        return self._original[1]

    def header(self, name: str) -> str | None:
        """A header as text (``None`` when absent)."""
        value = self.headers.get(name)
        return None if value is None else value.decode("utf-8", "replace")

    @property
    def reason(self) -> str:
        return self.header(HEADER_REASON) or "(no reason header)"

    @property
    def error_type(self) -> str:
        return self.header(HEADER_ERROR_TYPE) or "(unknown)"

    @property
    def original_topic(self) -> str | None:
        return self.header(HEADER_ORIGINAL_TOPIC) or None

    @property
    def original_partition(self) -> int | None:
        return _int_or_none(self.header(HEADER_ORIGINAL_PARTITION))

    @property
    def original_offset(self) -> int | None:
        return _int_or_none(self.header(HEADER_ORIGINAL_OFFSET))

    @property
    def truncated(self) -> bool:
        """The stored payload was cut (too large): only a fixed payload can replace it."""
        return HEADER_TRUNCATED in self.headers

    @property
    def size(self) -> int:
        return len(self.payload)

    @property
    def is_marker(self) -> bool:
        return self.headers.get(HEADER_MARKER) == MARKER_REPUBLISHED

    @property
    def source_id(self) -> str:
        """The id re-published copies carry in ``x-dlq-republished-from``."""
        return f"{self.topic}:{self.ref}"


@dataclass(frozen=True)
class DlqSnapshot:
    """Everything in a dead-letter topic: the dead letters and which were re-published."""

    topic: str
    letters: list[DeadLetterRecord]
    republished: dict[str, DeadLetterRecord] = field(default_factory=dict)
    """source id (``topic:partition:offset``) -> the marker that recorded its re-publish."""

    def is_republished(self, letter: DeadLetterRecord) -> bool:
        return letter.source_id in self.republished

    def find(self, partition: int | None, offset: int) -> DeadLetterRecord:
        """The dead letter at ``partition:offset`` (any partition when ``None``)."""
        found = [
            letter
            for letter in self.letters
            if letter.ref.offset == offset and partition in (None, letter.ref.partition)
        ]
        if not found:
            where = f"{partition}:{offset}" if partition is not None else f"offset {offset}"
            raise DeadLetterNotFound(f"no dead letter at {where} in {self.topic}")
        if len(found) > 1:
            refs = ", ".join(str(letter.ref) for letter in found)
            raise DeadLetterNotFound(
                f"offset {offset} exists in several partitions of {self.topic} ({refs}): "
                "name one as PARTITION:OFFSET"
            )
        return found[0]

    def reason_counts(self) -> dict[str, int]:
        """How many dead letters per reason (most frequent first)."""
        counts: dict[str, int] = {}
        for letter in self.letters:
            counts[letter.reason] = counts.get(letter.reason, 0) + 1
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


@dataclass(frozen=True)
class RepublishPlan:
    """What one re-publish run will write (``todo``) and what it leaves alone, and why."""

    todo: list[DeadLetterRecord]
    skipped: list[tuple[DeadLetterRecord, str]]


@dataclass(frozen=True)
class RepublishReport:
    """What a re-publish run wrote: (dead letter, original topic) pairs, and the skips."""

    republished: list[tuple[DeadLetterRecord, str]]
    skipped: list[tuple[DeadLetterRecord, str]]
    fixed: bool = False
    dry_run: bool = False
    rearmed: list[str] = field(default_factory=list)
    """Trigger ids whose ``failed`` sink-ledger entry was cleared so they are sent again."""


def _int_or_none(text: str | None) -> int | None:
    try:
        return None if text is None else int(text)
    except ValueError:
        return None


def _headers(raw: Sequence[tuple[str, bytes | None]] | None) -> dict[str, bytes]:
    return {name: value or b"" for name, value in raw or ()}


def unwrap(value: bytes, key: bytes | None) -> tuple[bytes, bytes | None]:
    """(original payload, original key) of a dead-letter record's value and key.

    The value is normally a ``Dead Letter`` event (read with the codec's fast path: Avro has
    checked the types); anything else is the original bytes.
    """
    from schemas.codec import decode_raw
    from schemas.errors import DecodeError

    try:
        event_type, record = decode_raw(value)
    except DecodeError as exc:
        if exc.retriable:
            raise DlqKafkaError(f"cannot decode dead letters now: {exc.reason}") from exc
        return value, key
    payload, original_key = record.get("payload"), record.get("original_key")
    if event_type != DEAD_LETTER or not isinstance(payload, bytes):
        return value, key
    return payload, original_key if isinstance(original_key, bytes) else key


def _to_record(message: Any) -> DeadLetterRecord:
    _kind, stamp = message.timestamp()
    return DeadLetterRecord(
        topic=message.topic(),
        ref=DlqRef(message.partition(), message.offset()),
        record_key=message.key(),
        value=message.value() or b"",
        headers=_headers(message.headers()),
        timestamp_ms=stamp if stamp and stamp > 0 else None,
    )


def build_snapshot(topic: str, records: Iterable[DeadLetterRecord]) -> DlqSnapshot:
    """Split a topic's records into dead letters and re-publish markers."""
    letters: list[DeadLetterRecord] = []
    republished: dict[str, DeadLetterRecord] = {}
    for record in records:
        if record.is_marker:
            source = record.header(HEADER_REPUBLISHED_FROM)
            if source:
                republished[source] = record
        else:
            letters.append(record)
    letters.sort(key=lambda letter: letter.ref)
    return DlqSnapshot(topic, letters, republished)


def _partitions(consumer: Any, topic: str, timeout: float) -> list[int]:
    from confluent_kafka import KafkaException

    try:
        metadata = consumer.list_topics(topic, timeout=timeout)
    except KafkaException as exc:
        raise DlqKafkaError(f"cannot read metadata of {topic}: {exc}") from exc
    info = metadata.topics.get(topic)
    if info is None or info.error is not None or not info.partitions:
        raise DeadLetterNotFound(f"topic {topic} does not exist (run `personaflow topics create`)")
    return sorted(info.partitions)


def _high_watermarks(consumer: Any, topic: str, parts: list[int], timeout: float) -> dict[int, int]:
    from confluent_kafka import KafkaException, TopicPartition

    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
            for p in parts
        }
    except KafkaException as exc:
        raise DlqKafkaError(f"cannot read offsets of {topic}: {exc}") from exc


def _drain(consumer: Any, highs: dict[int, int], idle_s: float, deadline: float) -> list[Any]:
    """Consume until every partition passed its reported end and nothing came for a moment,
    or nothing came for ``idle_s`` (some brokers report a too-low end offset), or time is up."""
    messages: list[Any] = []
    reached = {p: high <= 0 for p, high in highs.items()}
    last_seen = time.monotonic()
    while time.monotonic() < deadline:
        batch = consumer.consume(500, timeout=0.1)
        now = time.monotonic()
        for message in batch:
            if message.error() is not None:
                continue
            messages.append(message)
            if message.offset() + 1 >= highs.get(message.partition(), 0):
                reached[message.partition()] = True
        if batch:
            last_seen = now
        quiet = now - last_seen
        if (all(reached.values()) and quiet >= 0.3) or quiet >= idle_s:
            return messages
    raise DlqKafkaError(f"reading the dead-letter topic timed out ({len(messages)} records read)")


def read_dlq(
    bootstrap: str, topic: str, *, idle_s: float = 2.0, timeout_s: float = 60.0
) -> DlqSnapshot:
    """Read a whole dead-letter topic (committed records only) without joining a group."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    config = consumer_config(
        bootstrap,
        f"personaflow-dlq-reader-{uuid.uuid4().hex[:8]}",
        **{"isolation.level": "read_committed", "fetch.wait.max.ms": 100},
    )
    consumer = Consumer(config)
    try:
        parts = _partitions(consumer, topic, timeout=10.0)
        highs = _high_watermarks(consumer, topic, parts, timeout=10.0)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        messages = _drain(consumer, highs, idle_s, time.monotonic() + timeout_s)
    finally:
        consumer.close()
    return build_snapshot(topic, (_to_record(message) for message in messages))


def _blocker(letter: DeadLetterRecord, snapshot: DlqSnapshot, fixed: bool) -> str | None:
    """Why ``letter`` cannot be re-published now (``None``: it can)."""
    if snapshot.is_republished(letter):
        return "already re-published"
    if letter.original_topic is None:
        return f"no {HEADER_ORIGINAL_TOPIC} header"
    if letter.truncated and not fixed:
        return "payload was truncated when dead-lettered: re-publish a fix (--fix-json)"
    return None


def plan_republish(
    snapshot: DlqSnapshot,
    *,
    ref: str | None = None,
    where_reason: str | None = None,
    fixed: bool = False,
) -> RepublishPlan:
    """Choose the dead letters to re-publish: one by reference, or all whose reason contains
    ``where_reason`` (case-insensitive), or all; never one already re-published.

    A named dead letter that was already re-published, or cannot be, raises (as does one
    whose reason does not contain ``where_reason`` when both are given); in a bulk run such
    letters are skipped with the reason.
    """
    needle = (where_reason or "").lower()
    if ref is not None:
        candidates = [snapshot.find(*DlqRef.parse(ref))]
        if needle not in candidates[0].reason.lower():
            raise DeadLetterNotFound(
                f"dead letter {candidates[0].source_id}: reason does not contain {where_reason!r}"
            )
    else:
        candidates = [letter for letter in snapshot.letters if needle in letter.reason.lower()]
    todo: list[DeadLetterRecord] = []
    skipped: list[tuple[DeadLetterRecord, str]] = []
    for letter in candidates:
        blocker = _blocker(letter, snapshot, fixed)
        if blocker is None:
            todo.append(letter)
        elif ref is not None:
            error = AlreadyRepublished if snapshot.is_republished(letter) else NotRepublishable
            raise error(f"dead letter {letter.source_id}: {blocker}")
        else:
            skipped.append((letter, blocker))
    return RepublishPlan(todo, skipped)


def validate_fix(data: bytes) -> tuple[bytes, str | None]:
    """Turn a fixed event (JSON) into the bytes to publish (Avro wire format) and its key.

    Raises :class:`InvalidFix` naming the problem when it breaks the contract.
    """
    from schemas.codec import decode_json, encode_event
    from schemas.errors import ContractError

    try:
        event = decode_json(data)
        payload = encode_event(event)
    except ContractError as exc:
        raise InvalidFix(f"the fixed event is not valid: {exc.reason}") from exc
    key = getattr(event, "key", None)
    return payload, key if isinstance(key, str) and key else None


def _json_default(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(type(value).__name__)


def payload_text(payload: bytes) -> str:
    """A payload as editable text: the event as JSON when it decodes (fully, or as a raw Avro
    record that breaks the contract), else UTF-8 text, else hex. Contains customer data."""
    import orjson

    from schemas.codec import decode_event, decode_raw, encode_json
    from schemas.errors import DecodeError

    try:
        return encode_json(decode_event(payload)).decode()
    except DecodeError:
        pass
    try:
        event_type, record = decode_raw(payload)
        return orjson.dumps({"type": event_type, **record}, default=_json_default).decode()
    except (DecodeError, TypeError):
        pass
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + payload.hex()


def _republish_headers(letter: DeadLetterRecord) -> list[tuple[str, bytes]]:
    return [(HEADER_REPUBLISHED_FROM, letter.source_id.encode())]


def _marker_headers(letter: DeadLetterRecord, fixed: bool) -> list[tuple[str, bytes]]:
    return [
        (HEADER_MARKER, MARKER_REPUBLISHED),
        (HEADER_REPUBLISHED_FROM, letter.source_id.encode()),
        (HEADER_REPUBLISHED_TO, (letter.original_topic or "").encode()),
        (HEADER_FIXED, b"true" if fixed else b"false"),
    ]


class Republisher:
    """Transactional writer of re-published records and their markers.

    ``open()`` initialises the transactional producer *before* the dead-letter topic is read,
    so a concurrent re-publisher is fenced and its pending transaction resolved first.
    """

    def __init__(self, bootstrap: str, *, transactional_id: str) -> None:
        self.bootstrap = bootstrap
        self.transactional_id = transactional_id
        self._producer: Any = None

    def open(self, timeout: float = 30.0) -> None:
        """Create the producer and fence older instances of the same transactional id."""
        from confluent_kafka import KafkaException, Producer

        config = producer_config(self.bootstrap, **{"transactional.id": self.transactional_id})
        producer = Producer(config)
        try:
            producer.init_transactions(timeout)
        except KafkaException as exc:
            raise DlqKafkaError(f"cannot start a transaction: {exc}") from exc
        self._producer = producer

    def write(
        self, plan: RepublishPlan, fix: tuple[bytes, str | None] | None, timeout: float = 30.0
    ) -> list[tuple[DeadLetterRecord, str]]:
        """Write every planned re-publish and its marker in one transaction."""
        from confluent_kafka import KafkaException

        if self._producer is None:
            raise DlqError("Republisher.open() was not called")
        producer = self._producer
        written: list[tuple[DeadLetterRecord, str]] = []
        try:
            producer.begin_transaction()
            for letter in plan.todo:
                written.append((letter, self._produce_pair(letter, fix)))
            producer.commit_transaction(timeout)
        except (KafkaException, BufferError) as exc:
            self._abort(timeout)
            raise DlqKafkaError(f"re-publish transaction failed, nothing written: {exc}") from exc
        return written

    def _produce_pair(self, letter: DeadLetterRecord, fix: tuple[bytes, str | None] | None) -> str:
        target = letter.original_topic or ""
        payload, key = letter.payload, letter.key
        if fix is not None:
            payload = fix[0]
            key = key if key is not None else (fix[1].encode() if fix[1] else None)
        self._producer.produce(target, value=payload, key=key, headers=_republish_headers(letter))
        self._producer.produce(
            letter.topic,
            value=b"",
            key=letter.record_key,
            partition=letter.ref.partition,
            headers=_marker_headers(letter, fix is not None),
        )
        self._producer.poll(0)
        return target

    def _abort(self, timeout: float) -> None:
        from confluent_kafka import KafkaException

        # if this fails too, the broker aborts it after transaction.timeout.ms: nothing is lost
        with contextlib.suppress(KafkaException):
            self._producer.abort_transaction(timeout)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(5)
            self._producer = None


BeforeWrite = Callable[[list[DeadLetterRecord]], list[str]]
"""Called with the dead letters about to be re-published, before anything is written."""


def republish(
    bootstrap: str,
    topic: str,
    *,
    ref: str | None = None,
    where_reason: str | None = None,
    fix_json: bytes | None = None,
    dry_run: bool = False,
    transactional_id: str | None = None,
    before_write: BeforeWrite | None = None,
) -> RepublishReport:
    """Re-publish dead letters of ``topic`` to their original topics, at most once each.

    With ``fix_json`` (a corrected event as JSON) exactly one dead letter (``ref``) is
    re-published with that payload instead of the original bytes. ``before_write`` (e.g.
    :func:`ledger_rearmer` for ``dlq.sends``) runs first; its result lands in ``rearmed``.
    """
    if fix_json is not None and ref is None:
        raise InvalidFix("a fixed payload replaces one dead letter: name it with --offset")
    fix = validate_fix(fix_json) if fix_json is not None else None
    writer = Republisher(
        bootstrap, transactional_id=transactional_id or f"{TRANSACTIONAL_ID_PREFIX}{topic}"
    )
    if not dry_run:
        writer.open()
    try:
        snapshot = read_dlq(bootstrap, topic)
        plan = plan_republish(snapshot, ref=ref, where_reason=where_reason, fixed=fix is not None)
        if dry_run or not plan.todo:
            pairs = [(letter, letter.original_topic or "") for letter in plan.todo]
            return RepublishReport([] if not dry_run else pairs, plan.skipped, fix is not None,
                                   dry_run)  # fmt: skip
        rearmed = before_write(plan.todo) if before_write is not None else []
        written = writer.write(plan, fix)
    finally:
        writer.close()
    return RepublishReport(written, plan.skipped, fix is not None, dry_run, rearmed)


# ------------------------------------------------------------------ the sink's ledger

LEDGER_KEY = "{prefix}ledger:{trigger_id}"
"""The sink ledger's key of a trigger (sinks/ledger.py: ``Store.key("ledger", trigger_id)``)."""
_REARM_SCRIPT = (
    "if redis.call('HGET', KEYS[1], 'state') == 'failed' then "
    "return redis.call('DEL', KEYS[1]) end return 0"
)


def trigger_ids(letters: Iterable[DeadLetterRecord]) -> list[str]:
    """Ids of the triggers held by these dead letters (payloads that are no Trigger skipped)."""
    from schemas.codec import decode_event
    from schemas.errors import DecodeError
    from schemas.models import Trigger

    ids: list[str] = []
    for letter in letters:
        try:
            event = decode_event(letter.payload)
        except DecodeError:
            continue
        if isinstance(event, Trigger):
            ids.append(event.trigger_id)
    return ids


def rearm_failed_sends(redis_url: str, key_prefix: str, ids: Iterable[str]) -> list[str]:
    """Clear the sink ledger's final ``failed`` entries of these triggers, so a re-published
    trigger is attempted again instead of being reported a duplicate. Entries in any other
    state (``sent`` above all) are left alone, atomically. Returns the ids cleared."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=5.0, socket_connect_timeout=2.0)
    try:
        script = client.register_script(_REARM_SCRIPT)
        keys = {tid: LEDGER_KEY.format(prefix=key_prefix, trigger_id=tid) for tid in ids}
        return [tid for tid, key in keys.items() if script(keys=[key])]
    except redis.RedisError as exc:
        raise DlqStoreError(f"cannot reach the sink ledger in Redis: {exc}") from exc
    finally:
        client.close()


def ledger_rearmer(redis_url: str, key_prefix: str) -> BeforeWrite:
    """A ``before_write`` hook for ``dlq.sends``: re-arm the failed sends about to be
    re-published (before they are written, so the sink cannot see them first)."""

    def rearm(letters: list[DeadLetterRecord]) -> list[str]:
        return rearm_failed_sends(redis_url, key_prefix, trigger_ids(letters))

    return rearm

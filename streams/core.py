"""The batch processor: records in, (outputs, table writes) out. No I/O, no Kafka, no clock reads
other than the injected clock; the Faust worker and replay both drive it.

Per record, by topic:

- input topics and forwarded events (internal.rekeyed, ``pf-kind: event``): decode; resolve the
  customer (the customer id, else the anonymous id's alias, else the anonymous id); if the
  record is not keyed by that customer, forward it through internal.rekeyed (so it lands on the
  customer's partition); else fire overdue deadlines, apply it through the engine and, on
  Identify/Alias, ask the anonymous id's partition to hand its state over (``alias``).
- ``alias`` (keyed by the anonymous id): remember anonymous id -> customer, send the anonymous
  state to the customer (``merge``) and delete it.
- ``merge`` (keyed by the customer): Engine.merge, once per alias request.
- internal.ticks (keyed by the customer): Engine.tick.

Failures: a payload that does not decode, or any exception while processing a record, turns
that record into a dead letter (with its reason) and the batch goes on; only retriable errors
(the schema registry is down) abort the batch, to be retried whole. The engine updates states
in place: a record whose processing raised keeps whatever the engine changed before raising
(engine exceptions are bugs; the dead letter keeps the record for a re-publish after a fix).

Ordering contract for the caller (what makes a crash at any instant lose nothing): produce
:attr:`BatchEffects.outputs` and wait for the acks, then persist :attr:`BatchEffects.writes`,
then commit the input offsets. States record the input offsets they applied (replay = no-op)
and trigger ids are deterministic, so re-processing after a crash re-emits identical records.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka.partitioner import murmur2

from schemas.errors import DecodeError
from schemas.plain import PlainEvent, linked_anonymous_id
from streams import wire
from streams.clock import Clock
from streams.domain import Domain, persona_of
from streams.dueindex import DueIndex
from streams.metrics import BatchTally
from streams.parking import Parking
from streams.records import (
    ANON,
    AT,
    CAUSE,
    FROM,
    HOPS,
    KIND,
    LOCAL,
    ORIGIN,
    REQUEST,
    TIME,
    InRecord,
    OutRecord,
    Space,
    Write,
)
from streams.topics import TopicNames

log = logging.getLogger("personaflow.streams")

MAX_HOPS = 3
"""A record forwarded more often than this is dead-lettered (an alias loop)."""


class RetriableBatchError(Exception):
    """The batch could not be processed for a reason that may go away (retry it whole)."""

    retriable = True


class ProcessingError(Exception):
    """A record cannot be processed (dead-lettered with this reason); not retriable."""

    retriable = False


class TableReader(Protocol):
    """Reads persisted values; ``source`` is a record of the key's partition."""

    def read(self, space: Space, key: str, source: InRecord) -> bytes | None: ...


@dataclass(slots=True)
class _Slot:
    state: Any
    source: InRecord
    dirty: bool = False


@dataclass
class BatchEffects:
    """What one batch produced: records to send first, then table writes to persist."""

    outputs: list[OutRecord] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    tally: BatchTally = field(default_factory=BatchTally)
    done: list[InRecord] = field(default_factory=list)
    """The records handled (processed or dead-lettered): parked ones are not among them."""


@dataclass
class _Batch:
    states: dict[str, _Slot] = field(default_factory=dict)
    identity: dict[str, tuple[bytes | None, InRecord, bool]] = field(default_factory=dict)
    outputs: list[OutRecord] = field(default_factory=list)
    tally: BatchTally = field(default_factory=BatchTally)
    done: list[InRecord] = field(default_factory=list)
    resume: deque[InRecord] = field(default_factory=deque)
    """Parked records whose customer's merge answer was just applied, to handle next."""


class StateCache:
    """Decoded customer states kept between batches (bounded, least recently used out)."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[str, Any] = OrderedDict()

    def get(self, key: str) -> tuple[bool, Any]:
        """``(found, state)``; a cached ``None`` means "known absent"."""
        if key not in self._data:
            return False, None
        self._data.move_to_end(key)
        return True, self._data[key]

    def put(self, key: str, state: Any) -> None:
        if self.max_entries <= 0:
            return
        self._data[key] = state
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


class CustomerProcessor:
    """Applies batches of records to customer states through the domain engine."""

    def __init__(
        self,
        domain: Domain,
        topics: TopicNames,
        clock: Clock,
        reader: TableReader,
        *,
        index: DueIndex | None = None,
        cache_max: int = 100_000,
        partitions: int | None = None,
    ) -> None:
        self.domain = domain
        self.engine = domain.engine
        self.topics = topics
        self._catalogue: dict[str, str] = {}
        """Full topic name -> catalogue name (input references name the catalogue topic)."""
        self.clock = clock
        self.reader = reader
        self.index = index or DueIndex()
        self.cache = StateCache(cache_max)
        self.parking = Parking()
        """Records of customers whose identity merge answer is still in flight."""
        self.partitions = partitions
        """Partition count of internal.rekeyed. When given, an internal record (forwarded
        event, alias request, merge answer) whose key lands on the partition that made it is
        handled in process, right after the record behind it, as replay does: through the
        topic it could come back after that partition's later events."""

    # ------------------------------------------------------------------ batch

    def process(self, records: Sequence[InRecord]) -> BatchEffects:
        """Process ``records`` in order; raises only :class:`RetriableBatchError`."""
        batch = _Batch()
        for record in records:
            self._one(batch, record)
            while batch.resume:
                self._one(batch, batch.resume.popleft())
        batch.resume.extend(self.parking.stale(time.monotonic()))
        while batch.resume:
            self._one(batch, batch.resume.popleft())
        return self._finish(batch)

    def _one(self, batch: _Batch, record: InRecord) -> None:
        try:
            if self._dispatch(batch, record):
                return  # parked: handled later, after the customer's merge answer
            if record.offset != LOCAL:
                batch.done.append(record)
        except DecodeError as exc:
            if exc.retriable:
                raise RetriableBatchError(exc.reason) from exc
            topic = self.topics.catalogue_name(record.topic)
            batch.tally.decode_errors[(topic, exc.error_type)] += 1
            self._dead_letter(batch, record, exc.reason, exc.error_type)
            if record.offset != LOCAL:
                batch.done.append(record)
        except Exception as exc:
            if getattr(exc, "retriable", False):
                raise RetriableBatchError(f"{type(exc).__name__}") from exc
            reason = str(exc) if isinstance(exc, ProcessingError) else type(exc).__name__
            log.warning(
                "record dead-lettered: %s at %s/%d/%d",
                type(exc).__name__,
                record.topic,
                record.partition,
                record.offset,
                exc_info=not isinstance(exc, ProcessingError),
            )
            self._dead_letter(batch, record, f"processing failed: {reason}", type(exc).__name__)
            if record.offset != LOCAL:
                batch.done.append(record)

    def _dispatch(self, batch: _Batch, record: InRecord) -> bool:
        """Handle one record; True when it was parked instead."""
        role = self.topics.role(record.topic)
        if role == "ticks":
            return self._tick(batch, record)
        kind = record.header(KIND) if role == "rekeyed" else "event"
        if kind == "bound":  # alignment across partitions: the worker reads it, nothing to do
            return False
        if kind == "alias":
            self._alias(batch, record)
            return False
        if kind == "merge":
            return self._merge(batch, record)
        if kind == "event":
            return self._event(batch, record, forwarded=role == "rekeyed")
        raise ProcessingError(f"unknown internal record kind {kind!r}")

    def _parked(self, customer: str, record: InRecord) -> bool:
        """Park ``record`` if ``customer`` awaits a merge answer; True when parked."""
        if not self.parking.waiting(customer):
            return False
        self.parking.park(customer, record)
        return True

    def _dead_letter(self, batch: _Batch, record: InRecord, reason: str, error_type: str) -> None:
        value, headers = wire.dead_letter(
            record.value or b"",
            reason,
            error_type,
            record.topic,
            record.partition,
            record.offset,
            record.key,
        )
        batch.outputs.append(OutRecord(self.topics.dlq, record.key, value, headers))
        batch.tally.dead_letters[self.topics.catalogue_name(record.topic)] += 1

    # ------------------------------------------------------------------ events

    def _event(self, batch: _Batch, record: InRecord, forwarded: bool = False) -> bool:
        event: PlainEvent = (
            record.event if record.event is not None else wire.decode_input(record.value)
        )
        event_time = event.occurred_ts
        self.clock.observe(event_time)
        # a forwarded event was resolved by its sender, which owns the anonymous id's alias
        # (this partition's identity table does not hold it: resolving again would loop)
        target = record.key_text() if forwarded else self._resolve(batch, event, record)
        if target != record.key_text():
            self._forward(batch, record, target, event_time)
            return False
        if self._parked(target, record):
            return True
        slot = self._load(batch, target, record)
        now = self.clock.at(event_time)
        outputs: list[OutRecord] = []
        # the engine also fires deadlines already due at `now` before applying the event
        outcome = self.engine.apply(slot.state, target, event, self._ref(record), now)
        self._collect(outcome, record, outputs, batch.tally)
        requests = self._alias_requests(batch, event, target, now, record)
        batch.outputs.extend(outputs)
        for request in requests:
            self._internal(batch, record, request)
        if outcome.applied:
            batch.tally.events[event.type] += 1
            slot.state = outcome.state
            slot.dirty = True
        return False

    def _resolve(self, batch: _Batch, event: PlainEvent, record: InRecord) -> str:
        if event.customer_id:
            return event.customer_id
        anonymous = event.anonymous_id or ""
        alias = self._identity(batch, f"a:{anonymous}", record)
        return alias.decode() if alias else anonymous

    def _forward(self, batch: _Batch, record: InRecord, target: str, event_time: float) -> None:
        hops = int(record.header(HOPS) or 0) + 1
        if hops > MAX_HOPS:
            raise ProcessingError(f"forwarded more than {MAX_HOPS} times (alias loop)")
        origin = record.header(ORIGIN) or f"{record.topic}/{record.partition}/{record.offset}"
        headers = [(KIND, b"event"), (ORIGIN, origin.encode()), (HOPS, str(hops).encode()),
                   (TIME, repr(event_time).encode())]  # fmt: skip
        value = record.value or b""
        out = OutRecord(self.topics.rekeyed, target.encode(), value, headers)
        self._internal(batch, record, out, record.event)

    def _internal(
        self, batch: _Batch, record: InRecord, out: OutRecord, event: Any = None
    ) -> None:
        """Send ``out`` (an internal.rekeyed record made while handling ``record``); in process
        when its key lands on ``record``'s own partition (see :attr:`partitions`)."""
        if self.partitions is None or key_partition(out.key, self.partitions) != record.partition:
            out.headers.append((FROM, str(record.partition).encode()))
            batch.outputs.append(out)
            return
        local = InRecord(out.topic, record.partition, LOCAL, out.key, out.value,
                         record.timestamp, tuple(out.headers), None, event)  # fmt: skip
        batch.resume.append(local)

    def _ref(self, record: InRecord) -> Any:
        """The input reference of a record: where it was first received (forwarding kept)."""
        origin = record.header(ORIGIN) if record.headers else None
        if origin:
            topic, partition, offset = origin.rsplit("/", 2)
            return self.domain.input_ref(self._catalogue_name(topic), int(partition), int(offset))
        return self.domain.input_ref(
            self._catalogue_name(record.topic), record.partition, record.offset
        )

    def _catalogue_name(self, topic: str) -> str:
        name = self._catalogue.get(topic)
        if name is None:
            name = self._catalogue[topic] = self.topics.catalogue_name(topic)
        return name

    def _alias_requests(
        self, batch: _Batch, event: PlainEvent, target: str, now: float, record: InRecord
    ) -> list[OutRecord]:
        """On Identify/Alias, ask the anonymous id's partition (once) to hand its state over."""
        anonymous = linked_anonymous_id(event)
        if not anonymous or anonymous == target:
            return []
        marker = f"r:{target}:{anonymous}"
        if self._identity(batch, marker, record) is not None:
            return []
        self._set_identity(batch, marker, b"1", record)
        self.parking.wait(target, anonymous, time.monotonic())  # until the answer is applied
        body = {"customer_id": target, "anonymous_id": anonymous, "at": now}
        body["cause_event_id"] = event.event_id
        at = repr(event.occurred_ts).encode()
        headers = [(KIND, b"alias"), (TIME, at)]
        return [OutRecord(self.topics.rekeyed, anonymous.encode(), wire.dumps(body), headers)]

    # ------------------------------------------------------------------ identity

    def _alias(self, batch: _Batch, record: InRecord) -> None:
        body = wire.loads(record.value)
        customer, anonymous = str(body["customer_id"]), str(body["anonymous_id"])
        if anonymous != record.key_text():
            raise ProcessingError("alias request not keyed by its anonymous id")
        self._set_identity(batch, f"a:{anonymous}", customer.encode(), record)
        slot = self._load(batch, anonymous, record)
        headers = [
            (KIND, b"merge"),
            (ANON, anonymous.encode()),
            (REQUEST, f"{record.partition}/{record.offset}".encode()),
            (CAUSE, str(body.get("cause_event_id") or "").encode()),
            (AT, repr(float(body.get("at") or self.clock.now())).encode()),
        ]
        # always answered, empty when there is no anonymous state: the customer's records
        # are parked until the answer is applied (see streams/parking.py)
        value = b"" if slot.state is None else self.domain.encode_state(slot.state)
        answer = OutRecord(self.topics.rekeyed, customer.encode(), value, headers)
        self._internal(batch, record, answer)
        if slot.state is not None:
            slot.state = None
            slot.dirty = True

    def _merge(self, batch: _Batch, record: InRecord) -> bool:
        customer, anonymous = record.key_text(), record.header(ANON) or ""
        if not self.parking.awaits(customer, anonymous) and self._parked(customer, record):
            return True
        try:
            self._apply_merge(batch, record, customer)
        finally:  # resumed even when the answer is dead-lettered
            batch.resume.extend(self.parking.arrived(customer, anonymous))
        return False

    def _apply_merge(self, batch: _Batch, record: InRecord, customer: str) -> None:
        marker = f"m:{customer}:{record.header(ANON)}:{record.header(REQUEST)}"
        if self._identity(batch, marker, record) is not None:
            return
        if not record.value:  # the anonymous id had no state: nothing to merge
            self._set_identity(batch, marker, b"1", record)
            return
        anonymous_state = self.domain.decode_state(record.value or b"")
        slot = self._load(batch, customer, record)
        now = float(record.header(AT) or self.clock.now())
        cause = record.header(CAUSE) or None
        outcome = self.engine.merge(slot.state, anonymous_state, customer, now, cause)
        outputs: list[OutRecord] = []
        self._collect(outcome, record, outputs, batch.tally)
        batch.outputs.extend(outputs)
        self._set_identity(batch, marker, b"1", record)
        slot.state = outcome.state
        slot.dirty = True

    # ------------------------------------------------------------------ ticks

    def _tick(self, batch: _Batch, record: InRecord) -> bool:
        body = wire.loads(record.value)
        if "clock" in body:  # another worker's event-time clock (see StreamWorker.tick_due)
            self.clock.observe(float(body["clock"]))
            return False
        now, due = float(body["now"]), body.get("due")
        key = record.key_text()
        if self._parked(key, record):
            return True
        slot = self._load(batch, key, record)
        if slot.state is None:
            return False
        outcome = self.engine.tick(slot.state, key, now, self._ref(record))
        outputs: list[OutRecord] = []
        self._collect(outcome, record, outputs, batch.tally)
        batch.outputs.extend(outputs)
        if due is not None and outcome.triggers:
            batch.tally.deadline_lag.append(max(0.0, self.clock.now() - float(due)))
        if outcome.applied:
            slot.state = outcome.state
            slot.dirty = True
        return False

    # ------------------------------------------------------------------ effects

    def _collect(
        self, outcome: Any, record: InRecord, outputs: list[OutRecord], tally: BatchTally
    ) -> None:
        for transition in outcome.transitions:
            value = wire.encode_output(transition)
            key = transition.customer_id.encode()
            outputs.append(OutRecord(self.topics.transitions, key, value))
            tally.transitions[(transition.from_persona or "none", transition.to_persona)] += 1
        if not outcome.triggers:
            return
        sent = time.time()
        for trigger in outcome.triggers:
            value = wire.encode_output(trigger)
            outputs.append(OutRecord(self.topics.triggers, trigger.customer_id.encode(), value))
            tally.triggers[trigger.trigger_type] += 1
            if record.timestamp:
                tally.e2t.append(max(0.0, sent - record.timestamp))

    # ------------------------------------------------------------------ state access

    def _load(self, batch: _Batch, key: str, record: InRecord) -> _Slot:
        slot = batch.states.get(key)
        if slot is not None:
            return slot
        found, state = self.cache.get(key)
        if not found:
            raw = self.reader.read("customers", key, record)
            state = None if raw is None else self.domain.decode_state(raw)
        slot = batch.states[key] = _Slot(state, record)
        return slot

    def _identity(self, batch: _Batch, key: str, record: InRecord) -> bytes | None:
        entry = batch.identity.get(key)
        if entry is not None:
            return entry[0]
        value = self.reader.read("identity", key, record)
        batch.identity[key] = (value, record, False)
        return value

    def _set_identity(self, batch: _Batch, key: str, value: bytes, record: InRecord) -> None:
        batch.identity[key] = (value, record, True)

    def _finish(self, batch: _Batch) -> BatchEffects:
        effects = BatchEffects(outputs=batch.outputs, tally=batch.tally, done=batch.done)
        for key, slot in batch.states.items():
            self.cache.put(key, slot.state)
            if not slot.dirty:
                continue
            if slot.state is None:
                effects.writes.append(Write("customers", key, None, slot.source))
                self.index.remove(key)
                continue
            effects.writes.append(Write("customers", key, None, slot.source, slot.state))
            due = self.engine.next_due(slot.state)
            self.index.update(key, slot.source.partition, due, persona_of(slot.state))
        for key, (value, source, dirty) in batch.identity.items():
            if dirty:
                effects.writes.append(Write("identity", key, value, source))
        return effects

    def invalidate(self) -> None:
        """Forget cached states (after a rebalance: another worker may have changed them)."""
        self.cache.clear()


def key_partition(key: bytes | None, partitions: int) -> int | None:
    """The partition the producer puts ``key`` on (murmur2, as aiokafka and the Java client)."""
    if key is None:
        return None
    return int(murmur2(key) & 0x7FFFFFFF) % partitions

"""Replay / backtest: run a JSONL history through the same processor as the live workers, in
event time, without a broker.

Records are laid out as the live topics would hold them (topic from the event type, partition
from the key with Kafka's murmur2, offsets counted per partition); internal records
(re-keyed events, alias hand-overs, ticks) are fed straight back, and before each event every
deadline due by its time fires, as the worker's ticker does with an event-time clock. Given the
same input, replay and the live stream emit the same trigger ids.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka.partitioner import murmur2

from schemas import codec
from schemas.errors import DecodeError
from schemas.topics import DEFAULT_PARTITIONS, EVENT_TOPIC
from streams import wire
from streams.clock import EventClock
from streams.core import CustomerProcessor
from streams.domain import Domain, load_domain
from streams.records import InRecord, OutRecord, Space, Write
from streams.topics import TopicNames


def partition_for(key: bytes, partitions: int) -> int:
    """Kafka's default partition of a key (murmur2, as the Java client and aiokafka)."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


class MemoryTables:
    """In-memory tables for replay (same interface as the Faust tables)."""

    def __init__(self, encode: Callable[[Any], bytes]) -> None:
        self.encode = encode
        self.data: dict[Space, dict[str, bytes]] = {"customers": {}, "identity": {}}

    def read(self, space: Space, key: str, source: InRecord) -> bytes | None:
        return self.data[space].get(key)

    def apply(self, writes: list[Write]) -> None:
        for write in writes:
            write.materialise(self.encode)
            if write.value is None:
                self.data[write.space].pop(write.key, None)
            else:
                self.data[write.space][write.key] = write.value


@dataclass
class ReplayResult:
    """What a replay emitted (decoded), with counts."""

    transitions: list[dict[str, Any]] = field(default_factory=list)
    triggers: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: int = 0
    events: int = 0
    customers: int = 0
    seconds: float = 0.0
    rules: str = "default"

    def trigger_ids(self) -> set[str]:
        return {str(t["trigger_id"]) for t in self.triggers}

    def summary(self) -> str:
        by_type = Counter(str(t["trigger_type"]) for t in self.triggers)
        kinds = ", ".join(f"{k}={n}" for k, n in sorted(by_type.items())) or "none"
        return (
            f"replay ({self.rules}): {self.events} events, {self.customers} customers, "
            f"{len(self.transitions)} transitions, {len(self.triggers)} triggers ({kinds}), "
            f"{self.dead_letters} dead letters in {self.seconds:.2f}s"
        )


class Replayer:
    """Drives a :class:`CustomerProcessor` over events in event time."""

    def __init__(self, domain: Domain, partitions: int = DEFAULT_PARTITIONS) -> None:
        self.partitions = partitions
        self.topics = TopicNames("")
        self.clock = EventClock()
        self.tables = MemoryTables(domain.encode_state)
        self.processor = CustomerProcessor(
            domain, self.topics, self.clock, self.tables, cache_max=0
        )
        self.offsets: Counter[tuple[str, int]] = Counter()
        self.result = ReplayResult()

    def _record(self, topic: str, key: bytes, value: bytes, headers: Any = ()) -> InRecord:
        partition = partition_for(key, self.partitions)
        offset = self.offsets[(topic, partition)]
        self.offsets[(topic, partition)] += 1
        return InRecord(topic, partition, offset, key, value, 0.0, tuple(headers))

    def feed(self, raw: bytes) -> None:
        """Replay one input event (its JSON bytes)."""
        try:
            event = codec.decode_json(raw)
        except DecodeError:
            self.result.dead_letters += 1
            return
        self.fire_due(event.occurred_ts)  # type: ignore[attr-defined]
        topic = EVENT_TOPIC[event.type].name  # type: ignore[attr-defined]
        self._run(self._record(topic, event.key.encode(), raw))  # type: ignore[attr-defined]
        self.result.events += 1

    def fire_due(self, now: float) -> None:
        """Fire every deadline due by ``now``, each at its own due time (as the live ticker
        does with an event-time clock), until none is left."""
        fired: set[tuple[str, float]] = set()
        while True:
            due = [d for d in self.processor.index.pop_due(now, None, 0.0, float("inf"))
                   if d not in fired]  # fmt: skip
            if not due:
                return
            fired.update(due)
            for key, when in sorted(due, key=lambda kv: (kv[1], kv[0])):
                body = wire.dumps({"now": when, "due": when})
                self._run(self._record(self.topics.ticks, key.encode(), body))

    def _run(self, first: InRecord) -> None:
        queue = deque([first])
        while queue:
            effects = self.processor.process([queue.popleft()])
            for out in effects.outputs:
                self._route(out, queue)
            self.tables.apply(effects.writes)

    def _route(self, out: OutRecord, queue: deque[InRecord]) -> None:
        if out.topic in (self.topics.rekeyed, self.topics.ticks):
            queue.append(self._record(out.topic, out.key or b"", out.value, out.headers))
        elif out.topic == self.topics.triggers:
            self.result.triggers.append(_as_json(out.value))
        elif out.topic == self.topics.transitions:
            self.result.transitions.append(_as_json(out.value))
        elif out.topic == self.topics.dlq:
            self.result.dead_letters += 1

    def finish(self) -> ReplayResult:
        """Fire what is due at the last event time; return the result."""
        self.fire_due(self.clock.now())
        self.result.customers = len(self.tables.data["customers"])
        return self.result


def _as_json(value: bytes) -> dict[str, Any]:
    model = codec.decode_event(value)
    return dict(orjson.loads(model.model_dump_json()))


def read_lines(path: Path) -> Iterator[bytes]:
    """Non-empty lines of a JSONL file, as bytes."""
    with path.open("rb") as handle:
        for line in handle:
            line = line.strip()
            if line:
                yield line


def replay_events(
    lines: Iterable[bytes], domain: Domain, partitions: int = DEFAULT_PARTITIONS
) -> ReplayResult:
    """Replay JSON events (one per item) and return what was emitted."""
    started = time.perf_counter()
    replayer = Replayer(domain, partitions)
    for raw in lines:
        replayer.feed(raw)
    result = replayer.finish()
    result.seconds = time.perf_counter() - started
    return result


def replay_file(path: Path, rules: Path | None, out: Path | None = None) -> ReplayResult:
    """Replay a JSONL file with ``rules``; write transitions/triggers JSONL into ``out``."""
    result = replay_events(read_lines(path), load_domain(rules))
    result.rules = str(rules) if rules else "default"
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        _write(out / "transitions.jsonl", result.transitions)
        _write(out / "triggers.jsonl", result.triggers)
    return result


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("wb") as handle:
        for row in rows:
            handle.write(orjson.dumps(row) + b"\n")


@dataclass
class TriggerDiff:
    """Triggers emitted under only one of two rule sets."""

    only_a: list[dict[str, Any]]
    only_b: list[dict[str, Any]]
    common: int

    def summary(self) -> str:
        def kinds(rows: list[dict[str, Any]]) -> str:
            counts = Counter(str(r["trigger_type"]) for r in rows)
            return ", ".join(f"{k}={n}" for k, n in sorted(counts.items())) or "none"

        return (
            f"diff: {self.common} triggers in both; only in the first rules: "
            f"{len(self.only_a)} ({kinds(self.only_a)}); only in the second: "
            f"{len(self.only_b)} ({kinds(self.only_b)})"
        )


def diff_triggers(a: ReplayResult, b: ReplayResult) -> TriggerDiff:
    """Compare the trigger sets (by id) of two replays of the same history."""
    ids_a, ids_b = a.trigger_ids(), b.trigger_ids()
    return TriggerDiff(
        only_a=[t for t in a.triggers if t["trigger_id"] not in ids_b],
        only_b=[t for t in b.triggers if t["trigger_id"] not in ids_a],
        common=len(ids_a & ids_b),
    )


def write_diff(diff: TriggerDiff, path: Path) -> None:
    """The triggers only one side emits, one JSON per line with ``only_in``."""
    rows = [{"only_in": "rules", **t} for t in diff.only_a]
    rows += [{"only_in": "against", **t} for t in diff.only_b]
    path.parent.mkdir(parents=True, exist_ok=True)
    _write(path, rows)

"""Batch-wise reads and writes of the worker's Faust tables (customers, identity).

Faust binds table writes to "the current event" and sends one changelog record per write
through its aiokafka producer; inside a batch that is both impossible (no current event) and
slow. Here a batch's writes go straight to the table's local store partition (the partition of
the record the key was processed for: the key's own partition, since every input is
co-partitioned) and to the table's changelog topic, same partition, through the worker's
librdkafka producer; the store's persisted changelog offset is then advanced, exactly what
Faust records itself. Faust still owns everything else: changelog topics, partition
assignment, standby replicas and recovery of the store from the changelog after a restart.

Brokers that report a partition's end offset as the first offset of its last batch (Tansu)
make Faust's recovery stop early. With ``single_tail`` the last changelog record of each
partition in a batch is produced alone after the others were acknowledged, so every batch
written to a changelog ends with a one-record batch and recovery reads everything.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from faust.types import TP

from streams import crashpoints
from streams.producer import BatchProducer
from streams.records import InRecord, Space, Write

_FAUST_META = b"__faust"


class FaustTables:
    """The customers and identity tables of one worker, read and written batch-wise."""

    def __init__(
        self, customers: Any, identity: Any, producer: BatchProducer, *, single_tail: bool
    ) -> None:
        self.tables: dict[Space, Any] = {"customers": customers, "identity": identity}
        self.producer = producer
        self.single_tail = single_tail

    def _changelog(self, space: Space) -> str:
        return str(self.tables[space].changelog_topic.get_topic_name())

    def read(self, space: Space, key: str, source: InRecord) -> bytes | None:
        """The stored value of ``key`` (in ``source``'s partition), or ``None``."""
        store = self.tables[space].data
        dbs = getattr(store, "_dbs", None)
        if dbs is None:
            value = store.data.get(key.encode())
        else:
            value = store._db_for_partition(source.partition).get(key.encode())
        return None if value is None else bytes(value)

    def get_any(self, space: Space, key: str) -> bytes | None:
        """The stored value of ``key`` in whichever local partition holds it."""
        value = self.tables[space].data._get(key.encode())
        return None if value is None else bytes(value)

    async def persist(self, writes: list[Write]) -> None:
        """Write to the changelogs, wait for their acks, then to the local stores (and the
        persisted changelog offsets).

        The changelog goes first: a crash before its acks leaves the local store as it was
        (the inputs behind the writes are not committed, so they are processed again); a
        crash after them leaves records past the store's persisted offset, which Faust's
        recovery applies on restart. Writing the local store first (the order before session
        5) let a crash in between keep a state in the local store that the changelog never
        got: the restarted worker found its inputs applied (watermarks) and never wrote it
        again, so a recovery from the changelog (another worker, an empty data dir) went back
        to the older state."""
        if not writes:
            return
        if not self.producer.track:
            self.track_changelogs()
        head, tail = self._split(writes)
        for write in head:
            self._produce(write)
        crashpoints.reached("changelog-produced")
        if tail:
            await self.producer.flush()
            crashpoints.reached("changelog-head-acked")
            for write in tail:
                self._produce(write)
        await self.producer.flush()
        crashpoints.reached("changelog-acked")
        for write in writes:
            self._store(write)
        self._advance_offsets()

    def _split(self, writes: list[Write]) -> tuple[list[Write], list[Write]]:
        if not self.single_tail:
            return writes, []
        last: dict[tuple[Space, int], int] = {}
        for i, write in enumerate(writes):
            last[(write.space, write.source.partition)] = i
        tail_at = set(last.values())
        head = [w for i, w in enumerate(writes) if i not in tail_at]
        tail = [w for i, w in enumerate(writes) if i in tail_at]
        return head, tail

    def _produce(self, write: Write) -> None:
        """Enqueue ``write``'s changelog record (same partition as the key's store)."""
        key = write.key.encode()
        self.producer.produce(self._changelog(write.space), key, write.value,
                              write.source.partition)  # fmt: skip

    def _store(self, write: Write) -> None:
        """Apply ``write`` to the local store partition."""
        store = self.tables[write.space].data
        key = write.key.encode()
        dbs = getattr(store, "_dbs", None)
        if dbs is None:
            if write.value is None:
                store.data.pop(key, None)
            else:
                store.data[key] = write.value
            return
        partition = write.source.partition
        db = store._db_for_partition(partition)
        if write.value is None:
            db.delete(key)
        else:
            db.put(key, write.value)
            store._key_index[key] = partition

    def _advance_offsets(self) -> None:
        highest: dict[tuple[str, int], int] = {}
        for topic, partition, offset in self.producer.acked():
            if offset > highest.get((topic, partition), -1):
                highest[(topic, partition)] = offset
        by_topic = {self._changelog(space): space for space in self.tables}
        for (topic, partition), offset in highest.items():
            store = self.tables[by_topic[topic]].data
            store.set_persisted_offset(TP(topic, partition), offset)

    def track_changelogs(self) -> None:
        """Collect acknowledged changelog offsets (call once the tables are set up)."""
        self.producer.track.update(self._changelog(space) for space in self.tables)

    def items(self, space: Space, partition: int) -> Iterator[tuple[str, bytes]]:
        """Every (key, value) stored locally for ``partition`` of a table."""
        store = self.tables[space].data
        if getattr(store, "_dbs", None) is None:  # memory store: not partitioned locally
            for key, value in list(store.data.items()):
                yield _text(key), bytes(value)
            return
        for key, value in store._db_for_partition(partition).items():
            if bytes(key).startswith(_FAUST_META):  # Faust's own offset bookkeeping
                continue
            yield _text(key), bytes(value)


def _text(key: Any) -> str:
    return key.decode("utf-8", "replace") if isinstance(key, bytes | bytearray) else str(key)

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

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import rocksdict
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
        self._names: dict[Space, str] | None = None

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
        to the older state.

        A RocksDB store partition gets its writes and its persisted changelog offset in one
        ``WriteBatch`` (:meth:`_store`), so they become durable together."""
        if not writes:
            return
        if not self.producer.track:
            self.track_changelogs()
        head, tail = self._split(writes)
        self._produce(head)
        crashpoints.reached("changelog-produced")
        if tail:
            await self.producer.flush()
            crashpoints.reached("changelog-head-acked")
            self._produce(tail)
        await self.producer.flush()
        crashpoints.reached("changelog-acked")
        self._store(writes, self._acked_offsets())

    def _split(self, writes: list[Write]) -> tuple[list[Write], list[Write]]:
        """(head, tail): with ``single_tail`` the tail is the last write of each (table,
        partition) and the head all others, both in the order of ``writes``."""
        if not self.single_tail:
            return writes, []
        last: dict[tuple[Space, int], int] = {}
        for i, write in enumerate(writes):
            last[(write.space, write.source.partition)] = i
        head: list[Write] = []
        tail: list[Write] = []
        start = 0
        for i in sorted(last.values()):
            head += writes[start:i]
            tail.append(writes[i])
            start = i + 1
        head += writes[start:]
        return head, tail

    def _produce(self, writes: list[Write]) -> None:
        """Enqueue each write's changelog record (same partition as the key's store)."""
        produce = self.producer.produce
        names = self._changelogs()
        for write in writes:
            produce(names[write.space], write.key.encode(), write.value, write.source.partition)

    def _acked_offsets(self) -> dict[tuple[Space, int], int]:
        """The highest changelog offset acknowledged per (table, partition) since the last
        call (the producer tracks the changelog topics only)."""
        highest: dict[tuple[str, int], int] = {}
        known = highest.get
        for topic, partition, offset in self.producer.acked():
            if offset > known((topic, partition), -1):
                highest[(topic, partition)] = offset
        space_of = {name: space for space, name in self._changelogs().items()}
        return {(space_of[topic], partition): offset
                for (topic, partition), offset in highest.items()}  # fmt: skip

    def _store(self, writes: list[Write], offsets: dict[tuple[Space, int], int]) -> None:
        """Apply ``writes`` to the local store partitions and set the persisted changelog
        ``offsets``.

        A RocksDB store gets one ``WriteBatch`` per partition with the partition's writes
        (in order) and its offset (the key and value of Faust's ``set_persisted_offset``).
        Every batch is built before the first is written, so a write that cannot be batched
        changes nothing; a batch that fails to write changes nothing of its partition."""
        by_space: dict[Space, list[Write]] = {space: [] for space in self.tables}
        for write in writes:
            by_space[write.space].append(write)
        built: list[tuple[Any, list[Write], dict[int, Any]]] = []
        for space, table in self.tables.items():
            store, mine = table.data, by_space[space]
            marks = {p: offset for (s, p), offset in offsets.items() if s == space}
            if getattr(store, "_dbs", None) is None:
                _store_in_memory(store, mine, marks, self._changelogs()[space])
            else:
                built.append((store, mine, _batches(store, mine, marks)))
        for store, mine, batches in built:
            for partition, batch in batches.items():
                store._db_for_partition(partition).write(batch)
            _index(store, mine)

    def _changelog(self, space: Space) -> str:
        return str(self.tables[space].changelog_topic.get_topic_name())

    def _changelogs(self) -> dict[Space, str]:
        """The changelog topic of each table (looked up once: fixed by app id and table)."""
        names = self._names
        if names is None:
            names = self._names = {space: self._changelog(space) for space in self.tables}
        return names

    def track_changelogs(self) -> None:
        """Collect acknowledged changelog offsets (call once the tables are set up)."""
        self.producer.track.update(self._changelogs().values())

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


def _batches(store: Any, writes: list[Write], offsets: dict[int, int]) -> dict[int, Any]:
    """One ``WriteBatch`` per partition of a RocksDB ``store``: its ``writes`` (a ``None``
    value deletes the key), then its persisted changelog offset, written exactly as Faust's
    ``Store.set_persisted_offset`` writes it."""
    new = _batch_type(store)
    batches: dict[int, Any] = {}
    for write in writes:
        partition = write.source.partition
        batch = batches.get(partition)
        if batch is None:
            batch = batches[partition] = new()
        if write.value is None:
            batch.delete(write.key.encode())
        else:
            batch.put(write.key.encode(), write.value)
    offset_key = store.offset_key
    for partition, offset in offsets.items():
        batch = batches.get(partition)
        if batch is None:
            batch = batches[partition] = new()
        batch.put(offset_key, str(offset).encode())
    return batches


def _batch_type(store: Any) -> Callable[[], Any]:
    """What makes an empty write batch for ``store``'s driver (as Faust's
    ``apply_changelog_batch``; the python-rocksdb branch is not installed here, so untested)."""
    if store.use_rocksdict:
        return partial(rocksdict.WriteBatch, raw_mode=True)  # the store's dbs are raw
    from faust.stores import rocksdb as faust_rocksdb  # python-rocksdb driver

    writebatch: Callable[[], Any] = getattr(faust_rocksdb, "rocksdb").WriteBatch  # noqa: B009
    return writebatch


def _index(store: Any, writes: list[Write]) -> None:
    """Remember the partition of every key stored (Faust's key index, as its ``_set``)."""
    remember = store._key_index.__setitem__  # per key: the LRU evicts as it did for _set
    for write in writes:
        if write.value is not None:
            remember(write.key.encode(), write.source.partition)


def _store_in_memory(store: Any, writes: list[Write], offsets: dict[int, int], topic: str) -> None:
    """Apply ``writes`` to a memory store (tests; not partitioned locally)."""
    data = store.data
    for write in writes:
        if write.value is None:
            data.pop(write.key.encode(), None)
        else:
            data[write.key.encode()] = write.value
    for partition, offset in offsets.items():
        store.set_persisted_offset(TP(topic, partition), offset)

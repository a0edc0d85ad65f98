"""FaustTables.persist against real Faust RocksDB stores (rocksdict, on disk).

A persist writes each store partition's writes and its persisted changelog offset in one
``WriteBatch``. These tests compare what it stores with what the per-key path before it
stored (one ``put``/``delete`` per write, then ``Store.set_persisted_offset``), reading back
through :meth:`FaustTables.read` / :meth:`FaustTables.items` and Faust's own
``persisted_offset``, and check that a failed write changes nothing it should not.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faust
import pytest
import rocksdict
from faust.types import TP

from streams.faust_tables import FaustTables
from streams.records import InRecord, Space, Write

PARTITIONS = 4


class AckingProducer:
    """Stands in for BatchProducer: every record enqueued is acknowledged at the next flush,
    with offsets counting per (topic, partition) as a broker's would."""

    def __init__(self) -> None:
        self.track: set[str] = set()
        self.next_offset: dict[tuple[str, int], int] = {}
        self._queued: list[tuple[str, int]] = []
        self._acked: list[tuple[str, int, int]] = []
        self.records: list[tuple[str, bytes, bytes | None, int]] = []

    def produce(self, topic: str, key: bytes, value: bytes | None, partition: int) -> None:
        self.records.append((topic, key, value, partition))
        self._queued.append((topic, partition))

    async def flush(self) -> None:
        for topic, partition in self._queued:
            offset = self.next_offset.get((topic, partition), 0)
            self.next_offset[(topic, partition)] = offset + 1
            if topic in self.track:
                self._acked.append((topic, partition, offset))
        self._queued = []

    def acked(self) -> list[tuple[str, int, int]]:
        acked, self._acked = self._acked, []
        return acked


def _open_tables(datadir: Path, producer: AckingProducer) -> FaustTables:
    app = faust.App("pf-test", broker="kafka://localhost:1", store="rocksdb://",
                    datadir=str(datadir), topic_partitions=PARTITIONS)  # fmt: skip
    tables = [app.Table(name, partitions=PARTITIONS, key_type=bytes, value_type=bytes)
              for name in ("customers", "identity")]  # fmt: skip
    for table in tables:
        for partition in range(PARTITIONS):
            table.data._db_for_partition(partition)  # opened, as after an assignment
    return FaustTables(tables[0], tables[1], producer, single_tail=True)  # type: ignore[arg-type]


@pytest.fixture
def tables(tmp_path: Path) -> Iterator[FaustTables]:
    opened = _open_tables(tmp_path / "new", AckingProducer())
    yield opened
    _close(opened)


@pytest.fixture
def reference(tmp_path: Path) -> Iterator[FaustTables]:
    opened = _open_tables(tmp_path / "old", AckingProducer())
    yield opened
    _close(opened)


def _close(tables: FaustTables) -> None:
    for table in tables.tables.values():
        for db in table.data._dbs.values():
            db.close()


def _write(space: Space, key: str, value: bytes | None, partition: int) -> Write:
    return Write(space, key, value, InRecord("events", partition, 0, None, None))


async def _persist_per_key(tables: FaustTables, writes: list[Write]) -> None:
    """The persist before write batches: the changelog, then one store write per key and
    ``set_persisted_offset`` per changelog partition (streams/faust_tables.py at e8ffef0)."""
    producer = tables.producer
    names = {space: tables._changelog(space) for space in tables.tables}
    producer.track.update(names.values())
    for write in writes:
        producer.produce(names[write.space], write.key.encode(), write.value,
                         write.source.partition)  # fmt: skip
    await producer.flush()
    for write in writes:
        store = tables.tables[write.space].data
        db = store._db_for_partition(write.source.partition)
        if write.value is None:
            db.delete(write.key.encode())
        else:
            db.put(write.key.encode(), write.value)
            store._key_index[write.key.encode()] = write.source.partition
    highest: dict[tuple[str, int], int] = {}
    for topic, partition, offset in producer.acked():
        highest[(topic, partition)] = max(offset, highest.get((topic, partition), -1))
    by_topic = {name: space for space, name in names.items()}
    for (topic, partition), offset in highest.items():
        tables.tables[by_topic[topic]].data.set_persisted_offset(TP(topic, partition), offset)


def _snapshot(tables: FaustTables) -> dict[str, Any]:
    """Everything stored: values (items and read), persisted offsets, the key index."""
    found: dict[str, Any] = {}
    for space, table in tables.tables.items():
        topic = tables._changelog(space)
        for partition in range(PARTITIONS):
            items = dict(tables.items(space, partition))
            source = InRecord("events", partition, 0, None, None)
            assert {key: tables.read(space, key, source) for key in items} == items
            found[f"{space}/{partition}"] = items
            offset = table.data.persisted_offset(TP(topic, partition))
            found[f"{space}/{partition}/offset"] = offset
        found[f"{space}/index"] = dict(table.data._key_index.data)
    return found


def _rounds() -> list[list[Write]]:
    first = [_write("customers", f"c{i}", b"state-%d" % i, i % PARTITIONS) for i in range(40)]
    first += [_write("identity", f"a{i}", b"c%d" % i, i % 3) for i in range(10)]
    second = [
        _write("customers", "c1", None, 1),  # deleted
        _write("customers", "c2", b"newer", 2),
        _write("customers", "c2", b"newest", 2),  # the last write of a key wins
        _write("customers", "c5", None, 1),
        _write("customers", "c5", b"back", 1),  # deleted, then written again
        _write("identity", "a3", None, 0),
        _write("identity", "a4", b"moved", 1),
        _write("customers", "c3", None, 3),  # the only write of partition 3: a delete
        _write("customers", "c8", b"later", 0),
    ]
    return [first, second]


async def test_a_persist_stores_what_the_per_key_path_stored(
    tables: FaustTables, reference: FaustTables
) -> None:
    for writes in _rounds():
        await tables.persist(writes)
        await _persist_per_key(reference, writes)
        assert _snapshot(tables) == _snapshot(reference)
    after = _snapshot(tables)
    assert after["customers/2"]["c2"] == b"newest"
    assert after["customers/1"]["c5"] == b"back"
    assert "c1" not in after["customers/1"] and "c3" not in after["customers/3"]
    assert "a3" not in after["identity/0"] and after["identity/1"]["a4"] == b"moved"
    # customers: 10 writes per partition in round 1; round 2: p0 1, p1 3, p2 2, p3 1
    assert [after[f"customers/{p}/offset"] for p in range(4)] == [10, 12, 11, 10]
    # identity: round 1 p0 4, p1 3, p2 3; round 2: p0 1, p1 1
    assert [after[f"identity/{p}/offset"] for p in range(4)] == [4, 3, 2, None]


async def test_the_offsets_are_those_the_changelog_acknowledged(tables: FaustTables) -> None:
    producer = tables.producer
    assert isinstance(producer, AckingProducer)
    producer.next_offset[("pf-test-customers-changelog", 1)] = 500  # a changelog with history
    await tables.persist([_write("customers", "c1", b"x", 1), _write("customers", "c9", b"y", 1),
                          _write("identity", "a1", b"c1", 2)])  # fmt: skip
    customers, identity = (tables.tables[s].data for s in ("customers", "identity"))
    assert customers.persisted_offset(TP("pf-test-customers-changelog", 1)) == 501
    assert identity.persisted_offset(TP("pf-test-identity-changelog", 2)) == 0
    for partition in (0, 2, 3):
        assert customers.persisted_offset(TP("pf-test-customers-changelog", partition)) is None
    for partition in (0, 1, 3):
        assert identity.persisted_offset(TP("pf-test-identity-changelog", partition)) is None


async def test_a_write_that_cannot_be_batched_changes_no_partition(
    tables: FaustTables,
) -> None:
    await tables.persist(_rounds()[0])
    before = _snapshot(tables)
    bad = [_write("customers", "c0", b"fine", 0), _write("customers", "c1", b"fine", 1),
           _write("customers", "c2", "not bytes", 2)]  # type: ignore[arg-type]  # fmt: skip
    with pytest.raises(ValueError, match="bytes"):
        await tables.persist(bad)
    assert _snapshot(tables) == before  # the per-key path had stored c0 and c1 already


async def test_a_batch_that_fails_to_write_changes_nothing_of_its_partition(
    tables: FaustTables,
) -> None:
    await tables.persist(_rounds()[0])
    before = _snapshot(tables)
    store = tables.tables["customers"].data
    writable = store._dbs[1]
    # the same RocksDB opened read-only: RocksDB itself refuses the write
    store._dbs[1] = rocksdict.Rdict(str(store.partition_path(1)),
                                    options=rocksdict.Options(raw_mode=True),
                                    access_type=rocksdict.AccessType.read_only())  # fmt: skip
    writes = [_write("customers", "c0", b"p0", 0), _write("customers", "c1", b"p1", 1),
              _write("customers", "c5", None, 1)]  # fmt: skip
    try:
        with pytest.raises(Exception, match="read only"):
            await tables.persist(writes)
    finally:
        store._dbs[1].close()
        store._dbs[1] = writable
    after = _snapshot(tables)
    assert after["customers/1"] == before["customers/1"]  # neither c1's value nor c5's delete
    assert after["customers/1/offset"] == before["customers/1/offset"] == 9
    # partition 0 (written before) has its write and the offset covering it
    assert after["customers/0"]["c0"] == b"p0" and after["customers/0/offset"] == 10

"""Reading and writing Faust tables from a batch (outside per-event stream iteration).

Faust binds a table write to "the current event": its partition picks the changelog partition
and the local RocksDB partition. A batch holds many events, so each read and write here runs
with the current event set to a record of the key's own partition (the record the key was
processed for), which is exactly what per-event iteration would have done.

Brokers that report a partition's end offset as the first offset of its last batch (Tansu)
make Faust's table recovery stop early. With ``single_tail`` the last changelog record of each
partition in a batch is written on its own, after the others were flushed, so every batch of
a changelog ends with a one-record batch and recovery reads everything.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from faust.streams import _current_event

from streams.records import InRecord, Space, Write

_FAUST_META = b"__faust"


@contextmanager
def as_current(token: Any) -> Iterator[None]:
    """Run the block as if ``token`` (a Faust event) were the event being processed."""
    reset = _current_event.set(weakref.ref(token) if token is not None else None)
    try:
        yield
    finally:
        _current_event.reset(reset)


class FaustTables:
    """The customers and identity tables of one worker, read and written batch-wise."""

    def __init__(self, app: Any, customers: Any, identity: Any, *, single_tail: bool) -> None:
        self.app = app
        self.tables: dict[Space, Any] = {"customers": customers, "identity": identity}
        self.single_tail = single_tail

    def read(self, space: Space, key: str, source: InRecord) -> bytes | None:
        """The stored value of ``key`` (in ``source``'s partition), or ``None``."""
        with as_current(source.token):
            value = self.tables[space].get(key.encode())
        return None if value is None else bytes(value)

    async def persist(self, writes: list[Write]) -> None:
        """Apply ``writes`` to the tables (local store + changelog) and wait for the changelog."""
        if not writes:
            return
        head, tail = self._split(writes)
        for write in head:
            self._apply(write)
        if tail:
            await self.app.producer.flush()
            for write in tail:
                self._apply(write)
        await self.app.producer.flush()

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

    def _apply(self, write: Write) -> None:
        table = self.tables[write.space]
        key = write.key.encode()
        with as_current(write.source.token):
            if write.value is None:
                if key in table:
                    del table[key]
            else:
                table[key] = write.value

    def items(self, space: Space, partition: int) -> Iterator[tuple[str, bytes]]:
        """Every (key, value) stored locally for ``partition`` of a table."""
        store = self.tables[space].data
        dbs = getattr(store, "_dbs", None)
        if dbs is None:  # memory store: not partitioned locally
            for key, value in list(getattr(store, "data", {}).items()):
                yield _text(key), bytes(value)
            return
        db = store._db_for_partition(partition)
        for key, value in db.items():
            if bytes(key).startswith(_FAUST_META):  # Faust's own offset bookkeeping
                continue
            yield _text(key), bytes(value)


def _text(key: Any) -> str:
    return key.decode("utf-8", "replace") if isinstance(key, bytes | bytearray) else str(key)

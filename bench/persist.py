"""The cost of a table persist (``FaustTables.persist``) per write, this tree against a commit.

Both run in one process on real Faust RocksDB stores (rocksdict, one data dir each, 4
partitions per table), alternating old and new, ``--runs`` times each: every run persists the
same ``--writes`` writes (80 % customer states of ``--value-bytes``, default 900 like
bench.processors' state p50 of 922 B; 20 % identity entries; keys spread evenly over the
partitions; every 20th write a delete). The changelog producer is
a stub that acknowledges at flush with broker-like offsets, so what is timed is the Python
and RocksDB side of a persist: splitting, the produce calls (not librdkafka's enqueue, which
both versions call with the same arguments), the local store writes and the persisted
offsets. The old ``streams/faust_tables.py`` is read with ``git show <commit>:...``.

    python -m bench.persist [--against e8ffef0] [--writes 20000] [--runs 7]
    python -m bench.persist --only new --runs 5     # one side (for callgrind; see
                                                     # docs/bench/persist.md)

Prints one line per run (wall and CPU microseconds per write), then the medians as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

import faust

from streams import faust_tables
from streams.records import InRecord, Space, Write

PARTITIONS = 4


class StubProducer:
    """Acknowledges every record at the next flush, offsets counting per (topic, partition)."""

    def __init__(self) -> None:
        self.track: set[str] = set()
        self._next: dict[tuple[str, int], int] = {}
        self._queued: list[tuple[str, int]] = []
        self._acked: list[tuple[str, int, int]] = []

    def produce(self, topic: str, key: bytes | None, value: bytes | None,
                partition: int | None = None) -> None:  # fmt: skip
        self._queued.append((topic, partition or 0))

    async def flush(self) -> None:
        for at in self._queued:
            offset = self._next.get(at, 0)
            self._next[at] = offset + 1
            self._acked.append((at[0], at[1], offset))
        self._queued = []

    def acked(self) -> list[tuple[str, int, int]]:
        acked, self._acked = self._acked, []
        return acked


def _old_module(commit: str) -> types.ModuleType:
    """``streams/faust_tables.py`` as of ``commit``, imported as a module."""
    source = subprocess.run(["git", "show", f"{commit}:streams/faust_tables.py"],
                            check=True, capture_output=True, text=True).stdout  # fmt: skip
    module = types.ModuleType("faust_tables_old")
    exec(compile(source, f"{commit}:streams/faust_tables.py", "exec"), module.__dict__)
    return module


def _tables(module: types.ModuleType, datadir: Path) -> Any:
    app = faust.App("pf-bench", broker="kafka://localhost:1", store="rocksdb://",
                    datadir=str(datadir), topic_partitions=PARTITIONS)  # fmt: skip
    customers, identity = (
        app.Table(name, partitions=PARTITIONS, key_type=bytes, value_type=bytes)
        for name in ("customers", "identity")
    )
    for table in (customers, identity):
        store: Any = table.data
        for partition in range(PARTITIONS):
            store._db_for_partition(partition)  # opened, as after an assignment
    return module.FaustTables(customers, identity, StubProducer(), single_tail=True)


def _writes(n: int, value_bytes: int) -> list[Write]:
    sources = [InRecord("events", p, 0, None, None) for p in range(PARTITIONS)]
    state = bytes(range(256)) * (value_bytes // 256 + 1)
    writes = []
    for i in range(n):
        space: Space = "identity" if i % 5 == 4 else "customers"
        value = None if i % 20 == 0 else state[:value_bytes] if space == "customers" else b"c%d" % i
        writes.append(Write(space, f"customer-{i:07d}", value, sources[i % PARTITIONS]))
    return writes


def _time(tables: Any, writes: list[Write]) -> tuple[float, float]:
    """(wall, CPU) microseconds per write of one persist."""
    wall, cpu = time.perf_counter(), time.process_time()
    asyncio.run(tables.persist(writes))
    n = len(writes)
    return (time.perf_counter() - wall) * 1e6 / n, (time.process_time() - cpu) * 1e6 / n


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--against", default="e8ffef0", help="commit of the old version")
    parser.add_argument("--writes", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--value-bytes", type=int, default=900)
    parser.add_argument("--only", choices=("old", "new"), default=None)
    args = parser.parse_args(argv)
    writes = _writes(args.writes, args.value_bytes)
    sides = {"old": lambda: _old_module(args.against), "new": lambda: faust_tables}
    chosen = [args.only] if args.only else ["old", "new"]
    results: dict[str, list[tuple[float, float]]] = {side: [] for side in chosen}
    with tempfile.TemporaryDirectory(prefix="pf-bench-persist-") as tmp:
        tables = {side: _tables(sides[side](), Path(tmp) / side) for side in chosen}
        for side in chosen:  # warm-up: opens, first memtable inserts
            _time(tables[side], writes)
        for run in range(args.runs):
            for side in chosen if run % 2 == 0 else chosen[::-1]:
                wall, cpu = _time(tables[side], writes)
                results[side].append((wall, cpu))
                print(f"run {run} {side}: wall {wall:.2f} us/write, cpu {cpu:.2f} us/write",
                      file=sys.stderr)  # fmt: skip
        for table in (t for side in chosen for t in tables[side].tables.values()):
            for db in table.data._dbs.values():
                db.close()
    summary = {side: {"wall_us_per_write": round(statistics.median(w for w, _ in rows), 3),
                      "cpu_us_per_write": round(statistics.median(c for _, c in rows), 3)}
               for side, rows in results.items()}  # fmt: skip
    print(json.dumps({"writes": args.writes, "runs": args.runs, "against": args.against,
                      **summary}))  # fmt: skip


if __name__ == "__main__":
    main()

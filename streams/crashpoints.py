"""Test hook: kill the worker process (SIGKILL, as ``kill -9``) at a named point of a persist.

Off unless ``PERSONAFLOW_CRASH_AT`` is set (tests only; never in production). Its value is
``<point>`` or ``<point>:<n>``: the worker kills itself the ``n``-th time (default 1) a
persist that writes something reaches ``<point>``. The points, in the order a background
persist passes them (streams/worker.py, streams/faust_tables.py):

- ``outputs-acked``: every output produced so far was acknowledged; no table write yet.
- ``changelog-produced``: the table writes' changelog records are enqueued (not
  acknowledged; with ``changelog_single_tail`` the last record of each changelog partition
  is not even enqueued); nothing is in the local store yet.
- ``changelog-head-acked`` (with ``changelog_single_tail`` only): the changelog acknowledged
  every write but the last of each changelog partition, which is not produced yet. A
  partition's event clock (``pf-clock:<p>``, often its only identity write) is such a last
  write: a crash here leaves states durable without the clock that was persisted with them.
- ``changelog-acked``: the changelog acknowledged every write; the local store has none.
- ``tables-acked``: the local store has the writes and the persisted changelog offsets
  advanced; the inputs behind them are not yet acknowledged to Faust.

A crash at any of them must lose no trigger: the inputs behind the persist were not
committed, so the restarted worker processes them again (tests/integration/
test_streams_crash_persist.py).
"""

from __future__ import annotations

import os
import signal
import sys

ENV = "PERSONAFLOW_CRASH_AT"
POINTS = ("outputs-acked", "changelog-produced", "changelog-head-acked", "changelog-acked",
          "tables-acked")


def _parse(value: str) -> tuple[str, int]:
    point, _, count = value.partition(":")
    if point not in POINTS:
        raise ValueError(f"{ENV}: unknown point {point!r} (one of {', '.join(POINTS)})")
    return point, int(count or 1)


_TARGET = _parse(os.environ[ENV]) if os.environ.get(ENV) else None
_seen: dict[str, int] = {}


def reached(point: str) -> None:
    """Mark that a persist reached ``point``; SIGKILL this process if it is the configured
    one (and the configured time). A no-op unless ``PERSONAFLOW_CRASH_AT`` is set."""
    if _TARGET is None or _TARGET[0] != point:
        return
    _seen[point] = _seen.get(point, 0) + 1
    if _seen[point] >= _TARGET[1]:
        print(f"{ENV}: crash point {point} reached, SIGKILL", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

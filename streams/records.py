"""Plain records exchanged between the Kafka adapter (Faust, replay) and the batch processor."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Headers = list[tuple[str, bytes]]
Space = Literal["customers", "identity"]

KIND = "pf-kind"
"""Header naming what an internal.rekeyed record is: ``event``, ``alias`` or ``merge``."""
ORIGIN = "pf-origin"
"""Header of a forwarded event: ``topic/partition/offset`` of the record as first received."""
HOPS = "pf-hops"
"""Header counting how often an event was forwarded (loops are dead-lettered)."""
ANON = "pf-anon"
REQUEST = "pf-req"
CAUSE = "pf-cause"
AT = "pf-at"
TIME = "pf-time"
"""Header of an ``alias`` request: the event time (epoch seconds) of the Identify/Alias behind
it. With alignment on, the anonymous id's partition releases the request at that time, after
its own earlier events (so the state it hands over is the state at the Identify, as in
replay)."""
FROM = "pf-from"
"""Header of a ``bound`` record: the partition whose bound it is (see streams/align.py); of a
forwarded event, alias request or merge answer: the partition that sent it."""
SENT = "pf-sent"
"""Header of a forwarded event or alias request sent to another partition of the same worker:
a unique id, so the worker knows when it has fetched it back (streams/worker.py)."""
BOUND = b"bound"
"""``pf-kind`` of a bound record: its sender will send nothing earlier than its ``pf-time``."""

LOCAL = -1
"""Offset of an internal record handled in process (its target is the partition that made it):
never produced, never consumed, never acknowledged."""


@dataclass(slots=True)
class InRecord:
    """One consumed record. ``token`` is the adapter's handle (the Faust event) for writes.

    Treated as immutable, but not declared frozen: one is built per record, and a frozen
    dataclass's ``__init__`` (``object.__setattr__`` per field) cost 2.9 us against 0.6 us."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float = 0.0
    headers: tuple[tuple[str, bytes], ...] = ()
    token: Any = None
    event: Any = None
    """The decoded input event when the adapter already decoded it (event-time alignment)."""

    def header(self, name: str) -> str | None:
        """The last value of header ``name`` as text, if present."""
        found = None
        for key, value in self.headers:
            if key == name:
                found = value
        return None if found is None else found.decode("utf-8", "replace")

    def key_text(self) -> str:
        """The record key as text ("" when there is none)."""
        return self.key.decode("utf-8", "replace") if self.key else ""


@dataclass(slots=True)
class OutRecord:
    """One record to produce (treated as immutable; not frozen, like :class:`InRecord`)."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers = field(default_factory=list)


@dataclass(slots=True)
class Write:
    """One table write. ``source`` is a record of the key's partition.

    A customer state is kept as the object (``state``) and serialised only when the write is
    persisted (:meth:`materialise`), so several batches' updates of one customer cost one
    encoding; otherwise ``value`` is the bytes to store, ``None`` deleting the key."""

    space: Space
    key: str
    value: bytes | None
    source: InRecord
    state: Any = None

    def materialise(self, encode: Callable[[Any], bytes]) -> Write:
        """Serialise ``state`` into ``value`` (once); returns self."""
        if self.state is not None:
            self.value = encode(self.state)
            self.state = None
        return self

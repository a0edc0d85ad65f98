"""Records of a customer held back while its identity merge is in flight.

When an Identify/Alias links an anonymous id to a customer, the customer's partition asks the
anonymous id's partition (through internal.rekeyed) to hand the anonymous state over, and the
answer (a ``merge`` record) comes back later. Events of the customer that follow the Identify
must see the merged state, as replay applies them (it runs the internal round trip to the end
before the next event). Without holding them, whether they come before or after the merge
depends on fetch timing and on how partitions are split between workers.

:class:`Parking` remembers which (customer, anonymous id) answers are awaited and keeps the
customer's later records, in order, until every awaited answer arrived (or ``max_wait_s``
passed: a lost answer must not stall the partition forever).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from streams.records import InRecord

log = logging.getLogger("personaflow.streams")


class Parking:
    """Awaited merge answers per customer and the records parked behind them."""

    def __init__(self, max_wait_s: float = 30.0) -> None:
        self.max_wait_s = max_wait_s
        """Longest a customer's records wait for a merge answer before going on without it."""
        self._waits: dict[str, set[str]] = {}
        self._since: dict[str, float] = {}
        self._parked: dict[str, list[InRecord]] = {}

    def __len__(self) -> int:
        """How many records are parked."""
        return sum(len(records) for records in self._parked.values())

    def __bool__(self) -> bool:
        """Whether any merge answer is awaited (cheap, for every batch)."""
        return bool(self._waits)

    def wait(self, customer: str, anonymous: str, now: float) -> None:
        """From now on, park ``customer``'s records until the answer for ``anonymous``.
        ``now`` is a monotonic time, never below an earlier call's (:meth:`stale` relies on
        the customers waiting being kept in the order they began to)."""
        self._waits.setdefault(customer, set()).add(anonymous)
        self._since.setdefault(customer, now)

    def awaits(self, customer: str, anonymous: str) -> bool:
        """Whether the answer for (``customer``, ``anonymous``) is awaited."""
        return anonymous in self._waits.get(customer, ())

    def waiting(self, customer: str) -> bool:
        """Whether ``customer``'s records must be parked."""
        return customer in self._waits

    def park(self, customer: str, record: InRecord) -> None:
        """Keep ``record`` (of ``customer``) for later, after the ones already parked."""
        self._parked.setdefault(customer, []).append(record)

    def earliest(self, partition: int) -> float:
        """The earliest event time of the events parked on ``partition`` (+inf: none): they
        are processed later and may still send records to other partitions then."""
        low = float("inf")
        for records in self._parked.values():
            for record in records:
                event = record.event
                if event is not None and record.partition == partition:
                    at = event.occurred_ts
                    if at < low:
                        low = at
        return low

    def arrived(self, customer: str, anonymous: str) -> list[InRecord]:
        """The answer for (``customer``, ``anonymous``) was applied; returns the records to
        resume (in order) when nothing else is awaited for ``customer``."""
        waits = self._waits.get(customer)
        if waits is None:
            return []
        waits.discard(anonymous)
        if waits:
            return []
        return self._release(customer)

    def stale(self, now: float) -> list[InRecord]:
        """Records of customers whose answer is overdue (``max_wait_s``), to go on without."""
        late: list[str] = []
        for customer, since in self._since.items():  # in the order they began to wait
            if now - since < self.max_wait_s:
                break  # every later one began later: not overdue either
            late.append(customer)
        out: list[InRecord] = []
        for customer in late:
            log.warning("identity merge answer overdue: %d records resumed without it",
                        len(self._parked.get(customer, ())))  # fmt: skip
            out.extend(self._release(customer))
        return out

    def _release(self, customer: str) -> list[InRecord]:
        self._waits.pop(customer, None)
        self._since.pop(customer, None)
        return self._parked.pop(customer, [])

    def drop(self, keep: Callable[[InRecord], bool]) -> list[InRecord]:
        """Forget the customers with a parked record not kept (a revoked partition); returns
        their parked records (never acknowledged: the next owner reads them again)."""
        dropped: list[InRecord] = []
        for customer, records in list(self._parked.items()):
            if not all(keep(record) for record in records):
                dropped.extend(self._release(customer))
        return dropped

    def clear(self) -> None:
        """Forget everything (records parked are never acknowledged and are read again)."""
        self._waits.clear()
        self._since.clear()
        self._parked.clear()

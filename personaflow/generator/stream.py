"""Merge many shoppers' timelines into one time-ordered stream of exactly N events."""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from personaflow.generator.shopper import Shopper
from schemas.models import Envelope


def _validate(seed: int, customers: int, events: int, start_time: datetime) -> None:
    if customers < 1:
        raise ValueError("customers must be at least 1")
    if events < 0:
        raise ValueError("events must not be negative")
    if start_time.tzinfo is None:
        raise ValueError("start_time must carry a time zone (use UTC)")
    if not isinstance(seed, int):
        raise TypeError("seed must be an int")


def generate_events(
    seed: int,
    customers: int,
    events: int,
    start_time: datetime,
    *,
    clock: Callable[[], datetime] | None = None,
) -> Iterator[Envelope]:
    """Exactly ``events`` input events from ``customers`` synthetic shoppers, in time order.

    Event times start at ``start_time`` and advance as the shoppers live (seconds within a
    session, hours to months between), so every deadline rule gets its chance. The stream is
    a pure function of (seed, customers, events, start_time): same arguments, same events,
    ids included. With ``clock`` (e.g. wall clock for ``--time-mode now``) each event is
    re-stamped with ``clock()`` as it is handed out; order and content stay the same.
    """
    _validate(seed, customers, events, start_time)
    start = start_time.astimezone(UTC)
    timelines = [
        Shopper(n, random.Random(f"personaflow:{seed}:{n}"), start, customers).timeline()
        for n in range(1, customers + 1)
    ]
    heap: list[tuple[datetime, int, Envelope]] = []
    for index, timeline in enumerate(timelines):
        first = next(timeline)
        heap.append((first.occurred_at, index, first))
    heapq.heapify(heap)
    for _ in range(events):
        _, index, event = heap[0]
        upcoming = next(timelines[index])
        heapq.heapreplace(heap, (upcoming.occurred_at, index, upcoming))
        yield event if clock is None else _restamp(event, clock())


def _restamp(event: Envelope, now: datetime) -> Envelope:
    lag = event.received_at - event.occurred_at
    return event.model_copy(update={"occurred_at": now, "received_at": now + lag})

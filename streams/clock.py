"""Injectable clocks: the time decisions are taken at.

- :class:`WallClock`: real time (production).
- :class:`EventClock`: the highest event time seen so far (replay and tests): deadlines fire
  when the stream's own time passes them, so the same history gives the same triggers.
- :class:`AcceleratedClock`: real time sped up by a factor from a start point (demos: a 1 h
  cart deadline fires after 1 minute at speed 60).

``now()`` is the clock's current time (epoch seconds, UTC); ``at(event_time)`` is the time an
event is applied at; ``observe(event_time)`` feeds event times to the clock.
"""

from __future__ import annotations

import time
from typing import Protocol

from streams.settings import ClockMode


class Clock(Protocol):
    """A source of decision time (epoch seconds)."""

    mode: str

    def now(self) -> float:
        """The clock's current time."""
        ...

    def at(self, event_time: float) -> float:
        """The time an event that happened at ``event_time`` is applied at."""
        ...

    def observe(self, event_time: float) -> None:
        """Tell the clock an event happened at ``event_time``."""
        ...


class WallClock:
    """Real time; events are applied at the moment they are processed."""

    mode = "wall"

    def now(self) -> float:
        return time.time()

    def at(self, event_time: float) -> float:
        return time.time()

    def observe(self, event_time: float) -> None:
        return None


class EventClock:
    """Time is the highest event time seen; an event is applied at its own time."""

    mode = "event"

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def at(self, event_time: float) -> float:
        return event_time

    def observe(self, event_time: float) -> None:
        if event_time > self._now:
            self._now = event_time


class AcceleratedClock:
    """Real time sped up ``speed`` times, starting at ``start`` (default: now)."""

    mode = "accelerated"

    def __init__(self, speed: float, start: float | None = None) -> None:
        self.speed = speed
        self._origin_real = time.time()
        self._origin = self._origin_real if start is None else start

    def now(self) -> float:
        return self._origin + (time.time() - self._origin_real) * self.speed

    def at(self, event_time: float) -> float:
        return self.now()

    def observe(self, event_time: float) -> None:
        return None


def make_clock(mode: ClockMode, speed: float = 60.0) -> Clock:
    """The clock for a settings value (``wall``, ``event`` or ``accelerated``)."""
    if mode == "event":
        return EventClock()
    if mode == "accelerated":
        return AcceleratedClock(speed)
    return WallClock()

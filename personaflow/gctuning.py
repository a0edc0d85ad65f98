"""Garbage-collector settings for personaflow's long-running processes (stream worker, sink).

With CPython's defaults (a collection of the young generation every 700 net allocations, full
collections walking every tracked object) the collector costs these processes a tenth of
their CPU, and its full collections stop the event loop for tens to hundreds of
milliseconds: they walk every object the libraries created at start-up and, in a stream
worker, every cached customer state. Measured: docs/bench/sink.md (sink: ~10 % of CPU, pauses
up to 85 ms) and docs/bench/streams.md, session 6 (worker).

:func:`tune_gc` freezes what is alive after start-up (``gc.freeze``: those objects leave every
later collection; they are still freed by reference counting) and raises the young
generation's threshold, so collections are rarer. :func:`observe_pauses` reports each
collection's duration, for a metric.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

DEFAULT_YOUNG_THRESHOLD = 20_000


def tune_gc(young_threshold: int = DEFAULT_YOUNG_THRESHOLD) -> bool:
    """Collect, freeze the survivors and set the young generation's threshold; call once,
    after start-up. ``0`` leaves the interpreter's settings alone. Returns whether it tuned."""
    if young_threshold <= 0:
        return False
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(young_threshold, older, oldest)
    return True


_observers: dict[Callable[[int, float], None], Callable[[str, dict[str, Any]], None]] = {}


def observe_pauses(observe: Callable[[int, float], None]) -> Callable[[str, dict[str, Any]], None]:
    """Call ``observe(generation, seconds)`` after every collection (once per ``observe``,
    however often this is called); returns the callback registered in ``gc.callbacks``."""
    if observe in _observers:
        return _observers[observe]
    started = [0.0]
    clock = time.perf_counter

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = clock()
        else:
            observe(info["generation"], clock() - started[0])

    gc.callbacks.append(on_gc)
    _observers[observe] = on_gc
    return on_gc

"""personaflow.gctuning: the collector settings of long-running processes and the pause hook."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import REGISTRY

from personaflow import gctuning
from streams import app as streams_app
from streams.settings import StreamSettings


@pytest.fixture
def restored_gc() -> Iterator[None]:
    """Put back the thresholds, the frozen set and the callbacks after each test."""
    thresholds, callbacks = gc.get_threshold(), list(gc.callbacks)
    yield
    gc.set_threshold(*thresholds)
    gc.unfreeze()
    gc.callbacks[:] = callbacks
    gctuning._observers.clear()


def test_tuning_freezes_survivors_and_raises_the_young_threshold(restored_gc: None) -> None:
    older = gc.get_threshold()[1:]
    gc.unfreeze()
    assert gctuning.tune_gc(12_345) is True
    assert gc.get_threshold() == (12_345, *older)
    assert gc.get_freeze_count() > 0  # what was alive at the call left later collections


def test_zero_leaves_the_interpreter_alone(restored_gc: None) -> None:
    gc.unfreeze()
    before = gc.get_threshold()
    assert gctuning.tune_gc(0) is False
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_pauses_are_observed_once_per_observer(restored_gc: None) -> None:
    seen: list[tuple[int, float]] = []

    def observe(generation: int, seconds: float) -> None:
        seen.append((generation, seconds))

    first = gctuning.observe_pauses(observe)
    assert gctuning.observe_pauses(observe) is first  # registered once, however often asked
    gc.collect()
    assert [generation for generation, _ in seen] == [2]
    assert seen[0][1] >= 0.0
    gc.collect(0)
    assert [generation for generation, _ in seen] == [2, 0]


def test_the_worker_tunes_at_start_and_exports_pauses(restored_gc: None) -> None:
    """streams.app registers a start-up task that applies PERSONAFLOW_GC_YOUNG_THRESHOLD and
    feeds every collection into personaflow_gc_pause_seconds."""
    tasks: list[Any] = []
    fake_app = SimpleNamespace(task=tasks.append)
    settings = StreamSettings(gc_young_threshold=12_345)
    streams_app._register_gc_tuning(fake_app, settings)  # type: ignore[arg-type]
    assert len(tasks) == 1
    assert gc.get_threshold()[0] != 12_345  # nothing before the worker starts

    def full_collections() -> float:
        labels = {"generation": "2"}
        return REGISTRY.get_sample_value("personaflow_gc_pause_seconds_count", labels) or 0.0

    asyncio.run(tasks[0]())
    assert gc.get_threshold()[0] == 12_345
    before = full_collections()
    gc.collect()
    assert full_collections() == before + 1

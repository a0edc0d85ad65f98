"""personaflow.gctuning: the collector settings of long-running processes and the pause hook."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from personaflow import gctuning


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

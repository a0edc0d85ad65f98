"""The worker says at start which parts run compiled (make native, docs/native.md)."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import pytest

import processors
from schemas.codec import native_readers_status, native_writers_status
from streams import app as streams_app


def test_the_worker_logs_what_runs_compiled_once_started(caplog: pytest.LogCaptureFixture) -> None:
    tasks: list[Any] = []
    streams_app._register_native_log(SimpleNamespace(task=tasks.append))  # type: ignore[arg-type]
    assert len(tasks) == 1  # a start-up task: Faust sets up logging before it runs
    with caplog.at_level(logging.INFO, logger="personaflow.streams"):
        asyncio.run(tasks[0]())
    line = caplog.records[-1].getMessage()
    assert f"processors {processors.NATIVE}" in line
    assert f"avro readers {native_readers_status()}" in line
    assert f"avro writers {native_writers_status()}" in line

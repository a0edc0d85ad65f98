"""The Faust app's consumer gets personaflow's settings (not Faust's hard-coded ones)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from streams.app import create_app
from streams.settings import StreamSettings


async def _worker_consumer_wait(settings: StreamSettings) -> int:
    app = create_app(settings)
    consumer = app.consumer._thread._create_worker_consumer(app.transport)  # type: ignore[attr-defined]
    try:
        return int(consumer._fetch_max_wait_ms)
    finally:
        await consumer.stop()
        app.personaflow.tables.producer.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("wait_ms", [None, 7, 1500])
def test_fetch_max_wait_reaches_the_worker_consumer(
    kafka_bootstrap: str, tmp_path: Path, wait_ms: int | None
) -> None:
    """Faust fixes fetch_max_wait_ms=1500; on a broker that does not answer parked fetches
    when records arrive, that wait is added to event->trigger latency."""
    extra = {} if wait_ms is None else {"fetch_max_wait_ms": wait_ms}
    settings = StreamSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        store="memory://",
        data_dir=str(tmp_path),
        **extra,  # type: ignore[arg-type]
    )
    default = StreamSettings.model_fields["fetch_max_wait_ms"].default
    assert default < 100
    assert asyncio.run(_worker_consumer_wait(settings)) == (default if wait_ms is None else wait_ms)

"""The worker tells the intake to call again at once (``more``) only while the aligner still
holds records: after a release of exactly ``batch_max_events`` that emptied it, the intake
must wait for the next fetch, not call ``handle([])`` in a loop until one arrives."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from schemas.codec import encode_event
from schemas.models import Product, ProductViewed
from streams.clock import WallClock
from streams.domain import Domain
from streams.records import InRecord
from streams.replay import MemoryTables
from streams.settings import StreamSettings
from streams.worker import StreamWorker

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
SHOE = Product(product_id="sku-1", name="shoe", category="shoes", price=10.0)


def _view(offset: int) -> InRecord:
    view = ProductViewed(event_id=f"v{offset}", occurred_at=T0, customer_id="c1", product=SHOE)
    return InRecord("events.site", 0, offset, b"c1", encode_event(view), 1.0)


def test_more_is_cleared_once_the_aligner_is_empty(domain: Domain) -> None:
    settings = StreamSettings(align_hold_ms=300, partitions=1, clock="wall", batch_max_events=2)
    worker = StreamWorker(SimpleNamespace(consumer=None), settings, domain, WallClock(),
                          MemoryTables(domain.encode_state))  # fmt: skip
    assert worker._admit([_view(0), _view(1)]) == []  # the other input topics: held
    worker._busy_s = -3600.0  # every empty input topic has been quiet for longer than the hold
    released = worker._admit([])
    assert [r.offset for r in released] == [0, 1]
    assert worker.more  # a full batch went: there may be more
    assert worker._admit([]) == []
    assert not worker.more  # nothing is held: wait for the next fetch
    worker._admit([_view(2), _view(3), _view(4)])
    assert worker.more and len(worker.aligner or []) == 1
    assert len(worker._admit([])) == 1
    assert not worker.more

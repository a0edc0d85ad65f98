"""Pure guard decisions: expiry, not_before, quiet hours, too-late deferrals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from processors.policy import QuietHours
from schemas.models import Trigger
from sinks import guards

NOW = datetime(2026, 3, 2, 22, 30, tzinfo=UTC)  # 22:30 UTC


def trigger(**fields) -> Trigger:
    base = {"trigger_id": "t", "customer_id": "c", "trigger_type": "welcome", "rule_id": "r",
            "created_at": NOW - timedelta(minutes=5)}
    return Trigger(**{**base, **fields})


def test_expiry():
    assert guards.expired(trigger(expires_at=NOW), NOW.timestamp())
    assert not guards.expired(trigger(expires_at=NOW + timedelta(seconds=1)), NOW.timestamp())
    assert not guards.expired(trigger(), NOW.timestamp())


def test_not_before():
    later = NOW + timedelta(hours=1)
    assert guards.not_before(trigger(not_before=later), NOW.timestamp()) == later.timestamp()
    assert guards.not_before(trigger(not_before=NOW), NOW.timestamp()) is None


def test_quiet_hours_follow_the_recipients_time_zone_and_spare_transactional():
    quiet = QuietHours(21, 8)
    utc = guards.quiet_until(trigger(time_zone="UTC"), NOW.timestamp(), quiet)
    assert utc == datetime(2026, 3, 3, 8, tzinfo=UTC).timestamp()
    # 22:30 UTC is 14:30 in Los Angeles: not quiet
    assert guards.quiet_until(trigger(time_zone="America/Los_Angeles"), NOW.timestamp(),
                              quiet) is None
    assert guards.quiet_until(trigger(time_zone="UTC", marketing=False), NOW.timestamp(),
                              quiet) is None


def test_too_late():
    t = trigger(expires_at=NOW + timedelta(hours=2))
    assert guards.too_late(t, (NOW + timedelta(hours=3)).timestamp())
    assert not guards.too_late(t, (NOW + timedelta(hours=1)).timestamp())
    assert not guards.too_late(trigger(), (NOW + timedelta(days=300)).timestamp())

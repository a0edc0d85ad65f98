"""The pure guard decisions (time is an argument; no I/O). The stateful guards (suppression,
ledger, budget) live in their stores; :mod:`sinks.processor` runs all of them in order:

expiry -> consent/suppression -> idempotency ledger -> not-before -> frequency budget ->
quiet hours -> holdout -> render -> send.
"""

from __future__ import annotations

from processors.policy import QuietHours, next_allowed_time
from schemas.models import Trigger


def expired(trigger: Trigger, now: float) -> bool:
    """True when the trigger's ``expires_at`` is at or before ``now`` (epoch seconds)."""
    return trigger.expires_at is not None and trigger.expires_at.timestamp() <= now


def not_before(trigger: Trigger, now: float) -> float | None:
    """The time to wait for when ``not_before`` is still in the future, else None."""
    if trigger.not_before is None:
        return None
    due = trigger.not_before.timestamp()
    return due if due > now else None


def quiet_until(trigger: Trigger, now: float, quiet: QuietHours) -> float | None:
    """When a marketing trigger may go out if ``now`` is in the recipient's quiet hours.

    Transactional triggers (``marketing=False``) are never held back. Returns None when the
    trigger can be sent now.
    """
    if not trigger.marketing:
        return None
    allowed = next_allowed_time(now, trigger.time_zone, quiet)
    return allowed if allowed > now else None


def too_late(trigger: Trigger, due: float) -> bool:
    """True when a send postponed to ``due`` would be past the trigger's expiry."""
    return trigger.expires_at is not None and due >= trigger.expires_at.timestamp()

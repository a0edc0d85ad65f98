"""Retries around an ESP adapter: exponential backoff with jitter, Retry-After honoured.

Temporary errors (429, 5xx, timeouts, connection loss) are retried up to ``max_attempts``;
the wait before attempt ``n+1`` is ``Retry-After`` when the ESP sent one, else a random value
in ``[d/2, d]`` with ``d = min(backoff_max, backoff_base * 2**(n-1))`` ("equal jitter").
Permanent errors end at once. The shared rate limit is taken before every attempt.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from sinks.errors import EspError, EspPermanentError, EspTemporaryError
from sinks.esp.base import EspAdapter
from sinks.message import OutgoingEmail
from sinks.metrics import ESP_ERRORS, ESP_RETRIES, ESP_SECONDS
from sinks.ratelimit import RateLimiter


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry."""

    max_attempts: int = 5
    base_s: float = 0.5
    max_s: float = 30.0

    def delay(self, attempt: int, retry_after: float | None, rnd: Callable[[], float]) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if retry_after is not None:
            return retry_after
        ceiling = min(self.max_s, self.base_s * 2.0 ** (attempt - 1))
        return ceiling / 2 + rnd() * ceiling / 2


@dataclass(frozen=True, slots=True)
class Delivery:
    """A send the ESP accepted."""

    esp_message_id: str
    attempts: int


class SendFailed(Exception):
    """The ESP did not accept the send: permanently, or after ``attempts`` tries."""

    retriable = False

    def __init__(self, cause: EspError, attempts: int) -> None:
        super().__init__(f"{cause.reason} after {attempts} attempt(s)")
        self.cause = cause
        self.attempts = attempts
        self.reason = cause.reason


async def send_with_retries(
    adapter: EspAdapter,
    email: OutgoingEmail,
    policy: RetryPolicy,
    limiter: RateLimiter | None = None,
    rnd: Callable[[], float] = random.random,
) -> Delivery:
    """Send ``email``; return the accepted :class:`Delivery` or raise :class:`SendFailed`."""
    attempt = 0
    while True:
        attempt += 1
        if limiter is not None:
            await limiter.acquire()
        started = time.perf_counter()
        try:
            msg_id = await adapter.send(email)
        except EspPermanentError as exc:
            ESP_ERRORS.labels(adapter.name, exc.reason).inc()
            raise SendFailed(exc, attempt) from exc
        except EspTemporaryError as exc:
            ESP_ERRORS.labels(adapter.name, exc.reason).inc()
            if attempt >= policy.max_attempts:
                raise SendFailed(exc, attempt) from exc
            ESP_RETRIES.labels(adapter.name).inc()
            await asyncio.sleep(policy.delay(attempt, exc.retry_after, rnd))
            continue
        finally:
            ESP_SECONDS.labels(adapter.name).observe(time.perf_counter() - started)
        return Delivery(msg_id, attempt)


async def _take_tokens(limiter: RateLimiter, n: int) -> None:
    """``n`` rate-limit tokens, in slices no larger than the bucket."""
    while n > 0:
        take = min(n, limiter.burst)
        await limiter.acquire(take)
        n -= take


async def send_all_with_retries(
    adapter: EspAdapter,
    emails: list[OutgoingEmail],
    policy: RetryPolicy,
    limiter: RateLimiter | None = None,
    rnd: Callable[[], float] = random.random,
) -> list[Delivery | SendFailed]:
    """:func:`send_with_retries` for a batch: every attempt hands all emails still pending to
    :meth:`EspAdapter.send_many` at once; the wait before the next attempt is the longest
    ``Retry-After`` among them, else the backoff. Per email its :class:`Delivery` or
    :class:`SendFailed`, in order."""
    out: list[Delivery | SendFailed | None] = [None] * len(emails)
    pending = list(range(len(emails)))
    attempt = 0
    while pending:
        attempt += 1
        if limiter is not None:
            await _take_tokens(limiter, len(pending))
        started = time.perf_counter()
        answers = await adapter.send_many([emails[i] for i in pending])
        ESP_SECONDS.labels(adapter.name).observe(time.perf_counter() - started)
        retry: list[int] = []
        waits: list[float] = []
        for i, answer in zip(pending, answers, strict=True):
            if isinstance(answer, str):
                out[i] = Delivery(answer, attempt)
                continue
            ESP_ERRORS.labels(adapter.name, answer.reason).inc()
            if isinstance(answer, EspTemporaryError) and attempt < policy.max_attempts:
                retry.append(i)
                if answer.retry_after is not None:
                    waits.append(answer.retry_after)
            else:
                out[i] = SendFailed(answer, attempt)
        if retry:
            ESP_RETRIES.labels(adapter.name).inc(len(retry))
            await asyncio.sleep(policy.delay(attempt, max(waits) if waits else None, rnd))
        pending = retry
    return [d for d in out if d is not None]

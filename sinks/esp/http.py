"""HTTP JSON adapter in the shape of SendGrid's v3 ``POST /v3/mail/send``.

Batching: emails sent within ``batch_wait_ms`` of each other (up to ``batch_size``) share one
request, one ``personalizations`` entry each. v3 shares ``content`` across personalizations, so
a batched request puts ``-text-`` / ``-html-`` placeholders in ``content`` and each
personalization fills them through ``substitutions`` with its own rendered parts, and carries
its own ``subject``, ``headers`` (Message-ID, List-Unsubscribe, ...) and ``custom_args``
(``trigger_id``). SendGrid caps substitutions at 10,000 bytes per personalization, so larger
emails go in a request of their own with real ``content``.

Every request carries ``Idempotency-Key`` (a hash of its trigger ids) and every
personalization its trigger id in ``custom_args``, for ESPs that deduplicate on them (the real
SendGrid does not: see docs/sink.md for the remaining window).

Status mapping: 2xx accepted; 429 and 5xx temporary (``Retry-After`` honoured); other 4xx
permanent; timeouts and connection errors temporary.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import orjson

from sinks.errors import EspPermanentError, EspTemporaryError
from sinks.esp.base import EspAdapter, SendAnswer
from sinks.message import OutgoingEmail

SUBSTITUTION_LIMIT = 10_000
"""Bytes of substitutions SendGrid allows per personalization."""


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _personalization(email: OutgoingEmail) -> dict[str, Any]:
    headers = email.list_headers()
    del headers["Message-ID"]  # moved last, always the trigger's own id
    headers["Message-ID"] = email.message_id
    return {
        "to": [{"email": email.recipient}],
        "subject": email.rendered.subject,
        "headers": headers,
        "custom_args": {
            "trigger_id": email.trigger.trigger_id,
            "customer_id": email.trigger.customer_id,
            "trigger_type": email.trigger.trigger_type,
            "variant": email.trigger.variant or "",
        },
    }


def batchable(email: OutgoingEmail) -> bool:
    """Whether ``email`` fits SendGrid's substitution limit (and so can share a request)."""
    return _utf8_size(email.rendered.html) + _utf8_size(email.rendered.text) <= SUBSTITUTION_LIMIT


def _utf8_size(text: str) -> int:
    """Bytes of ``text`` in UTF-8 (ASCII text without encoding it)."""
    return len(text) if text.isascii() else len(text.encode())


def build_payload(emails: list[OutgoingEmail]) -> dict[str, Any]:
    """The v3 mail/send body for ``emails`` (all from the same sender)."""
    first = emails[0]
    body: dict[str, Any] = {
        "from": {"email": first.sender, "name": first.sender_name},
        "categories": sorted({e.trigger.trigger_type for e in emails})[:10],
    }
    if len(emails) == 1:
        body["personalizations"] = [_personalization(first)]
        body["content"] = [
            {"type": "text/plain", "value": first.rendered.text},
            {"type": "text/html", "value": first.rendered.html},
        ]
        return body
    people = []
    for email in emails:
        person = _personalization(email)
        person["substitutions"] = {"-text-": email.rendered.text, "-html-": email.rendered.html}
        people.append(person)
    body["personalizations"] = people
    body["content"] = [
        {"type": "text/plain", "value": "-text-"},
        {"type": "text/html", "value": "-html-"},
    ]
    return body


def idempotency_key(emails: list[OutgoingEmail]) -> str:
    """A stable key for a request carrying exactly these triggers."""
    ids = "\x1f".join(sorted(e.trigger.trigger_id for e in emails))
    return hashlib.blake2b(ids.encode(), digest_size=16).hexdigest()


@dataclass
class _Pending:
    email: OutgoingEmail
    future: asyncio.Future[str] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class HttpAdapter(EspAdapter):
    """Posts SendGrid v3 mail/send JSON to ``url``, batching personalizations."""

    name = "http"

    def __init__(
        self,
        url: str,
        api_key: str = "",
        *,
        batch_size: int = 100,
        batch_wait_ms: float = 5.0,
        timeout: float = 10.0,
        max_requests: int = 8,
    ) -> None:
        self.url = url
        self.api_key = api_key
        self.batch_size = batch_size
        self.batch_wait = batch_wait_ms / 1000.0
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._requests = asyncio.Semaphore(max_requests)
        self._collector: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=64)
            self._session = aiohttp.ClientSession(timeout=self.timeout, connector=connector)
        if self.batch_size > 1 and self._collector is None:
            self._collector = asyncio.create_task(self._collect(), name="http-esp-batcher")

    async def close(self) -> None:
        if self._collector is not None:
            self._collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._collector
            self._collector = None
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, email: OutgoingEmail) -> str:
        if self._session is None:
            await self.start()
        if self.batch_size <= 1 or not batchable(email):
            return (await self._post([email]))[0]
        pending = _Pending(email)
        await self._queue.put(pending)
        return await pending.future

    async def send_many(self, emails: list[OutgoingEmail]) -> list[SendAnswer]:
        """A whole batch at once, without the collector: up to ``batch_size`` emails per
        request (emails over the substitution limit alone), the requests in parallel. A request
        refused as a whole (4xx) is re-sent one email per request."""
        if self._session is None:
            await self.start()
        answers: list[SendAnswer] = ["" for _ in emails]
        groups: list[list[int]] = []
        shared: list[int] = []
        for i, email in enumerate(emails):
            if self.batch_size <= 1 or not batchable(email):
                groups.append([i])
                continue
            shared.append(i)
            if len(shared) == self.batch_size:
                groups.append(shared)
                shared = []
        if shared:
            groups.append(shared)
        await asyncio.gather(*(self._send_group(emails, g, answers) for g in groups))
        return answers

    async def _send_group(
        self, emails: list[OutgoingEmail], group: list[int], answers: list[SendAnswer]
    ) -> None:
        try:
            ids = await self._post([emails[i] for i in group])
        except EspPermanentError as exc:
            if len(group) == 1:
                answers[group[0]] = exc
                return
            await asyncio.gather(*(self._send_group(emails, [i], answers) for i in group))
            return
        except EspTemporaryError as exc:
            for i in group:
                answers[i] = exc
            return
        for i, msg_id in zip(group, ids, strict=True):
            answers[i] = msg_id

    async def _collect(self) -> None:
        """Group queued emails into batches and post each batch in its own task."""
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self.batch_wait
            while len(batch) < self.batch_size:
                remaining = deadline - loop.time()
                if remaining <= 0 and self._queue.empty():
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), max(remaining, 0)))
                except TimeoutError:
                    break
            await self._requests.acquire()
            task = asyncio.create_task(self._post_batch(batch))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _post_batch(self, batch: list[_Pending]) -> None:
        """Post a batch; when the ESP refuses it as a whole (4xx), send each email alone so one
        bad personalization cannot fail the others."""
        try:
            ids = await self._post([p.email for p in batch], limited=False)
        except EspPermanentError as exc:
            if len(batch) == 1:
                _fail_all(batch, exc)
            else:
                await asyncio.gather(*(self._post_alone(p) for p in batch))
        except EspTemporaryError as exc:
            _fail_all(batch, exc)
        else:
            for p, msg_id in zip(batch, ids, strict=True):
                if not p.future.done():
                    p.future.set_result(msg_id)
        finally:
            self._requests.release()

    async def _post_alone(self, pending: _Pending) -> None:
        try:
            (msg_id,) = await self._post([pending.email], limited=False)
        except (EspTemporaryError, EspPermanentError) as exc:
            _fail_all([pending], exc)
        else:
            if not pending.future.done():
                pending.future.set_result(msg_id)

    async def _post(self, emails: list[OutgoingEmail], *, limited: bool = True) -> list[str]:
        """POST one request; return one message id per email or raise a typed error."""
        assert self._session is not None
        headers = {"Idempotency-Key": idempotency_key(emails), "Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        try:
            if limited:
                async with self._requests:
                    return await self._request(emails, headers)
            return await self._request(emails, headers)
        except TimeoutError as exc:
            raise EspTemporaryError("http esp timed out", reason="timeout") from exc
        except aiohttp.ClientError as exc:
            raise EspTemporaryError(f"http esp: {type(exc).__name__}", reason="connection") from exc

    async def _request(self, emails: list[OutgoingEmail], headers: dict[str, str]) -> list[str]:
        assert self._session is not None
        body = orjson.dumps(build_payload(emails))
        async with self._session.post(self.url, data=body, headers=headers) as resp:
            await resp.read()
            status = resp.status
            if 200 <= status < 300:
                base = resp.headers.get("X-Message-Id")
                if base:
                    return [f"{base}.{i}" for i in range(len(emails))]
                return [e.message_id for e in emails]
            if status == 429 or status >= 500:
                raise EspTemporaryError(
                    f"http esp answered {status}",
                    reason=f"http_{status}",
                    retry_after=parse_retry_after(resp.headers.get("Retry-After")),
                )
            raise EspPermanentError(f"http esp answered {status}", reason=f"http_{status}")


def _fail_all(batch: list[_Pending], exc: Exception) -> None:
    for p in batch:
        if not p.future.done():
            p.future.set_exception(exc)

"""The sink's HTTP server (aiohttp): ESP event webhooks, one-click unsubscribe, metrics, health.

- ``POST /webhooks/sendgrid``: a JSON array in SendGrid's event-webhook shape. Each item is
  validated; ``delivered``, ``open``, ``click``, ``bounce``, ``unsubscribe`` /
  ``group_unsubscribe`` and ``spamreport`` become engagement events (Email Delivered, ...)
  published to ``events.engagement`` keyed by customer id; other SendGrid events
  (``processed``, ``deferred``, ``dropped``) are acknowledged and ignored. Suppressing events
  (hard bounce, unsubscribe, spam report) are written to the suppression list first. The
  answer is 200 with per-item counts once everything is acknowledged by the broker; 400 when
  the body is not a JSON array; 503 when the broker or Redis failed (SendGrid retries).
  The customer id comes from the ``customer_id`` custom arg the HTTP adapter sets.
- ``POST /unsubscribe?t=TOKEN`` (RFC 8058 one-click, body ``List-Unsubscribe=One-Click``) and
  ``GET /unsubscribe?t=TOKEN`` (a confirmation form): suppress, then publish Email
  Unsubscribed.
- ``GET /metrics`` (Prometheus), ``GET /healthz`` (process up), ``GET /readyz`` (consumer
  started and Redis answering).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from html import escape as html_escape
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.codec import encode_event
from schemas.models import (
    BounceKind,
    EmailBounced,
    EmailClicked,
    EmailDelivered,
    EmailOpened,
    EmailSpamReported,
    EmailUnsubscribed,
)
from sinks.metrics import WEBHOOK_EVENTS
from sinks.suppression import Scope, SuppressionList
from sinks.unsubscribe import verify_token

log = logging.getLogger("personaflow.sink.webhooks")

Publish = Callable[[str, bytes], Awaitable[None]]
"""``publish(key, value)``: produce one engagement event and wait for the broker's ack."""

MAX_BODY = 5 * 1024 * 1024
_SUPPRESSING = {"bounce", "unsubscribe", "group_unsubscribe", "spamreport"}


class SendGridEvent(BaseModel):
    """One item of a SendGrid event webhook post (unknown fields are ignored)."""

    model_config = ConfigDict(extra="ignore")

    event: str = Field(min_length=1)
    timestamp: int = Field(ge=0)
    sg_event_id: str | None = None
    sg_message_id: str | None = None
    customer_id: str = Field(min_length=1)
    trigger_id: str | None = None
    trigger_type: str | None = None
    variant: str | None = None
    url: str | None = None
    type: str | None = None  # bounce | blocked
    reason: str | None = None


def engagement_event(item: SendGridEvent) -> BaseModel | None:
    """The engagement event a webhook item maps to (None: an event we do not track)."""
    digest = hashlib.blake2b(
        f"{item.event}|{item.sg_event_id}|{item.sg_message_id}|{item.timestamp}|"
        f"{item.customer_id}".encode(), digest_size=12,
    ).hexdigest()
    common: dict[str, Any] = {
        "event_id": f"sg-{item.sg_event_id or digest}",
        "occurred_at": datetime.fromtimestamp(item.timestamp, UTC),
        "customer_id": item.customer_id,
        "source": "sendgrid",
        "message_id": item.sg_message_id,
        "trigger_id": item.trigger_id,
        "trigger_type": item.trigger_type,
        "variant": item.variant or None,
    }
    kind = item.event
    if kind == "delivered":
        return EmailDelivered(**common)
    if kind == "open":
        return EmailOpened(**common)
    if kind == "click":
        return EmailClicked(**common, url=item.url)
    if kind == "bounce":
        soft = item.type == "blocked"
        bounce = BounceKind.SOFT if soft else BounceKind.HARD
        return EmailBounced(**common, bounce_type=bounce, reason=(item.reason or "")[:200] or None)
    if kind in ("unsubscribe", "group_unsubscribe"):
        return EmailUnsubscribed(**common)
    if kind == "spamreport":
        return EmailSpamReported(**common)
    return None


async def _suppress_for(event: BaseModel, suppression: SuppressionList, customer: str) -> None:
    if isinstance(event, EmailBounced) and event.bounce_type is BounceKind.HARD:
        await suppression.suppress(customer, Scope.ALL, "hard_bounce")
    elif isinstance(event, EmailUnsubscribed):
        await suppression.suppress(customer, Scope.MARKETING, "unsubscribed")
    elif isinstance(event, EmailSpamReported):
        await suppression.suppress(customer, Scope.MARKETING, "spam_report")


class WebServer:
    """The aiohttp application and its runner."""

    def __init__(
        self,
        publish: Publish,
        suppression: SuppressionList,
        unsubscribe_secret: str,
        ready: Callable[[], Awaitable[bool]],
    ) -> None:
        self.publish = publish
        self.suppression = suppression
        self.secret = unsubscribe_secret
        self.ready = ready
        self.app = web.Application(client_max_size=MAX_BODY)
        self.app.add_routes([
            web.post("/webhooks/sendgrid", self.sendgrid),
            web.post("/unsubscribe", self.unsubscribe),
            web.get("/unsubscribe", self.unsubscribe_form),
            web.get("/metrics", self.metrics),
            web.get("/healthz", self.healthz),
            web.get("/readyz", self.readyz),
        ])
        self.runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0 = any free port); returns the bound port."""
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port
        return int(self.port or port)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def sendgrid(self, request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return web.json_response({"error": "body is not JSON"}, status=400)
        if not isinstance(body, list):
            return web.json_response({"error": "body must be a JSON array"}, status=400)
        counts = {"published": 0, "ignored": 0, "rejected": 0}
        errors: list[dict[str, Any]] = []
        try:
            for index, raw in enumerate(body):
                status = await self._one(raw)
                counts[status[0]] += 1
                if status[1]:
                    errors.append({"index": index, "error": status[1]})
        except Exception as exc:  # noqa: BLE001 - broker/Redis trouble: SendGrid retries
            log.warning("webhook batch failed: %r", exc)
            return web.json_response({"error": "temporarily unavailable"}, status=503)
        return web.json_response({**counts, "errors": errors[:20]})

    async def _one(self, raw: Any) -> tuple[str, str]:
        try:
            item = SendGridEvent.model_validate(raw)
        except ValidationError as exc:
            fields = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})
            WEBHOOK_EVENTS.labels("invalid", "rejected").inc()
            return "rejected", "invalid fields: " + ", ".join(fields)
        event = engagement_event(item)
        if event is None:
            WEBHOOK_EVENTS.labels(item.event[:32], "ignored").inc()
            return "ignored", ""
        if item.event in _SUPPRESSING:
            await _suppress_for(event, self.suppression, item.customer_id)
        await self.publish(item.customer_id, encode_event(event))
        WEBHOOK_EVENTS.labels(item.event, "published").inc()
        return "published", ""

    async def unsubscribe(self, request: web.Request) -> web.Response:
        found = verify_token(self.secret, request.query.get("t", ""))
        if found is None:
            return web.json_response({"error": "invalid unsubscribe token"}, status=400)
        customer_id, trigger_id = found
        await self.suppression.suppress(customer_id, Scope.MARKETING, "unsubscribed")
        event = EmailUnsubscribed(
            event_id=f"unsub-{hashlib.blake2b(trigger_id.encode(), digest_size=12).hexdigest()}",
            occurred_at=datetime.now(UTC),
            customer_id=customer_id,
            source="one-click",
            trigger_id=trigger_id,
        )
        await self.publish(customer_id, encode_event(event))
        WEBHOOK_EVENTS.labels("one_click_unsubscribe", "published").inc()
        return web.Response(text="You are unsubscribed.\n")

    async def unsubscribe_form(self, request: web.Request) -> web.Response:
        if verify_token(self.secret, request.query.get("t", "")) is None:
            return web.Response(status=400, text="invalid unsubscribe link\n")
        token = html_escape(request.query["t"], quote=True)
        page = (
            "<!DOCTYPE html><html><body><form method='post' action='/unsubscribe?t="
            f"{token}'><input type='hidden' name='List-Unsubscribe' value='One-Click'>"
            "<button type='submit'>Unsubscribe</button></form></body></html>"
        )
        return web.Response(text=page, content_type="text/html")

    async def metrics(self, _request: web.Request) -> web.Response:
        resp = web.Response(body=generate_latest())
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return resp

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, _request: web.Request) -> web.Response:
        ok = await self.ready()
        return web.json_response({"ready": ok}, status=200 if ok else 503)

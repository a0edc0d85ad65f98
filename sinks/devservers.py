"""Local stand-ins for real ESPs, used by tests, the benchmark and local runs:

- :class:`LocalHttpEsp`: an aiohttp server speaking SendGrid's v3 ``POST /v3/mail/send``
  (validates the shape, answers 202 with ``X-Message-Id``), deduplicating personalizations by
  their ``trigger_id`` custom arg, with scriptable failures (``fail_next`` answers, e.g.
  ``(429, {"Retry-After": "1"})``).
- :class:`CaptureSmtp`: an aiosmtpd SMTP server that keeps every received message.

Both are real servers on loopback ports, not mocks.
"""

from __future__ import annotations

import asyncio
import email
import itertools
import socket
import threading
import time
from dataclasses import dataclass, field
from email.message import Message
from email.policy import default as default_policy
from typing import Any

import orjson
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class EspDelivery:
    """One personalization the local HTTP ESP accepted."""

    trigger_id: str
    to: str
    subject: str
    headers: dict[str, str]
    text: str
    html: str
    at: float


@dataclass
class LocalHttpEsp:
    """A SendGrid-v3-shaped HTTP ESP on ``127.0.0.1:<port>`` (see the module docs)."""

    api_key: str = ""
    latency_s: float = 0.0
    deliveries: dict[str, EspDelivery] = field(default_factory=dict)
    duplicates: int = 0
    requests: int = 0
    fail_next: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    reject_recipients: set[str] = field(default_factory=set)  # 400 for a request naming one
    request_log: list[tuple[float, int]] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v3/mail/send"

    async def start(self) -> str:
        """Listen on a free port; returns the mail/send URL."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.add_routes([web.post("/v3/mail/send", self._mail_send)])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _mail_send(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.api_key and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response({"errors": [{"message": "unauthorized"}]}, status=401)
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if self.fail_next:
            status, headers = self.fail_next.pop(0)
            self.request_log.append((time.time(), status))
            return web.json_response({"errors": [{"message": "scripted"}]}, status=status,
                                     headers=headers)
        try:
            body = orjson.loads(await request.read())
            to = {p["to"][0]["email"] for p in body["personalizations"]}
            if to & self.reject_recipients:
                self.request_log.append((time.time(), 400))
                return web.json_response({"errors": [{"field": "personalizations.to"}]},
                                         status=400)
            accepted = self._accept(body)
        except (orjson.JSONDecodeError, KeyError, TypeError, IndexError) as exc:
            self.request_log.append((time.time(), 400))
            return web.json_response({"errors": [{"message": f"bad request: {exc!r}"}]},
                                     status=400)
        self.request_log.append((time.time(), 202))
        headers = {"X-Message-Id": f"local{next(self._ids)}", "X-Accepted": str(accepted)}
        return web.Response(status=202, headers=headers)

    def _accept(self, body: dict[str, Any]) -> int:
        content = {c["type"]: c["value"] for c in body["content"]}
        assert body["from"]["email"]
        accepted = 0
        for person in body["personalizations"]:
            subs = person.get("substitutions") or {}
            trigger_id = person["custom_args"]["trigger_id"]
            if trigger_id in self.deliveries:
                self.duplicates += 1
                continue
            text, html = content["text/plain"], content["text/html"]
            for tag, value in subs.items():
                text, html = text.replace(tag, value), html.replace(tag, value)
            self.deliveries[trigger_id] = EspDelivery(
                trigger_id, person["to"][0]["email"], person["subject"],
                dict(person.get("headers") or {}), text, html, time.time(),
            )
            accepted += 1
        return accepted


class _Sink:
    """aiosmtpd handler that accepts and counts messages without parsing them (benchmarks)."""

    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.count += 1
        return "250 Message accepted"


class _Capture:
    """aiosmtpd handler keeping every message."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.lock = threading.Lock()
        self.reject_rcpt: set[str] = set()

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        rcpt_options: list[str],
    ) -> str:
        if address in self.reject_rcpt:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or envelope.content or b""
        data = raw if isinstance(raw, bytes) else raw.encode()
        msg = email.message_from_bytes(data, policy=default_policy)
        with self.lock:
            self.messages.append(msg)
        return "250 Message accepted"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class CaptureSmtp:
    """A real SMTP server (aiosmtpd, own thread) on a free loopback port."""

    def __init__(self) -> None:
        self.handler = _Capture()
        self.port = 0
        self.controller: Controller | None = None

    def start(self) -> int:
        """Listen on a free port (retrying if another process takes it first)."""
        for attempt in range(5):
            self.port = _free_port()
            self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
            try:
                self.controller.start()
                return self.port
            except (OSError, RuntimeError):
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()

    @property
    def messages(self) -> list[Message]:
        with self.handler.lock:
            return list(self.handler.messages)


async def _serve_http(port: int) -> None:
    """Run a :class:`LocalHttpEsp` on ``port`` with ``GET /stats`` (accept times) until killed."""
    esp = LocalHttpEsp()
    app = web.Application(client_max_size=64 * 1024 * 1024)

    async def stats(_request: web.Request) -> web.Response:
        accepted = {k: d.at for k, d in esp.deliveries.items()}
        return web.json_response({"requests": esp.requests, "duplicates": esp.duplicates,
                                  "accepted": accepted})

    async def reset(_request: web.Request) -> web.Response:
        esp.deliveries.clear()
        esp.requests = esp.duplicates = 0
        return web.json_response({"ok": True})

    app.add_routes([web.post("/v3/mail/send", esp._mail_send), web.get("/stats", stats),
                    web.post("/reset", reset)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


def main(argv: list[str]) -> int:
    """``python -m sinks.devservers http|smtp PORT``: run one local ESP in the foreground."""
    kind, port = argv[0], int(argv[1])
    if kind == "http":
        asyncio.run(_serve_http(port))
    elif kind == "smtp":
        controller = Controller(_Sink(), hostname="127.0.0.1", port=port)
        controller.start()
        threading.Event().wait()
    return 2


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))

"""SMTP adapter: the standard library's :mod:`smtplib` run in worker threads, with a small pool
of kept-alive connections (``smtp_connections``).

Error mapping: connection failures, timeouts and 4xx replies are temporary; 5xx replies and
refused recipients are permanent. The Message-ID header is derived from the trigger id, so a
resend after a crash carries the same id (receivers that deduplicate on it show one message).
"""

from __future__ import annotations

import asyncio
import queue
import smtplib

from sinks.errors import EspPermanentError, EspTemporaryError
from sinks.esp.base import EspAdapter
from sinks.message import OutgoingEmail


def _classify(exc: smtplib.SMTPException) -> EspTemporaryError | EspPermanentError:
    """Map an smtplib error to a temporary or permanent ESP error."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        if codes and all(400 <= c < 500 for c in codes):
            return EspTemporaryError(f"recipient deferred {codes}", reason="smtp_4xx")
        return EspPermanentError(f"recipient refused {codes}", reason="smtp_rejected")
    if isinstance(exc, smtplib.SMTPResponseException):
        code = exc.smtp_code
        if 400 <= code < 500:
            return EspTemporaryError(f"smtp {code}", reason="smtp_4xx")
        return EspPermanentError(f"smtp {code}", reason="smtp_5xx")
    return EspTemporaryError(f"smtp: {type(exc).__name__}", reason="smtp_connection")


class SmtpAdapter(EspAdapter):
    """Sends through an SMTP server (no auth, no TLS: a local relay or a test server)."""

    name = "smtp"

    def __init__(self, host: str, port: int, *, connections: int = 4, timeout: float = 10.0):
        self.host = host
        self.port = port
        self.timeout = timeout
        self._idle: queue.SimpleQueue[smtplib.SMTP] = queue.SimpleQueue()
        self._slots = asyncio.Semaphore(connections)

    def _connect(self) -> smtplib.SMTP:
        return smtplib.SMTP(self.host, self.port, timeout=self.timeout)

    def _send_sync(self, email: OutgoingEmail) -> str:
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = None
        try:
            if conn is None:
                conn = self._connect()
            conn.sendmail(email.sender, [email.recipient], email.to_bytes())
        except smtplib.SMTPServerDisconnected as exc:
            _quit(conn)
            raise EspTemporaryError("smtp disconnected", reason="smtp_connection") from exc
        except smtplib.SMTPException as exc:
            if conn is not None and _alive(exc):
                self._idle.put(conn)
            else:
                _quit(conn)
            raise _classify(exc) from exc
        except (TimeoutError, OSError) as exc:
            _quit(conn)
            raise EspTemporaryError(f"smtp: {type(exc).__name__}", reason="timeout") from exc
        self._idle.put(conn)
        return email.message_id

    async def send(self, email: OutgoingEmail) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._send_sync, email)

    async def close(self) -> None:
        while True:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                return
            await asyncio.to_thread(_quit, conn)


def _alive(exc: smtplib.SMTPException) -> bool:
    """Whether the connection is still usable after ``exc`` (a reply, not a drop)."""
    return isinstance(exc, smtplib.SMTPResponseException | smtplib.SMTPRecipientsRefused)


def _quit(conn: smtplib.SMTP | None) -> None:
    if conn is None:
        return
    try:
        conn.quit()
    except (smtplib.SMTPException, OSError):
        conn.close()

"""Builds the ESP adapter the settings ask for."""

from __future__ import annotations

from sinks.errors import ConfigError
from sinks.esp.base import EspAdapter
from sinks.settings import EspKind, SinkSettings


def make_adapter(settings: SinkSettings) -> EspAdapter:
    """The adapter for ``settings.esp`` (outbox, smtp or http)."""
    try:
        kind = EspKind(settings.esp)
    except ValueError as exc:
        raise ConfigError(f"unknown ESP kind {settings.esp!r}") from exc
    if kind is EspKind.OUTBOX:
        from sinks.esp.outbox import OutboxAdapter

        return OutboxAdapter(settings.outbox_dir)
    if kind is EspKind.SMTP:
        from sinks.esp.smtp import SmtpAdapter

        return SmtpAdapter(
            settings.smtp_host,
            settings.smtp_port,
            connections=settings.smtp_connections,
            timeout=settings.esp_timeout_s,
        )
    if kind is EspKind.HTTP:
        from sinks.esp.http import HttpAdapter

        return HttpAdapter(
            settings.http_url,
            settings.http_api_key.get_secret_value(),
            batch_size=settings.http_batch_size,
            batch_wait_ms=settings.http_batch_wait_ms,
            timeout=settings.esp_timeout_s,
        )
    raise ConfigError(f"unknown ESP kind {settings.esp!r}")

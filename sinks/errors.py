"""Typed errors of the sink. Each says whether trying the same thing again may help."""

from __future__ import annotations


class SinkError(Exception):
    """Base class of every error raised by sinks/."""

    retriable: bool = False
    reason: str = "sink_error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class TemplateError(SinkError):
    """A template is missing, invalid or failed to render: the trigger goes to dlq.sends."""

    reason = "template_error"


class EspError(SinkError):
    """An ESP refused or failed a send."""

    reason = "esp_error"


class EspTemporaryError(EspError):
    """429, 5xx, timeouts, dropped connections: retry later (after ``retry_after`` if known)."""

    retriable = True

    def __init__(
        self, message: str, *, reason: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, reason=reason)
        self.retry_after = retry_after


class EspPermanentError(EspError):
    """4xx other than 429, a rejected recipient: retrying the same message cannot help."""


class StoreUnavailableError(SinkError):
    """Redis (ledger, budget, suppression, rate limit) did not answer: pause and retry."""

    retriable = True
    reason = "store_unavailable"


class ConfigError(SinkError):
    """A sink setting is inconsistent (e.g. an unknown ESP kind)."""

    reason = "config_error"

"""The interface every ESP adapter implements.

``send(email)`` returns the ESP's message id once the ESP has accepted the message, or raises
:class:`~sinks.errors.EspTemporaryError` (retry: 429, 5xx, timeouts, connection loss; carries
``retry_after`` when the ESP said how long to wait) or :class:`~sinks.errors.EspPermanentError`
(do not retry: other 4xx, rejected recipient). Retries, backoff and rate limits live outside
the adapters (:mod:`sinks.retry`), so every adapter behaves the same.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from sinks.message import OutgoingEmail


class EspAdapter(ABC):
    """One way of handing an email to an ESP."""

    name: str = "esp"

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open connections (optional)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; pending sends finish first (optional)."""

    @abstractmethod
    async def send(self, email: OutgoingEmail) -> str:
        """Hand ``email`` to the ESP; return its message id once accepted."""

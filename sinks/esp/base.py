"""The interface every ESP adapter implements.

``send(email)`` returns the ESP's message id once the ESP has accepted the message, or raises
:class:`~sinks.errors.EspTemporaryError` (retry: 429, 5xx, timeouts, connection loss; carries
``retry_after`` when the ESP said how long to wait) or :class:`~sinks.errors.EspPermanentError`
(do not retry: other 4xx, rejected recipient). Retries, backoff and rate limits live outside
the adapters (:mod:`sinks.retry`), so every adapter behaves the same.

``send_many(emails)`` hands a whole batch over and answers per email (message id or the ESP
error); the default sends them concurrently one by one, the HTTP adapter packs them into as few
requests as the v3 shape allows.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod

from sinks.errors import EspError
from sinks.message import OutgoingEmail

SendAnswer = str | EspError
"""What one email of :meth:`EspAdapter.send_many` got: its message id, or the ESP's error."""


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

    async def send_many(self, emails: list[OutgoingEmail]) -> list[SendAnswer]:
        """Hand every email over; per email its message id or the :class:`EspError` it got
        (other exceptions propagate)."""
        answers = await asyncio.gather(*(self.send(e) for e in emails), return_exceptions=True)
        for answer in answers:
            if isinstance(answer, BaseException) and not isinstance(answer, EspError):
                raise answer
        return [a for a in answers if isinstance(a, str | EspError)]

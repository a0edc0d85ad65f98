"""The file outbox: one ``.eml`` file per send, the embedded default for local runs.

The file name is derived from the trigger id, and files are written atomically (temporary
file, fsync, rename), so a send repeated after a crash rewrites the same file: the outbox
never holds the same trigger twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

from sinks.errors import EspTemporaryError
from sinks.esp.base import EspAdapter
from sinks.message import OutgoingEmail


def eml_name(trigger_id: str) -> str:
    """The outbox file name of ``trigger_id`` (a hash: safe on every file system)."""
    return hashlib.blake2b(trigger_id.encode(), digest_size=16).hexdigest() + ".eml"


class OutboxAdapter(EspAdapter):
    """Writes each email to ``<directory>/<hash of trigger id>.eml``."""

    name = "outbox"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    def _write(self, email: OutgoingEmail) -> str:
        target = self.directory / eml_name(email.trigger_id)
        tmp = target.with_suffix(f".tmp{os.getpid()}")
        data = email.to_bytes()
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        return email.message_id

    async def send(self, email: OutgoingEmail) -> str:
        try:
            return await asyncio.to_thread(self._write, email)
        except OSError as exc:
            raise EspTemporaryError(f"outbox write failed: {exc.strerror}", reason="io") from exc

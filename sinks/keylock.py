"""Per-key asyncio locks: records with the same trigger id are handled one after the other in
a process (duplicates share a key and so a partition and an instance), so a duplicate sees the
first one's published outcome and reports ``duplicate``.

:class:`KeySetClaims` does the same for the batch path: a batch claims all its trigger ids at
once (all or nothing, so two batches can never wait for each other) and waits while another
batch holds any of them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class KeyLocks:
    """A lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


class KeySetClaims:
    """Sets of keys held by batches; a key is held by at most one batch at a time."""

    def __init__(self) -> None:
        self._held: dict[str, asyncio.Future[None]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, keys: list[str]) -> AsyncIterator[None]:
        """Hold every key of ``keys`` (waiting while another holder has any of them)."""
        while True:
            busy = {f for k in keys if (f := self._held.get(k)) is not None}
            if not busy:
                break
            await asyncio.wait(busy)
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for key in keys:
            self._held[key] = mine
        try:
            yield
        finally:
            for key in keys:
                if self._held.get(key) is mine:
                    del self._held[key]
            mine.set_result(None)

    def __len__(self) -> int:
        return len(self._held)

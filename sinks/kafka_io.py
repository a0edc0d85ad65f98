"""asyncio wrappers around confluent-kafka: a producer whose sends can be awaited until the
broker acknowledged them (acks=all), and a consumer driven from one dedicated thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, Message, Producer

from personaflow.kafka import consumer_config, producer_config

T = TypeVar("T")
Headers = list[tuple[str, str | bytes | None]]
Record = tuple[str, bytes, str | bytes | None, Headers | None]
"""``(topic, value, key, headers)`` of one record for :meth:`AsyncProducer.send_all`."""


class ProduceError(Exception):
    """The broker did not acknowledge a record; retriable unless the error says otherwise."""

    def __init__(self, error: KafkaError) -> None:
        super().__init__(f"produce failed: {error.name()}")
        self.retriable = bool(error.retriable())


class AsyncProducer:
    """A confluent-kafka producer (acks=all, idempotent, murmur2) with awaitable sends.

    Delivery reports are collected on the poll thread and handed to the event loop in one
    call per poll (not one thread-safe wake-up per record)."""

    def __init__(self, bootstrap: str, **overrides: Any) -> None:
        self.producer = Producer(producer_config(bootstrap, **overrides))
        self._stop = threading.Event()
        self._done: deque[tuple[asyncio.Future[None], BaseException | None]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._poll, name="sink-producer", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.05)
            self._hand_over()

    def _hand_over(self) -> None:
        """Resolve the futures of the records delivered during the last poll."""
        if self._done and self._loop is not None:
            done = []
            with contextlib.suppress(IndexError):  # deque pops are thread-safe
                while True:
                    done.append(self._done.popleft())
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                self._loop.call_soon_threadsafe(_resolve_all, done)

    async def send(
        self,
        topic: str,
        value: bytes,
        key: str | bytes | None = None,
        headers: list[tuple[str, str | bytes | None]] | None = None,
    ) -> None:
        """Produce one record and wait until the broker acknowledged it."""
        loop = self._loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        def delivered(err: KafkaError | None, _msg: Message) -> None:
            # runs on the poll thread (inside poll/flush): only append, the loop resolves
            self._done.append((future, None if err is None else ProduceError(err)))

        while True:
            try:
                self.producer.produce(
                    topic, value=value, key=key, headers=headers, on_delivery=delivered
                )
                break
            except BufferError:  # local queue full: let deliveries drain
                await asyncio.sleep(0.01)
        await future

    async def send_all(self, records: list[Record]) -> None:
        """Produce every record and wait until the broker acknowledged all of them (one
        future for the whole batch); raises the first :class:`ProduceError`."""
        if not records:
            return
        loop = self._loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        ack = _BatchAck(len(records), future, self._done)
        for topic, value, key, headers in records:
            while True:
                try:
                    self.producer.produce(
                        topic, value=value, key=key, headers=headers, on_delivery=ack.delivered
                    )
                    break
                except BufferError:  # local queue full: let deliveries drain
                    await asyncio.sleep(0.01)
        await future

    def close(self, timeout: float = 10.0) -> int:
        """Flush what is queued and stop the poll thread; returns records still unsent."""
        left = self.producer.flush(timeout)
        self._stop.set()
        self._thread.join(timeout=2)
        self._hand_over()
        return int(left)


class _BatchAck:
    """Counts the delivery reports of one :meth:`AsyncProducer.send_all` (on the poll
    thread) and queues its future once the last one arrived."""

    __slots__ = ("done", "error", "future", "left", "lock")

    def __init__(
        self, count: int, future: asyncio.Future[None],
        done: deque[tuple[asyncio.Future[None], BaseException | None]],
    ) -> None:
        self.left = count
        self.future = future
        self.done = done
        self.error: BaseException | None = None
        self.lock = threading.Lock()

    def delivered(self, err: KafkaError | None, _msg: Message) -> None:
        with self.lock:
            self.left -= 1
            if err is not None and self.error is None:
                self.error = ProduceError(err)
            last = self.left == 0
        if last:
            self.done.append((self.future, self.error))


def _resolve_all(done: list[tuple[asyncio.Future[None], BaseException | None]]) -> None:
    for future, exc in done:
        if exc is None:
            _succeed(future)
        else:
            _fail(future, exc)


def _succeed(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _fail(future: asyncio.Future[None], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


class ThreadedConsumer:
    """A confluent-kafka consumer whose every call runs on one dedicated thread."""

    def __init__(self, bootstrap: str, group: str, **overrides: Any) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"consumer-{group}")
        self.consumer = Consumer(consumer_config(bootstrap, group, **overrides))

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the consumer thread."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)

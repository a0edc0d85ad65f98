"""Redis access shared by the sink's stores (ledger, budget, suppression, rate limit, deferred).

Single commands go through :meth:`Store.exec`, which pipelines every command issued by
concurrent tasks in the same moment into one round trip (auto-pipelining: one pipeline in
flight at a time, up to ``MAX_BATCH`` commands), so the per-command cost is a fraction of a
separate request. Lua scripts are registered with :meth:`Store.script` and re-loaded when a
restarted Redis has forgotten them. Multi-command operations use :meth:`Store.call`.

Both wait out outages: while Redis does not answer, the call waits
and tries again (exponential backoff up to ``retry_max_s``) instead of failing the trigger, so
an outage pauses the sink (no new work starts: all concurrency slots are waiting) and nothing
is lost or decided twice. Calls are idempotent, so repeating one after a lost reply is safe.
:class:`~sinks.errors.StoreUnavailableError` is raised only when ``give_up_after`` is set and
exceeded, or when the store is closed while waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from sinks.errors import StoreUnavailableError

log = logging.getLogger("personaflow.sink.store")
T = TypeVar("T")
_TRANSIENT = (RedisConnectionError, RedisTimeoutError, OSError)
MAX_BATCH = 2000
"""Most commands sent in one auto-pipelined round trip."""

_Op = tuple[str, tuple[Any, ...], "asyncio.Future[Any]"]


_UTF8 = ("utf-8", "strict")


class _PackInOneJoin:
    """Connection mixin: commands packed into the Redis protocol with one ``join``.

    redis-py's ``pack_command`` re-joins its growing buffer once per argument (every argument
    copies up to ``_buffer_cutoff`` bytes: about 3 us per argument), which made packing the
    batch scripts' arguments ~6% of the sink's loop. The bytes sent are the same; commands
    with a memoryview or a value over the cutoff take redis-py's own chunked path."""

    _buffer_cutoff: int
    encoder: Any

    def pack_command(self, *args: Any) -> list[bytes]:
        name = args[0]
        encoder = self.encoder
        if not isinstance(name, str) or (encoder.encoding, encoder.encoding_errors) != _UTF8:
            return super().pack_command(*args)  # type: ignore[misc, no-any-return]
        head = name.encode().split()
        cutoff = self._buffer_cutoff
        pieces = [b"*%d\r\n" % (len(head) + len(args) - 1)]
        pieces += [b"$%d\r\n%s\r\n" % (len(part), part) for part in head]
        for arg in args[1:]:
            kind = type(arg)
            if kind is str:
                value = arg.encode()
            elif kind is int:
                value = b"%d" % arg
            elif kind is bytes:
                value = arg
            else:  # floats, bools (refused), bytearrays, memoryviews: as redis-py does
                value = encoder.encode(arg)
                if isinstance(value, memoryview):
                    return super().pack_command(*args)  # type: ignore[misc, no-any-return]
            if len(value) > cutoff:
                return super().pack_command(*args)  # type: ignore[misc, no-any-return]
            pieces.append(b"$%d\r\n%s\r\n" % (len(value), value))
        return [b"".join(pieces)]


def _fast_packing(pool: aioredis.ConnectionPool) -> None:
    """Make ``pool`` open connections that pack commands with :class:`_PackInOneJoin`."""
    base = pool.connection_class
    pool.connection_class = type(f"OneJoin{base.__name__}", (_PackInOneJoin, base), {})


class Store:
    """A Redis client with a key prefix and outage-tolerant calls."""

    def __init__(
        self,
        url: str,
        prefix: str = "pf:sink:",
        *,
        retry_max_s: float = 5.0,
        give_up_after: float | None = None,
        max_connections: int = 32,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.retry_max_s = retry_max_s
        self.give_up_after = give_up_after
        # a blocking pool: under load, calls wait for a free connection instead of failing
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=None, socket_timeout=5.0,
            socket_connect_timeout=2.0, health_check_interval=10,
        )
        _fast_packing(pool)
        self.redis: aioredis.Redis = aioredis.Redis(connection_pool=pool)
        self.closed = False
        self.available = True
        self._queue: list[_Op] = []
        self._wake: asyncio.Event | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._drained = asyncio.Event()
        """Set whenever the flusher has sent everything queued (cleared by :meth:`exec`)."""
        self._scripts: dict[str, str] = {}
        self.round_trips = 0

    def key(self, *parts: str) -> str:
        """A prefixed key, e.g. ``key("ledger", trigger_id)``."""
        return self.prefix + ":".join(parts)

    async def call(self, op: Callable[[], Awaitable[T]], what: str = "redis") -> T:
        """Run ``op`` until Redis answers (see the module docs)."""
        delay = 0.05
        started = time.monotonic()
        while True:
            try:
                result = await op()
            except _TRANSIENT as exc:
                if self.closed:
                    raise StoreUnavailableError(f"{what}: store closed during outage") from exc
                waited = time.monotonic() - started
                if self.give_up_after is not None and waited > self.give_up_after:
                    raise StoreUnavailableError(f"{what}: redis unavailable") from exc
                if self.available:
                    log.warning("redis unavailable (%s: %s); pausing", what, type(exc).__name__)
                    self.available = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)
                continue
            if not self.available:
                log.warning("redis is back after %.1fs", time.monotonic() - started)
                self.available = True
            return result

    def script(self, source: str) -> str:
        """Register a Lua script; returns its SHA1 for ``exec("evalsha", sha, ...)``."""
        sha = hashlib.sha1(source.encode()).hexdigest()
        self._scripts[sha] = source
        return sha

    async def exec(self, method: str, *args: Any) -> Any:
        """Run one Redis command (a pipeline method name and its arguments), auto-pipelined
        with whatever other tasks issue at the same moment; waits out outages. Raises
        :class:`~sinks.errors.StoreUnavailableError` once the store is closed."""
        if self.closed:
            raise StoreUnavailableError(f"{method}: store closed")
        if self._wake is None:
            self._wake = asyncio.Event()
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_loop(), name="redis-autopipeline")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((method, args, future))
        self._drained.clear()
        self._wake.set()
        return await future

    async def _flush_loop(self) -> None:
        assert self._wake is not None
        while True:  # after a close, one more round sends what was issued before it
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(0)  # let the tasks woken in this tick add their commands
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                try:
                    await self._run_batch(batch)
                except Exception as exc:  # noqa: BLE001 - hand the failure to the callers
                    _fail(batch, exc)
                except asyncio.CancelledError:  # closed mid-batch: no caller waits forever
                    _fail(batch, StoreUnavailableError("redis: store closed during a call"))
                    raise
            self._drained.set()
            if self.closed:
                return

    async def _run_batch(self, batch: list[_Op]) -> None:
        """Send ``batch`` in one pipeline; retry on outages, reload scripts Redis forgot."""
        while batch:
            results = await self.call(functools.partial(self._pipeline, batch), "redis")
            retry: list[_Op] = []
            for op, result in zip(batch, results, strict=True):
                if isinstance(result, NoScriptError):
                    retry.append(op)
                elif not op[2].done():
                    if isinstance(result, Exception):
                        op[2].set_exception(result)
                    else:
                        op[2].set_result(result)
            if retry:
                await self.call(self._load_scripts, "script load")
            batch = retry

    async def _pipeline(self, batch: list[_Op]) -> list[Any]:
        pipe = self.redis.pipeline(transaction=False)
        for method, args, _ in batch:
            getattr(pipe, method)(*args)
        self.round_trips += 1
        return list(await pipe.execute(raise_on_error=False))

    async def preload(self) -> None:
        """Load every registered script now (waits out outages), so the first commands do
        not pay a NoScriptError round trip."""
        await self.call(self._load_scripts, "script load")

    async def _load_scripts(self) -> None:
        for source in self._scripts.values():
            await self.redis.script_load(source)

    async def ping(self) -> bool:
        """True when Redis answers now (no retries): for readiness checks."""
        try:
            return bool(await self.redis.ping())
        except _TRANSIENT:
            return False

    async def close(self, drain_s: float = 2.0) -> None:
        """Stop taking commands, let those already issued finish (up to ``drain_s``), stop
        retrying and close the connection pool. A command still unanswered then fails with
        :class:`~sinks.errors.StoreUnavailableError`: no caller is left waiting."""
        self.closed = True
        flusher = self._flusher
        if flusher is not None and not flusher.done() and (self._queue or self._busy()):
            assert self._wake is not None
            self._drained.clear()
            self._wake.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), drain_s)
        if flusher is not None:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await flusher
        queued, self._queue = self._queue, []
        _fail(queued, StoreUnavailableError("redis: store closed before the call was sent"))
        await self.redis.aclose()

    def _busy(self) -> bool:
        """Whether the flusher is sending a batch now (woken and not yet idle again)."""
        return self._wake is not None and not self._drained.is_set()


def _fail(ops: list[_Op], exc: BaseException) -> None:
    """Hand ``exc`` to every caller of ``ops`` still waiting."""
    for _, _, future in ops:
        if not future.done():
            future.set_exception(exc)

"""Assembles the sink process: the trigger service, the suppression feed and the web server,
stopped together on SIGTERM / SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from personaflow import gctuning
from schemas import topics
from sinks.feedback import SuppressionFeed
from sinks.service import SinkService, Wiring
from sinks.settings import SinkSettings
from sinks.webhooks import WebServer

log = logging.getLogger("personaflow.sink")


def make_web(service: SinkService) -> WebServer:
    """The web server wired to ``service``'s producer, suppression list and readiness."""
    engagement = service.wiring.topic(topics.ENGAGEMENT)

    async def publish(key: str, value: bytes) -> None:
        assert service.producer is not None
        await service.producer.send(engagement, value, key=key)

    async def ready() -> bool:
        return service.ready and await service.store.ping()

    secret = service.settings.unsubscribe_secret.get_secret_value()
    return WebServer(publish, service.suppression, secret, ready)


class SinkApp:
    """One sink process: service + (optional) suppression feed + (optional) web server."""

    def __init__(
        self, settings: SinkSettings, wiring: Wiring, *, web: bool = True, feed: bool = True
    ) -> None:
        self.settings = settings
        self.wiring = wiring
        self.service = SinkService(settings, wiring)
        self.web = make_web(self.service) if web else None
        self.feed = feed
        self.port: int | None = None

    async def run(self, *, signals: bool = True) -> None:
        """Run until a signal (or ``service.request_stop()``), then stop everything."""
        service = self.service
        if signals:
            service.install_signal_handlers()
        await service.start()
        if self.web is not None:
            self.port = await self.web.start(self.settings.http_host, self.settings.http_port)
            log.info("sink web server on port %d", self.port)
        feed_task = None
        if self.feed:
            suppression_feed = SuppressionFeed(
                self.wiring.bootstrap,
                self.settings.feedback_group_id,
                [self.wiring.topic(topics.IDENTITY), self.wiring.topic(topics.ENGAGEMENT)],
                service.suppression,
                **self.wiring.consumer_overrides,
            )
            feed_task = asyncio.create_task(suppression_feed.run(service.stopping))
        try:
            await service.run()
        finally:
            service.stopping.set()
            if feed_task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(feed_task, 15)
            if self.web is not None:
                await self.web.stop()


GC_GEN0_THRESHOLD = 20_000
"""Allocations between young-generation collections in a sink process (CPython: 700)."""


def tune_gc() -> None:
    """Garbage-collector settings for a sink process (call once, after imports).

    Measured on the HTTP benchmark: the collector took about 10% of the sink's CPU and its
    full collections paused the loop for up to 85 ms (they walk every object of the
    libraries loaded at start); see :mod:`personaflow.gctuning`.
    """
    gctuning.tune_gc(GC_GEN0_THRESHOLD)


async def serve(
    settings: SinkSettings, wiring: Wiring, *, web: bool = True, feed: bool = True
) -> None:
    """Run the whole sink until SIGTERM / SIGINT."""
    tune_gc()
    await SinkApp(settings, wiring, web=web, feed=feed).run()


def run_from_env(*, esp: str | None = None, port: int | None = None, web: bool = True) -> int:
    """Read settings from the environment, resolve Kafka/Redis and run the sink; exit code."""
    from personaflow.devstack import StackError, resolve_endpoints
    from personaflow.settings import Settings

    base = Settings()
    logging.basicConfig(
        level=base.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    overrides: dict[str, object] = {}
    if esp:
        overrides["esp"] = esp
    if port is not None:
        overrides["http_port"] = port
    settings = SinkSettings.model_validate(overrides)
    try:
        endpoints = resolve_endpoints(base)
    except StackError as exc:
        log.error("%s", exc)  # noqa: TRY400 - a setup message, no traceback wanted
        return 2
    wiring = Wiring(endpoints.bootstrap, endpoints.redis_url, base.topic_prefix)
    asyncio.run(serve(settings, wiring, web=web))
    return 0

"""HTTP views of a worker (Faust web, port ``worker_web_port``, default 6066).

- ``/healthz``: the process is up (liveness).
- ``/readyz``: partitions assigned, tables recovered and due-index built, not rebalancing
  (readiness) - 503 if not.
- ``/metrics``: Prometheus exposition.
- ``/customers/{customer_id}``: the state held by this worker, its persona history with the
  rule behind each change, and its next deadline (contact data redacted); 404 elsewhere.
- ``/personas``: customers per persona on this worker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.domain import describe

if TYPE_CHECKING:
    from streams.worker import StreamWorker


def register_views(app: Any, worker: StreamWorker) -> None:
    """Add the views to the Faust app."""

    @app.page("/healthz")  # type: ignore[misc,untyped-decorator]
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")  # type: ignore[misc,untyped-decorator]
    async def readyz(web: Any, request: Any) -> Any:
        partitions = worker.active_partitions()
        # a worker without partitions (more workers than partitions) is ready, and idle
        ready = partitions is not None and worker.indexed_partitions() == partitions
        body = {"ready": ready, "partitions": sorted(partitions or ())}
        return web.json(body, status=200 if ready else 503)

    @app.page("/metrics")  # type: ignore[misc,untyped-decorator]
    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/personas")  # type: ignore[misc,untyped-decorator]
    async def personas(web: Any, request: Any) -> Any:
        return web.json({"customers": len(worker.index), "personas": worker.index.persona_counts()})

    @app.page("/customers/{customer_id}")  # type: ignore[misc,untyped-decorator]
    async def customer(web: Any, request: Any, customer_id: str) -> Any:
        view = customer_view(worker, customer_id)
        if view is None:
            return web.json({"error": "customer not held by this worker"}, status=404)
        return web.json(view)


def customer_view(worker: StreamWorker, customer_id: str) -> dict[str, Any] | None:
    """What the ``/customers/{id}`` view shows, or ``None`` if this worker has no state."""
    found, state = worker.processor.cache.get(customer_id)  # newest, maybe not yet persisted
    if not found or state is None:
        raw = worker.tables.get_any("customers", customer_id)
        if raw is None:
            return None
        state = worker.domain.decode_state(raw)
    data = describe(state)
    history = [_change(change) for change in getattr(state, "changes", [])]
    return {
        "customer_id": customer_id,
        "persona": data.get("persona"),
        "interest": data.get("interest"),
        "journey": data.get("journey"),
        "next_deadline": worker.domain.engine.next_due(state),
        "persona_history": history,
        "state": data,
    }


def _change(change: Any) -> Any:
    """One persona change (named fields when the engine gives a named tuple)."""
    return change._asdict() if hasattr(change, "_asdict") else change

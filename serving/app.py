"""The FastAPI application: :func:`create_app` wires settings, the Redis store and the ingester.

Nothing is built at import; the lifespan opens the Redis client and starts the ingester (and
closes both). Routes live in :mod:`serving.routes`; responses are orjson bytes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from redis.exceptions import RedisError

from adapters.redis_store import AggregateStore
from app.config import Settings
from app.windows import resolution_ladder
from serving.fastpath import FastPath
from serving.ingest import AggregateIngester
from serving.metrics import ServingMetrics
from serving.query import QueryError, QueryService
from serving.models import ModelRegistry
from serving.routes import admin, aggregates, dashboard, ops
from serving.routes import models as model_routes
from serving.routes.deps import OrjsonResponse

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    *,
    store: AggregateStore | None = None,
    start_ingester: bool = True,
    ingester: AggregateIngester | None = None,
    models: ModelRegistry | None = None,
    start_models: bool | None = None,
) -> FastAPI:
    """The API. Without ``store`` the lifespan opens a Redis client from ``settings`` (and closes it);
    with ``start_ingester`` it starts an :class:`AggregateIngester` (``ingester`` if given, built with
    ``metrics=app.state.metrics`` to show in /metrics) and stops it on shutdown. ``models`` (a
    :class:`ModelRegistry`; by default one is built when ``settings.model_hmac_key`` is set) follows
    ``models.v1`` from startup to shutdown unless ``start_models`` is False."""
    metrics = ServingMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = None
        if app.state.store is None:
            import redis
            from redis.backoff import ExponentialWithJitterBackoff
            from redis.retry import Retry

            client = redis.Redis(
                host=settings.redis_host, port=settings.redis_port, protocol=2,
                socket_timeout=2.0, socket_connect_timeout=1.0, max_connections=64, health_check_interval=30,
                retry=Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.1), 2),  # fail fast: 503, not a hang
            )
            _attach(app, AggregateStore(client, resolution_ladder(settings.window_seconds), base_seconds=settings.window_seconds, key_prefix=settings.redis_key_prefix))
        ing = app.state.ingester
        if ing is None and start_ingester:
            ing = app.state.ingester = AggregateIngester(settings, app.state.store, metrics=metrics)
        if ing is not None and start_ingester:
            ing.start()
        reg = app.state.models
        if reg is not None and start_models is not False:
            reg.start()
        try:
            yield
        finally:
            if reg is not None:
                reg.stop()
            if ing is not None:
                ing.stop()
            if client is not None:
                client.close()

    app = FastAPI(
        title="Tributary",
        version="1",
        summary="Windowed sketches over Kafka events: answers with error bounds and freshness.",
        default_response_class=OrjsonResponse,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.ingester = ingester
    if models is None and (start_models or (start_models is None and settings.model_hmac_key)):
        models = ModelRegistry(settings, metrics=metrics)
    elif models is not None and models.metrics is None:
        models.metrics = metrics
    app.state.models = models
    app.state.store = None
    if store is not None:
        _attach(app, store)

    app.add_middleware(FastPath, fastapi_app=app)  # inside LimitAndMeasure: measured and size-limited too
    app.add_middleware(LimitAndMeasure, max_body=settings.max_body_bytes, metrics=metrics)

    @app.exception_handler(QueryError)
    async def _query_error(_: Request, exc: QueryError) -> OrjsonResponse:
        return OrjsonResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> OrjsonResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
                  for e in exc.errors()]
        msg = "; ".join(f"{'.'.join(map(str, e['loc'][1:])) or 'request'}: {e['msg']}" for e in errors)
        return OrjsonResponse({"detail": msg or "invalid request", "errors": errors}, status_code=422)

    @app.exception_handler(RedisError)
    async def _redis_down(_: Request, exc: RedisError) -> OrjsonResponse:
        log.warning("Redis error while answering: %s", exc)
        return OrjsonResponse({"detail": "store unavailable"}, status_code=503, headers={"Retry-After": "1"})

    for module in (aggregates, admin, ops, dashboard, model_routes):
        app.include_router(module.router)
    return app


def _attach(app: FastAPI, store: AggregateStore) -> None:
    app.state.store = store
    app.state.query = QueryService(store)


class LimitAndMeasure:
    """ASGI middleware: 413 for bodies over ``max_body`` (declared or streamed), and latency per route."""

    def __init__(self, app, max_body: int, metrics: ServingMetrics) -> None:
        self.app, self.max_body, self.metrics = app, max_body, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = [500]

        async def send_wrapped(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            headers = dict(scope.get("headers") or ())
            if b"content-length" in headers or b"transfer-encoding" in headers:
                receive = await self._buffer(headers, receive)
                if receive is None:
                    status[0] = 413
                    await _send_413(send, self.max_body)
                    return
            await self.app(scope, receive, send_wrapped)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or "unmatched"
            self.metrics.request_latency.labels(label, scope.get("method", ""), str(status[0])).observe(
                time.perf_counter() - t0
            )

    async def _buffer(self, headers: dict, receive):
        """Read the whole body (at most ``max_body``); None when it is larger."""
        try:
            declared = int(headers.get(b"content-length", b"0"))
        except ValueError:
            declared = 0
        if declared > self.max_body:
            return None
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        body, sent = b"".join(chunks), False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay


async def _send_413(send, limit: int) -> None:
    body = b'{"detail":"request body larger than %d bytes"}' % limit
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})

"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serving.routes.deps import OrjsonResponse

router = APIRouter(tags=["ops"])


@router.get("/healthz", summary="liveness")
def healthz() -> OrjsonResponse:
    return OrjsonResponse({"status": "ok"})


@router.get("/readyz", summary="ready when Redis answers and the ingester (if any) is consuming")
def readyz(request: Request) -> OrjsonResponse:
    state = request.app.state
    checks: dict[str, object] = {}
    try:
        checks["redis"] = state.store is not None and state.store.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        checks["redis"] = False
        checks["redis_error"] = type(exc).__name__
    ing = state.ingester
    checks["ingester"] = "disabled" if ing is None else bool(ing.alive and ing.ready.is_set())
    ok = checks["redis"] is True and checks["ingester"] in (True, "disabled")
    if ok and state.store is not None:
        checks["freshness"] = state.store.freshness()
    return OrjsonResponse({"ready": ok, **checks}, status_code=200 if ok else 503)


@router.get("/metrics", summary="Prometheus metrics")
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

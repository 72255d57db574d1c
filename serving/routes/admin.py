"""Admin routes, guarded by :func:`serving.routes.deps.require_admin`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request

from serving.routes.deps import Admin, OrjsonResponse

router = APIRouter(tags=["admin"])


@router.post("/v1/admin/rebuild", status_code=202, summary="replay aggregates.v1 from the beginning into Redis")
def rebuild(
    request: Request, _: Admin, flush: Annotated[bool, Query(description="delete the cached keys first")] = False
) -> OrjsonResponse:
    ingester = request.app.state.ingester
    if ingester is None:
        raise HTTPException(503, "no ingester in this process")
    try:
        status = ingester.rebuild(flush=flush)
    except RuntimeError as exc:
        raise HTTPException(409, str(exc)) from None
    return OrjsonResponse(status, status_code=202)


@router.get("/v1/admin/rebuild", summary="progress of the last rebuild")
def rebuild_status(request: Request, _: Admin) -> OrjsonResponse:
    ingester = request.app.state.ingester
    return OrjsonResponse(ingester.rebuild_status if ingester is not None else {"state": "no ingester"})

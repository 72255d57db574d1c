"""``GET /v1/aggregates/*`` and ``GET /v1/samples``.

The handlers are ``async`` and call the (synchronous) query service on the event loop: an answer is
one or two short Redis round trips plus a millisecond or two of CPU, and running it inline costs
less than a hop through the thread pool (whose threads then also contend for the GIL, which
stretched the tail at 200 requests/s). Queries are therefore served one at a time, in order.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from serving.query import QueryError
from serving.routes.deps import Confidence, OrjsonResponse, Range, Service

router = APIRouter(tags=["aggregates"])
Field = Annotated[str, Query(min_length=1, max_length=160, description="the event field summarized")]


@router.get("/v1/aggregates/distinct", summary="distinct count (HLL)")
async def distinct(q: Service, rng: Range, field: Field, confidence: Confidence = 0.95) -> OrjsonResponse:
    return OrjsonResponse(q.distinct(field, rng, confidence))


@router.get("/v1/aggregates/top", summary="heavy hitters (frequent items), each with bounds")
async def top(q: Service, rng: Range, field: Field, k: Annotated[int, Query(ge=1, le=1000)] = 10) -> OrjsonResponse:
    return OrjsonResponse(q.top(field, rng, k))


@router.get("/v1/aggregates/quantiles", summary="quantiles (KLL) with rank-error bounds")
async def quantiles(
    q: Service, rng: Range, field: Field,
    qs: Annotated[list[float], Query(alias="q", description="ranks in [0, 1], repeatable")] = [0.5],  # noqa: B006
) -> OrjsonResponse:
    if not 1 <= len(qs) <= 100:
        raise QueryError("give between 1 and 100 values of q")
    if not all(0.0 <= x <= 1.0 for x in qs):
        raise QueryError("every q must be in [0, 1]")
    return OrjsonResponse(q.quantiles(field, rng, qs))


@router.get("/v1/aggregates/frequency", summary="point count (count-min) with its bound")
async def frequency(
    q: Service, rng: Range, field: Field, value: Annotated[str, Query(min_length=1, max_length=1024)],
    confidence: Confidence = 0.95,
) -> OrjsonResponse:
    return OrjsonResponse(q.frequency(field, value, rng, confidence))


@router.get("/v1/aggregates/timeseries", summary="exact events per step, for charts")
async def timeseries(
    q: Service, rng: Range, metric: Annotated[str, Query(max_length=32)] = "events",
    step: Annotated[int, Query(ge=1, le=7 * 86_400, description="seconds")] = 60,
) -> OrjsonResponse:
    return OrjsonResponse(q.timeseries(metric, step, rng))


@router.get("/v1/samples", summary="a uniform reservoir sample of the events in range")
async def samples(q: Service, rng: Range, n: Annotated[int, Query(ge=1, le=10_000)] = 100) -> OrjsonResponse:
    return OrjsonResponse(q.samples(n, rng))
